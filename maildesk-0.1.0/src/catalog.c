/* catalog.c - canonical names of categories, priorities and statuses. */
#include "config.h"

#include <string.h>

#include "catalog.h"

const char *const md_categories[] = {
	"Technical Request", "Bug", "Data Migration", "New Environment Request",
	"Access Request", "Security Issue/Incident", "Consulting Business Request", NULL,
};

const char *const md_priorities[] = { "P1", "P2", "P3", "P4", "ER", NULL };

const char *const md_statuses[] = {
	MD_STATUS_TRIAGE, MD_STATUS_ACKNOWLEDGED, MD_STATUS_IN_PROGRESS,
	MD_STATUS_WAITING, MD_STATUS_RESOLVED, MD_STATUS_REOPENED, NULL,
};

static const char *const visibilities[] = { "private", "shared", NULL };

/* Lowercase, with every run of blanks, '-' and '_' folded to one space
 * and the ends trimmed.  Free with g_free. */
static char *
fold (const char *text)
{
	GString *out = g_string_new (NULL);
	gboolean pending_space = FALSE;

	for (const char *p = text; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '-' || *p == '_') {
			pending_space = out->len > 0;
			continue;
		}
		if (pending_space)
			g_string_append_c (out, ' ');
		pending_space = FALSE;
		g_string_append_c (out, g_ascii_tolower (*p));
	}
	return g_string_free (out, FALSE);
}

static const char *
lookup (const char *const *names, const char *text)
{
	if (!text)
		return NULL;
	g_autofree char *want = fold (text);
	for (gsize i = 0; names[i]; i++) {
		g_autofree char *have = fold (names[i]);
		if (strcmp (want, have) == 0)
			return names[i];
	}
	return NULL;
}

const char *
md_category_normalize (const char *text)
{
	return lookup (md_categories, text);
}

const char *
md_priority_normalize (const char *text)
{
	return lookup (md_priorities, text);
}

const char *
md_status_normalize (const char *text)
{
	return lookup (md_statuses, text);
}

const char *
md_visibility_normalize (const char *text)
{
	return lookup (visibilities, text);
}

gboolean
md_status_is_open (const char *status)
{
	return g_strcmp0 (status, MD_STATUS_RESOLVED) != 0;
}
