/* conf.c - maildesk.conf: a table of every known key with its type and
 * default, read with GKeyFile.  GKeyFile reports neither the line of a
 * key nor of a syntax error, so the file is also scanned line by line to
 * say where each problem is. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "conf.h"
#include "md.h"

typedef enum { KEY_STRING, KEY_LIST, KEY_SIZE, KEY_INT, KEY_BOOL, KEY_PERCENTS } KeyType;

typedef struct {
	const char *group;
	const char *key;
	KeyType type;
	gsize offset;
	const char *fallback;
} KeySpec;

#define F(field) offsetof (MdConf, field)

static const KeySpec desk_keys[] = {
	{ "desk", "name", KEY_STRING, F (name), "Example Support" },
	{ "desk", "domain", KEY_STRING, F (domain), "support.example.com" },
	{ "desk", "intake", KEY_STRING, F (intake), "support" },
	{ "desk", "ticket_prefix", KEY_STRING, F (ticket_prefix), "SUP" },
	{ "desk", "data_dir", KEY_STRING, F (data_dir), "./var" },
	{ "desk", "rules", KEY_STRING, F (rules), "filters/default.rules" },
	{ "desk", "templates", KEY_STRING, F (templates), "templates/" },
	{ "desk", "forms", KEY_STRING, F (forms), "filters/forms.conf" },
	{ "desk", "agents", KEY_LIST, F (agents), "" },
	{ "desk", "ack_rate_limit", KEY_STRING, F (ack_rate_limit), "5/1h" },
	{ "desk", "agent_token", KEY_STRING, F (agent_token), "shared" },
	{ "desk", "authserv_id", KEY_LIST, F (authserv_id), "" },
	{ "desk", "require_sender_auth", KEY_BOOL, F (require_sender_auth), "false" },
	{ "lmtp", "listen", KEY_LIST, F (listen), "127.0.0.1:2424" },
	{ "lmtp", "max_message_size", KEY_SIZE, F (max_message_size), "50M" },
	{ "lmtp", "max_recipients", KEY_INT, F (max_recipients), "100" },
	{ "lmtp", "max_connections", KEY_INT, F (max_connections), "512" },
	{ "lmtp", "idle_timeout", KEY_INT, F (idle_timeout), "300" },
	{ "lmtp", "unix_group", KEY_STRING, F (unix_group), NULL },
	{ "lmtp", "unix_mode", KEY_STRING, F (unix_mode), "0660" },
	{ "smtp", "url", KEY_STRING, F (smtp_url), "smtp://127.0.0.1:25" },
	{ "smtp", "from", KEY_STRING, F (smtp_from), NULL },
	{ "smtp", "user", KEY_STRING, F (smtp_user), NULL },
	{ "smtp", "password_file", KEY_STRING, F (smtp_password_file), NULL },
	{ "smtp", "auth", KEY_STRING, F (smtp_auth), "password" },
	{ "smtp", "ca_file", KEY_STRING, F (smtp_ca_file), NULL },
	{ "calendar", "timezone", KEY_STRING, F (timezone), "Europe/Kyiv" },
	{ "calendar", "hours", KEY_STRING, F (hours), "Mon-Fri 09:00-17:00" },
	{ "calendar", "holidays", KEY_STRING, F (holidays), "" },
	{ "sla", "P1.first_response", KEY_STRING, F (first_response[0]), "4h" },
	{ "sla", "P2.first_response", KEY_STRING, F (first_response[1]), "24bh" },
	{ "sla", "P3.first_response", KEY_STRING, F (first_response[2]), "24bh" },
	{ "sla", "P4.first_response", KEY_STRING, F (first_response[3]), "24bh" },
	{ "sla", "ER.first_response", KEY_STRING, F (first_response[4]), NULL },
	{ "sla", "remind_at", KEY_PERCENTS, F (remind_at), "50%, 75%, 90%" },
	{ "sla", "escalate_to", KEY_STRING, F (escalate_to), NULL },
	{ "followup", "waiting_reminders", KEY_LIST, F (waiting_reminders), "3bd, 7bd" },
	{ "followup", "auto_resolve_after", KEY_STRING, F (auto_resolve_after), "10bd" },
	{ "followup", "reopen_window", KEY_STRING, F (reopen_window), "30d" },
};

#undef F
#define I(field) offsetof (MdImapConf, field)

static const KeySpec imap_keys[] = {
	{ "imap.*", "url", KEY_STRING, I (url), NULL },
	{ "imap.*", "user", KEY_STRING, I (user), NULL },
	{ "imap.*", "password_file", KEY_STRING, I (password_file), NULL },
	{ "imap.*", "ca_file", KEY_STRING, I (ca_file), NULL },
	{ "imap.*", "allow_plaintext", KEY_BOOL, I (allow_plaintext), "false" },
	{ "imap.*", "tls_verify", KEY_BOOL, I (tls_verify), "true" },
	{ "imap.*", "poll_interval", KEY_STRING, I (poll_interval), "60s" },
	{ "imap.*", "keepalive", KEY_STRING, I (keepalive), "60s" },
	{ "imap.*", "processed_folder", KEY_STRING, I (processed_folder), NULL },
	{ "imap.*", "failed_folder", KEY_STRING, I (failed_folder), NULL },
	{ "imap.*", "auth", KEY_STRING, I (auth), "login" },
};

#undef I

/* Where each group and key sits in the file, for messages. */
typedef struct {
	char *file;
	GHashTable *lines;  /* "group" or "group\nkey" -> line number */
	GString *errors;
} Loader;

static void
loader_error (Loader *l, int line, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
loader_error (Loader *l, int line, const char *fmt, ...)
{
	va_list ap;
	if (l->errors->len)
		g_string_append_c (l->errors, '\n');
	if (line > 0)
		g_string_append_printf (l->errors, "%s:%d: ", l->file, line);
	else
		g_string_append_printf (l->errors, "%s: ", l->file);
	va_start (ap, fmt);
	g_string_append_vprintf (l->errors, fmt, ap);
	va_end (ap);
}

static int
line_of (GHashTable *lines, const char *group, const char *key)
{
	g_autofree char *k = key ? g_strdup_printf ("%s\n%s", group, key) : g_strdup (group);
	return lines ? GPOINTER_TO_INT (g_hash_table_lookup (lines, k)) : 0;
}

/* Records the line of every group header and key, and reports lines that
 * GKeyFile would reject, since its own error names no line. */
static void
scan_lines (Loader *l, const char *text)
{
	g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
	g_autofree char *group = NULL;

	for (int i = 0; lines[i]; i++) {
		g_autofree char *line = g_strstrip (g_strdup (lines[i]));
		if (!*line || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *end = strchr (line, ']');
			if (!end || end[1]) {
				loader_error (l, i + 1, "malformed group header \"%s\"", line);
				continue;
			}
			g_free (group);
			group = g_strndup (line + 1, (gsize) (end - line - 1));
			g_hash_table_insert (l->lines, g_strdup (group), GINT_TO_POINTER (i + 1));
			continue;
		}
		char *eq = strchr (line, '=');
		if (!eq) {
			loader_error (l, i + 1, "expected \"key = value\", found \"%s\"", line);
			continue;
		}
		if (!group) {
			loader_error (l, i + 1, "key outside of any [group]");
			continue;
		}
		g_autofree char *key = g_strstrip (g_strndup (line, (gsize) (eq - line)));
		g_hash_table_insert (l->lines, g_strdup_printf ("%s\n%s", group, key), GINT_TO_POINTER (i + 1));
	}
}

gboolean
md_conf_parse_size (const char *text, gint64 *bytes_r)
{
	char *end = NULL;
	errno = 0;
	guint64 n = g_ascii_strtoull (text, &end, 10);
	if (end == text || errno)
		return FALSE;
	while (*end == ' ')
		end++;
	guint64 mult = 1;
	switch (g_ascii_toupper (*end)) {
	case 0: break;
	case 'K': mult = 1024; break;
	case 'M': mult = 1024 * 1024; break;
	case 'G': mult = 1024 * 1024 * 1024; break;
	default: return FALSE;
	}
	if (*end && end[1] && !(g_ascii_toupper (end[1]) == 'B' && !end[2]))
		return FALSE;
	if (n > G_MAXINT64 / mult)
		return FALSE;
	*bytes_r = (gint64) (n * mult);
	return TRUE;
}

static char **
split_list (const char *text)
{
	g_auto (GStrv) parts = g_strsplit (text, ",", -1);
	GPtrArray *out = g_ptr_array_new ();
	for (int i = 0; parts[i]; i++) {
		char *item = g_strstrip (parts[i]);
		if (*item)
			g_ptr_array_add (out, g_strdup (item));
	}
	g_ptr_array_add (out, NULL);
	return (char **) g_ptr_array_free (out, FALSE);
}

static gboolean
parse_percents (const char *text, double *out, int *n_out, int max)
{
	g_auto (GStrv) items = split_list (text);
	int n = 0;
	for (int i = 0; items[i]; i++) {
		char *end = NULL;
		double v = g_ascii_strtod (items[i], &end);
		while (*end == ' ')
			end++;
		if (end == items[i] || (*end && strcmp (end, "%") != 0) || v <= 0 || v >= 100 || n >= max)
			return FALSE;
		out[n++] = v / 100.0;
	}
	*n_out = n;
	return TRUE;
}

/* Sets one field from its text; reports a bad value at the key's line. */
static void
set_value (Loader *l, const KeySpec *spec, gpointer base, const char *text, int line, int *n_percents)
{
	gpointer field = (char *) base + spec->offset;

	switch (spec->type) {
	case KEY_STRING:
		g_free (*(char **) field);
		*(char **) field = text && *text ? g_strdup (text) : NULL;
		break;
	case KEY_LIST:
		g_strfreev (*(char ***) field);
		*(char ***) field = split_list (text ? text : "");
		break;
	case KEY_SIZE:
		if (!md_conf_parse_size (text, (gint64 *) field) || *(gint64 *) field <= 0)
			loader_error (l, line, "%s: \"%s\" is not a size (e.g. 50M)", spec->key, text);
		break;
	case KEY_INT: {
		char *end = NULL;
		gint64 v = g_ascii_strtoll (text, &end, 10);
		if (end == text || *end || v <= 0 || v > G_MAXINT)
			loader_error (l, line, "%s: \"%s\" is not a positive number", spec->key, text);
		else
			*(int *) field = (int) v;
		break;
	}
	case KEY_BOOL:
		if (!g_ascii_strcasecmp (text, "true") || !g_ascii_strcasecmp (text, "yes"))
			*(gboolean *) field = TRUE;
		else if (!g_ascii_strcasecmp (text, "false") || !g_ascii_strcasecmp (text, "no"))
			*(gboolean *) field = FALSE;
		else
			loader_error (l, line, "%s: \"%s\" is not true or false", spec->key, text);
		break;
	case KEY_PERCENTS:
		if (!parse_percents (text, (double *) field, n_percents, 8))
			loader_error (l, line, "%s: \"%s\" is not a list of percentages between 0%% and 100%%",
			              spec->key, text);
		break;
	}
}

static void
apply_defaults (const KeySpec *specs, gsize n, gpointer base, int *n_percents)
{
	Loader quiet = { (char *) "defaults", NULL, g_string_new (NULL) };
	for (gsize i = 0; i < n; i++)
		if (specs[i].fallback)
			set_value (&quiet, &specs[i], base, specs[i].fallback, 0, n_percents);
	g_assert (quiet.errors->len == 0);
	g_string_free (quiet.errors, TRUE);
}

MdConf *
md_conf_new_defaults (void)
{
	MdConf *conf = g_new0 (MdConf, 1);
	apply_defaults (desk_keys, G_N_ELEMENTS (desk_keys), conf, &conf->n_remind_at);
	conf->imap = g_ptr_array_new ();
	return conf;
}

static void
imap_conf_free (MdImapConf *m)
{
	g_free (m->name);
	g_free (m->url);
	g_free (m->user);
	g_free (m->password_file);
	g_free (m->ca_file);
	g_free (m->poll_interval);
	g_free (m->keepalive);
	g_free (m->processed_folder);
	g_free (m->failed_folder);
	g_free (m->auth);
	g_free (m);
}

void
md_conf_free (MdConf *conf)
{
	if (!conf)
		return;
	g_free (conf->path);
	if (conf->key_lines)
		g_hash_table_unref (conf->key_lines);
	g_free (conf->name);
	g_free (conf->domain);
	g_free (conf->intake);
	g_free (conf->ticket_prefix);
	g_free (conf->unix_group);
	g_free (conf->unix_mode);
	g_free (conf->data_dir);
	g_free (conf->rules);
	g_free (conf->templates);
	g_free (conf->forms);
	g_strfreev (conf->agents);
	g_free (conf->ack_rate_limit);
	g_free (conf->agent_token);
	g_strfreev (conf->authserv_id);
	g_strfreev (conf->listen);
	g_free (conf->smtp_url);
	g_free (conf->smtp_from);
	g_free (conf->smtp_user);
	g_free (conf->smtp_password_file);
	g_free (conf->smtp_auth);
	g_free (conf->smtp_ca_file);
	g_free (conf->timezone);
	g_free (conf->hours);
	g_free (conf->holidays);
	for (gsize i = 0; i < G_N_ELEMENTS (conf->first_response); i++)
		g_free (conf->first_response[i]);
	g_free (conf->escalate_to);
	g_strfreev (conf->waiting_reminders);
	g_free (conf->auto_resolve_after);
	g_free (conf->reopen_window);
	if (conf->imap) {
		for (guint i = 0; i < conf->imap->len; i++)
			imap_conf_free (conf->imap->pdata[i]);
		g_ptr_array_free (conf->imap, TRUE);
	}
	g_free (conf);
}

static void
read_group (Loader *l, GKeyFile *kf, const char *group, const KeySpec *specs, gsize n,
            gpointer base, int *n_percents)
{
	g_auto (GStrv) keys = g_key_file_get_keys (kf, group, NULL, NULL);
	for (int k = 0; keys && keys[k]; k++) {
		const KeySpec *spec = NULL;
		for (gsize i = 0; i < n && !spec; i++)
			if (strcmp (specs[i].key, keys[k]) == 0)
				spec = &specs[i];
		int line = line_of (l->lines, group, keys[k]);
		if (!spec) {
			loader_error (l, line, "unknown key \"%s\" in [%s]", keys[k], group);
			continue;
		}
		g_autofree char *value = g_key_file_get_string (kf, group, keys[k], NULL);
		set_value (l, spec, base, value ? value : "", line, n_percents);
	}
}

gboolean
md_imap_url_parse (const char *url, gboolean *tls_r, char **host_r, guint16 *port_r, char **mailbox_r,
                   GError **error)
{
	g_autoptr (GError) uri_error = NULL;
	g_autoptr (GUri) uri = url ? g_uri_parse (url, G_URI_FLAGS_NONE, &uri_error) : NULL;

	if (!uri) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "bad url: %s", uri_error ? uri_error->message : "missing");
		return FALSE;
	}
	gboolean tls = !g_ascii_strcasecmp (g_uri_get_scheme (uri), "imaps");
	if (!tls && g_ascii_strcasecmp (g_uri_get_scheme (uri), "imap")) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "url must start with imap:// or imaps://");
		return FALSE;
	}
	if (!g_uri_get_host (uri) || !*g_uri_get_host (uri)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "url names no host");
		return FALSE;
	}
	/* GKeyFile keeps a trailing "# note" in the value, and GUri takes it
	 * for a fragment after a host or mailbox that ends in a blank: a
	 * server that cannot be found, a mailbox that does not exist. */
	if (g_uri_get_query (uri) || g_uri_get_fragment (uri)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "url has a \"%c\" part, which names no mailbox (a comment "
		             "goes on a line of its own; in a mailbox name write %%23 for # and %%3F for ?)",
		             g_uri_get_query (uri) ? '?' : '#');
		return FALSE;
	}
	for (const char *h = g_uri_get_host (uri); *h; h++) {
		if (g_ascii_isspace (*h) || g_ascii_iscntrl (*h)) {
			g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "url: the host \"%s\" has a blank in it",
			             g_uri_get_host (uri));
			return FALSE;
		}
	}
	int port = g_uri_get_port (uri);
	const char *path = g_uri_get_path (uri);
	while (*path == '/')
		path++;
	gsize path_len = strlen (path);
	if (path_len && (g_ascii_isspace (path[0]) || g_ascii_isspace (path[path_len - 1]))) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "url: the mailbox \"%s\" begins or ends with a blank",
		             path);
		return FALSE;
	}
	*tls_r = tls;
	*host_r = g_strdup (g_uri_get_host (uri));
	*port_r = port > 0 ? (guint16) port : (tls ? 993 : 143);
	*mailbox_r = g_strdup (*path ? path : "INBOX");
	return TRUE;
}

/* Whether two urls name the same imap_state row (imap.c keys it by the
 * scheme, user, host as written, port and mailbox). */
static gboolean
imap_same_state (const MdImapConf *a, const MdImapConf *b)
{
	gboolean tls_a = FALSE, tls_b = FALSE;
	g_autofree char *host_a = NULL, *mailbox_a = NULL, *host_b = NULL, *mailbox_b = NULL;
	guint16 port_a = 0, port_b = 0;

	return md_imap_url_parse (a->url, &tls_a, &host_a, &port_a, &mailbox_a, NULL) &&
	       md_imap_url_parse (b->url, &tls_b, &host_b, &port_b, &mailbox_b, NULL) && tls_a == tls_b &&
	       port_a == port_b && !strcmp (host_a, host_b) && !strcmp (mailbox_a, mailbox_b) &&
	       !g_strcmp0 (a->user, b->user);
}

/* What makes two sections one mailbox: the host (without case), the port
 * (the two schemes' default ports, 143 and 993, count as one: the same
 * server reached with and without TLS from the first byte), the user and
 * the mailbox (INBOX without case, RFC 3501 5.1).  NULL for a bad url. */
static char *
imap_identity (const MdImapConf *m)
{
	gboolean tls = FALSE;
	g_autofree char *host = NULL, *mailbox = NULL;
	guint16 port = 0;

	if (!m->url || !m->user || !md_imap_url_parse (m->url, &tls, &host, &port, &mailbox, NULL))
		return NULL;
	if ((tls && port == 993) || (!tls && port == 143))
		port = 0;
	g_autofree char *lower = g_ascii_strdown (host, -1);
	return g_strdup_printf ("%s\n%u\n%s\n%s", lower, port, m->user,
	                        g_ascii_strcasecmp (mailbox, "INBOX") ? mailbox : "INBOX");
}

/* Two sections polling one mailbox would race each other for every
 * message (both fetch it, one files it, the other finds it gone) and, with
 * the same url, share one saved UIDVALIDITY and last UID: refused, naming
 * both sections. */
static void
check_imap_duplicates (Loader *l, GPtrArray *imap)
{
	g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; i < imap->len; i++) {
		const MdImapConf *m = imap->pdata[i];
		char *id = imap_identity (m);
		if (!id)
			continue;
		const MdImapConf *first = g_hash_table_lookup (seen, id);
		if (!first) {
			g_hash_table_insert (seen, id, (gpointer) m);
			continue;
		}
		g_free (id);
		g_autofree char *group = g_strdup_printf ("imap.%s", m->name);
		g_autofree char *first_group = g_strdup_printf ("imap.%s", first->name);
		int first_line = line_of (l->lines, first_group, "url");
		g_autofree char *where = first_line > 0 ? g_strdup_printf (" (%s:%d)", l->file, first_line) : g_strdup ("");
		loader_error (l, line_of (l->lines, group, "url"),
		              "[%s] polls the same mailbox as [%s]%s: user %s at %s; two pollers would race each other for "
		              "every message%s: keep one of the two sections", group, first_group, where, m->user, m->url,
		              imap_same_state (m, first) ? " and share one saved last UID" : "");
	}
}

/* A file name with a blank before a '#': the trailing "# note" that
 * GKeyFile keeps in the value.  check-config reads no password file, so
 * without this the mistake shows only when the desk first logs in. */
static void
check_file_name (Loader *l, const char *group, const char *key, const char *value)
{
	for (const char *p = value ? strchr (value, '#') : NULL; p; p = strchr (p + 1, '#'))
		if (p > value && g_ascii_isspace (p[-1])) {
			loader_error (l, line_of (l->lines, group, key), "%s: \"%s\" keeps a trailing comment "
			              "(a comment goes on a line of its own)", key, value);
			return;
		}
}

static void
check_imap (Loader *l, MdImapConf *m)
{
	g_autofree char *group = g_strdup_printf ("imap.%s", m->name);
	const char *g = group;
	int line = line_of (l->lines, g, NULL);
	gboolean tls = FALSE;
	g_autofree char *host = NULL, *mailbox = NULL;
	guint16 port = 0;
	g_autoptr (GError) url_error = NULL;
	if (!m->url)
		loader_error (l, line, "[%s] needs a url", g);
	else if (!md_imap_url_parse (m->url, &tls, &host, &port, &mailbox, &url_error))
		loader_error (l, line_of (l->lines, g, "url"), "[%s] %s", g, url_error->message);
	if (!m->user)
		loader_error (l, line, "[%s] needs a user", g);
	if (!m->password_file)
		loader_error (l, line, "[%s] needs a password_file", g);
	check_file_name (l, g, "password_file", m->password_file);
	check_file_name (l, g, "ca_file", m->ca_file);
	if (m->auth && g_ascii_strcasecmp (m->auth, "login") && g_ascii_strcasecmp (m->auth, "plain") &&
	    g_ascii_strcasecmp (m->auth, "xoauth2"))
		loader_error (l, line_of (l->lines, g, "auth"), "[%s] auth must be login, plain or xoauth2", g);
}

static void
check_values (Loader *l, MdConf *conf)
{
	static const char *const required[][2] = {
		{ "desk", "domain" }, { "desk", "intake" }, { "desk", "ticket_prefix" }, { "desk", "data_dir" },
	};
	const char *const values[] = { conf->domain, conf->intake, conf->ticket_prefix, conf->data_dir };

	for (gsize i = 0; i < G_N_ELEMENTS (values); i++)
		if (!values[i])
			loader_error (l, line_of (l->lines, required[i][0], required[i][1]),
			              "%s must not be empty", required[i][1]);
	check_file_name (l, "desk", "data_dir", conf->data_dir);
	check_file_name (l, "desk", "rules", conf->rules);
	check_file_name (l, "desk", "templates", conf->templates);
	check_file_name (l, "desk", "forms", conf->forms);
	check_file_name (l, "smtp", "password_file", conf->smtp_password_file);
	check_file_name (l, "smtp", "ca_file", conf->smtp_ca_file);
	if (conf->intake && strpbrk (conf->intake, "@+ \t"))
		loader_error (l, line_of (l->lines, "desk", "intake"),
		              "intake is a local part: no '@', '+' or blanks");
	if (conf->ticket_prefix) {
		for (const char *p = conf->ticket_prefix; *p; p++)
			if (!g_ascii_isalnum (*p)) {
				loader_error (l, line_of (l->lines, "desk", "ticket_prefix"),
				              "ticket_prefix must be letters and digits");
				break;
			}
	}
	/* a trailing "# note" stays in the value: mail to it would go nowhere */
	for (int i = 0; conf->agents && conf->agents[i]; i++)
		if (!md_address_looks_valid (conf->agents[i]))
			loader_error (l, line_of (l->lines, "desk", "agents"), "agents: \"%s\" is not an email address",
			              conf->agents[i]);
	/* comma-separated, as the scheduler reads it */
	g_auto (GStrv) leads = conf->escalate_to && *conf->escalate_to ? g_strsplit (conf->escalate_to, ",", 0) : NULL;
	for (int i = 0; leads && leads[i]; i++)
		if (!md_address_looks_valid (g_strstrip (leads[i])))
			loader_error (l, line_of (l->lines, "sla", "escalate_to"), "escalate_to: \"%s\" is not an email address",
			              leads[i]);
	if (conf->listen && !conf->listen[0])
		loader_error (l, line_of (l->lines, "lmtp", "listen"), "listen needs at least one address");
	if (conf->unix_group && !getgrnam (conf->unix_group))
		loader_error (l, line_of (l->lines, "lmtp", "unix_group"), "unix_group: no group named \"%s\"",
		              conf->unix_group);
	if (conf->unix_mode && md_conf_unix_mode (conf) == 0)
		loader_error (l, line_of (l->lines, "lmtp", "unix_mode"),
		              "unix_mode: \"%s\" is not octal permissions for owner and group, such as 0660",
		              conf->unix_mode);
}

/* Read and write for the owner at least, nothing for others: the
 * socket takes mail into the desk. */
guint
md_conf_unix_mode (const MdConf *conf)
{
	const char *text = conf->unix_mode ? conf->unix_mode : "0660";
	char *end = NULL;
	guint64 mode = g_ascii_strtoull (text, &end, 8);
	if (!*text || *end || mode > 0777 || (mode & 0007) || (mode & 0600) != 0600)
		return 0;
	return (guint) mode;
}

MdConf *
md_conf_load (const char *path, GError **error)
{
	GError *problems = NULL;
	MdConf *conf = md_conf_load_lenient (path, &problems);
	if (conf && problems) {
		md_conf_free (conf);
		conf = NULL;
	}
	if (problems)
		g_propagate_error (error, problems);
	return conf;
}

MdConf *
md_conf_load_lenient (const char *path, GError **problems_r)
{
	GError **error = problems_r;
	g_autoptr (MdConf) conf = md_conf_new_defaults ();
	g_autofree char *text = NULL;
	gsize len = 0;
	GError *local = NULL;

	if (!g_file_get_contents (path, &text, &len, &local)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: %s", path, local->message);
		g_error_free (local);
		return NULL;
	}
	conf->path = g_strdup (path);
	/* the byte order mark some editors put first is no text */
	if (len >= 3 && memcmp (text, "\xEF\xBB\xBF", 3) == 0) {
		len -= 3;
		memmove (text, text + 3, len + 1);
	}

	Loader l = { (char *) path, g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL),
		     g_string_new (NULL) };
	if (!g_utf8_validate (text, (gssize) len, NULL))
		loader_error (&l, 0, "not valid UTF-8");
	scan_lines (&l, text);

	g_autoptr (GKeyFile) kf = g_key_file_new ();
	if (l.errors->len == 0 && !g_key_file_load_from_data (kf, text, len, G_KEY_FILE_NONE, &local)) {
		loader_error (&l, 0, "%s", local->message);
		g_clear_error (&local);
	}
	if (l.errors->len == 0) {
		g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);
		for (int i = 0; groups[i]; i++) {
			const char *g = groups[i];
			if (g_str_has_prefix (g, "imap.") && g[5]) {
				MdImapConf *m = g_new0 (MdImapConf, 1);
				int unused = 0;
				m->name = g_strdup (g + 5);
				apply_defaults (imap_keys, G_N_ELEMENTS (imap_keys), m, &unused);
				read_group (&l, kf, g, imap_keys, G_N_ELEMENTS (imap_keys), m, &unused);
				g_ptr_array_add (conf->imap, m);
				check_imap (&l, m);
				continue;
			}
			gboolean known = FALSE;
			for (gsize k = 0; k < G_N_ELEMENTS (desk_keys) && !known; k++)
				known = strcmp (desk_keys[k].group, g) == 0;
			if (!known) {
				loader_error (&l, line_of (l.lines, g, NULL), "unknown group [%s]", g);
				continue;
			}
			read_group (&l, kf, g, desk_keys, G_N_ELEMENTS (desk_keys), conf, &conf->n_remind_at);
		}
		check_imap_duplicates (&l, conf->imap);
		check_values (&l, conf);
	}

	gboolean ok = l.errors->len == 0;
	if (!ok)
		g_set_error_literal (error, MD_ERROR, MD_ERROR_CONFIG, l.errors->str);
	g_string_free (l.errors, TRUE);
	/* Kept for md_conf_where(): later checks (rules, durations) point here. */
	conf->key_lines = l.lines;
	(void) ok;
	return g_steal_pointer (&conf);
}

const char *
md_conf_default_path (void)
{
	/* DESIGN 3's order, then the sysconfdir of a build installed
	 * elsewhere (/usr/local/etc): a file in /etc wins over it. */
	static const char *const candidates[] = { "./maildesk.conf", "/etc/maildesk/maildesk.conf",
						  MD_SYSCONFDIR "/maildesk/maildesk.conf" };
	for (gsize i = 0; i < G_N_ELEMENTS (candidates); i++)
		if (g_file_test (candidates[i], G_FILE_TEST_IS_REGULAR))
			return candidates[i];
	return NULL;
}

char *
md_conf_where (const MdConf *conf, const char *group, const char *key)
{
	if (!conf->path)
		return g_strdup ("(built-in defaults)");
	int line = line_of (conf->key_lines, group, key);
	return line > 0 ? g_strdup_printf ("%s:%d", conf->path, line) : g_strdup (conf->path);
}
