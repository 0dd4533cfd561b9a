/* cli-admin.c - the desk's people and its configuration: `agent add`,
 * `org add`, `classify` and `check-config`. */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "cli.h"
#include "ingest.h"
#include "md.h"
#include "message.h"
#include "rules.h"
#include "thread.h"
#include "workflow.h"

/* Unassigns the open tickets of an agent who is one no more: assigned,
 * they would wait for someone who no longer answers, and the breach
 * notices would go to that address.  Resolved ones keep their record. */
static gboolean
unassign_open_tickets (MdDesk *desk, MdStore *store, const char *email, guint *n_r, GError **error)
{
	g_autoptr (GArray) ids = md_store_assigned_open_tickets (store, email, error);
	if (!ids)
		return FALSE;
	for (guint i = 0; i < ids->len; i++) {
		g_autoptr (MdTicket) t = md_store_ticket_get (store, g_array_index (ids, gint64, i), error);
		if (!t || !md_workflow_set_field (desk, store, t, "assignee", "none", NULL, error))
			return FALSE;
	}
	*n_r = ids->len;
	return TRUE;
}

/* Takes a former agent off the tickets they were copied on, each
 * recorded: whoever copied them copied the desk's staff, and someone
 * who left the team should not go on getting the customers' mail nor
 * write to the tickets as one of their participants. */
static gboolean
end_participations (MdStore *store, const char *email, guint *n_r, GError **error)
{
	g_autoptr (GArray) ids = md_store_participations_end (store, email, error);
	if (!ids)
		return FALSE;
	gint64 now = md_now ();
	for (guint i = 0; i < ids->len; i++)
		if (!md_store_history_add (store, g_array_index (ids, gint64, i), now, "system", "participant", email, NULL,
		                           error))
			return FALSE;
	*n_r = ids->len;
	return TRUE;
}

static int
agent_remove (MdDesk *desk, const char *email)
{
	/* no person: whether the configuration names EMAIL */
	if (md_person_is_agent (NULL, email, (const char *const *) desk->conf->agents)) {
		fprintf (stderr, "maildesk: %s is an agent by the configuration ([desk] agents in %s): "
		         "remove it there\n", email, desk->conf->path ? desk->conf->path : "the built-in defaults");
		return MD_EX_DATAERR;
	}
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	gboolean removed = FALSE;
	guint unassigned = 0, ended = 0;
	if (!store || !md_store_begin (store, &error))
		goto fail;
	if (!md_store_agent_remove (store, email, &removed, &error) ||
	    (removed && !unassign_open_tickets (desk, store, email, &unassigned, &error)) ||
	    (removed && !end_participations (store, email, &ended, &error))) {
		md_store_rollback (store);
		goto fail;
	}
	if (!removed) {
		md_store_rollback (store);
		fprintf (stderr, "maildesk: %s is not an agent of this desk\n", email);
		return MD_EX_NOINPUT;
	}
	if (!md_store_commit (store, &error))
		goto fail;
	printf ("agent %s removed; %u open ticket%s unassigned; %u participation%s ended\n", email, unassigned,
	        unassigned == 1 ? "" : "s", ended, ended == 1 ? "" : "s");
	return MD_EX_OK;
fail:
	md_cli_error (error);
	return MD_EX_TEMPFAIL;
}

int
md_cmd_agent (int argc, char **argv)
{
	g_autofree char *name = NULL;
	GOptionEntry entries[] = {
		{ "name", 'n', 0, G_OPTION_ARG_STRING, &name, "display name (add)", "NAME" },
		{ NULL },
	};
	if (!md_cli_parse ("agent", "add EMAIL | remove EMAIL",
	                   "Add an agent, or take an agent's standing away (their open tickets are unassigned, "
	                   "their participations ended).",
	                   entries, &argc, &argv))
		return MD_EX_USAGE;
	gboolean add = argc == 3 && strcmp (argv[1], "add") == 0;
	gboolean remove = argc == 3 && strcmp (argv[1], "remove") == 0 && !name;
	if (!(add || remove) || !md_address_looks_valid (argv[2])) {
		fprintf (stderr, "Usage: maildesk agent add EMAIL [--name NAME]\n"
		                 "       maildesk agent remove EMAIL\n");
		return MD_EX_USAGE;
	}
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autofree char *email = g_ascii_strdown (argv[2], -1);
	if (remove)
		return agent_remove (desk, email);
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	if (!store || !md_store_agent_add (store, email, name, NULL, &error)) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	printf ("agent %s\n", email);
	return MD_EX_OK;
}

int
md_cmd_org (int argc, char **argv)
{
	g_auto (GStrv) members = NULL;
	g_autofree char *domain = NULL;
	GOptionEntry entries[] = {
		{ "member", 'm', 0, G_OPTION_ARG_STRING_ARRAY, &members, "member address (repeatable)", "EMAIL" },
		{ "domain", 'd', 0, G_OPTION_ARG_STRING, &domain, "mail domain whose senders belong to it", "D" },
		{ NULL },
	};
	if (!md_cli_parse ("org", "add NAME", "Add an organization or members to it.", entries, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 3 || strcmp (argv[1], "add") || !*argv[2]) {
		fprintf (stderr, "Usage: maildesk org add NAME [--member EMAIL]... [--domain D]\n");
		return MD_EX_USAGE;
	}
	for (int i = 0; members && members[i]; i++)
		if (!md_address_looks_valid (members[i])) {
			fprintf (stderr, "maildesk: \"%s\" is not an email address\n", members[i]);
			return MD_EX_USAGE;
		}
	if (domain && (strchr (domain, '@') || !strchr (domain, '.'))) {
		fprintf (stderr, "maildesk: \"%s\" is not a mail domain\n", domain);
		return MD_EX_USAGE;
	}
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	gint64 org = 0;
	if (!store || !md_store_begin (store, &error))
		goto fail;
	if (!md_store_org_add (store, argv[2], domain, &org, &error))
		goto fail;
	for (int i = 0; members && members[i]; i++) {
		g_autofree char *email = g_ascii_strdown (members[i], -1);
		if (!md_store_org_add_member (store, org, email, &error))
			goto fail;
	}
	if (!md_store_commit (store, &error))
		goto fail;
	printf ("organization %s\n", argv[2]);
	return MD_EX_OK;
fail:
	if (store)
		md_store_rollback (store);
	md_cli_error (error);
	/* a domain of another organization's: refused, as the input */
	return g_error_matches (error, MD_ERROR, MD_ERROR_DENIED) ? MD_EX_DATAERR : MD_EX_TEMPFAIL;
}

/* Parses standard input from a throw-away spool: classify stores nothing. */
int
md_cmd_classify (int argc, char **argv)
{
	gboolean explain = FALSE;
	GOptionEntry entries[] = {
		{ "explain", 'e', 0, G_OPTION_ARG_NONE, &explain, "print each rule that fired and why", NULL },
		{ NULL },
	};
	if (!md_cli_parse ("classify", NULL, "Classify a message read from standard input.", entries, &argc, &argv) ||
	    !md_cli_no_operands ("classify", argc, argv, "the message is read from standard input"))
		return MD_EX_USAGE;
	g_autoptr (MdConf) conf = md_cli_load_conf ();
	if (!conf)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	g_autofree char *rules_path = md_desk_resolve_path (conf->rules, "filters/default.rules");
	MdRules *rules = md_rules_load_file (rules_path, &error);
	if (!rules) {
		fprintf (stderr, "%s\n", error->message);
		return MD_EX_CONFIG;
	}
	g_autofree char *tmp = g_dir_make_tmp ("maildesk-classify-XXXXXX", &error);
	g_autoptr (MdSpool) spool = tmp ? md_spool_open (tmp, &error) : NULL;
	g_autoptr (MdSpoolWriter) w = spool ? md_spool_writer_new (spool, MD_SPOOL_RAW, conf->max_message_size, &error) : NULL;
	g_autofree char *sha = NULL;
	g_autoptr (MdMessage) msg = NULL;
	char buf[65536];
	ssize_t n;
	int rc = MD_EX_OK;

	while (w && (n = read (STDIN_FILENO, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || !md_spool_writer_write (w, buf, (gsize) n, &error))
			break;
	}
	if (w && !error && md_spool_writer_commit (g_steal_pointer (&w), &sha, &error)) {
		g_autofree char *path = md_spool_path (spool, MD_SPOOL_RAW, sha);
		msg = md_message_parse_file (path, spool, NULL, &error);
	}
	if (!msg) {
		md_cli_error (error);
		rc = md_error_to_exit_code (error);
	} else {
		/* What ingest would see, but the envelope, which stdin has not. */
		g_autofree char *from = md_ingest_sender_address (msg, NULL);
		g_auto (MdRuleView) view = { 0 };
		md_rule_view_init (&view, msg, from, NULL);
		MdClassification cls = { 0 };
		md_rules_classify (rules, &view.input, &cls);
		printf ("category: %s\npriority: %s\n", cls.category ? cls.category : MD_DEFAULT_CATEGORY,
		        cls.priority ? cls.priority : MD_DEFAULT_PRIORITY);
		if (cls.visibility)
			printf ("visibility: %s\n", cls.visibility);
		if (cls.assignee)
			printf ("assignee: %s\n", cls.assignee);
		for (guint i = 0; cls.tags && i < cls.tags->len; i++)
			printf ("tag: %s\n", (char *) cls.tags->pdata[i]);
		if (cls.quarantine)
			printf ("action: quarantine\n");
		if (cls.drop_silently)
			printf ("action: drop-silently\n");
		/* DESIGN 3: classify prints which rules fired; --explain, why. */
		if (!cls.fired || cls.fired->len == 0)
			printf ("no rule fired; defaults apply\n");
		GPtrArray *fired = explain ? cls.fired : cls.fired_rules;
		for (guint i = 0; fired && i < fired->len; i++)
			printf ("fired: %s\n", (char *) fired->pdata[i]);
		if (explain)
			printf ("body patterns: %u run, %u skipped (no word they start with)\n",
				cls.body_patterns_run, cls.body_patterns_skipped);
		md_classification_clear (&cls);
	}
	md_rules_free (rules);
	if (tmp)
		md_remove_tree (tmp);
	return rc;
}

/* One problem check-config prints, and the file and line it points at. */
typedef struct {
	char *text;
	char *file;          /* NULL: no file we know */
	guint64 line;        /* 0: the file as a whole */
	gboolean in_config;  /* the configuration file: printed first */
	guint order;         /* as reported: the last tie-breaker */
} Problem;

static void
problem_clear (gpointer data)
{
	Problem *p = data;
	g_free (p->text);
	g_free (p->file);
}

/* "FILE:LINE: message" or "FILE: message", FILE being the configuration
 * (CONFIG) or a file that exists: not any text before a colon. */
static void
problem_locate (Problem *p, const char *config)
{
	const char *sep = strstr (p->text, ": ");
	if (!sep)
		return;
	g_autofree char *where = g_strndup (p->text, (gsize) (sep - p->text));
	char *colon = strrchr (where, ':');
	guint64 line = 0;
	if (colon && g_ascii_string_to_unsigned (colon + 1, 10, 1, G_MAXUINT64, &line, NULL))
		*colon = '\0';
	else
		line = 0;
	gboolean in_config = g_strcmp0 (where, config) == 0;
	if (!in_config && !g_file_test (where, G_FILE_TEST_EXISTS))
		return;
	p->file = g_steal_pointer (&where);
	p->line = line;
	p->in_config = in_config;
}

static int
problem_compare (gconstpointer a, gconstpointer b)
{
	const Problem *x = a, *y = b;
	if (!x->file != !y->file)
		return x->file ? -1 : 1;
	if (x->file && x->in_config != y->in_config)
		return x->in_config ? -1 : 1;
	int by_file = x->file ? strcmp (x->file, y->file) : 0;
	if (by_file)
		return by_file;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The problems of every report, one a line, in the order of the files
 * they point at (the configuration first, then the others by name) and
 * of their lines, wherever the check that found them runs: the
 * configuration's own, then the rules, templates and forms it names,
 * then the values of its keys again. */
static void
print_problems (const char *const *reports, const char *config)
{
	g_autoptr (GArray) problems = g_array_new (FALSE, TRUE, sizeof (Problem));
	g_array_set_clear_func (problems, problem_clear);
	for (int r = 0; reports[r]; r++) {
		g_auto (GStrv) lines = g_strsplit (reports[r], "\n", -1);
		for (int i = 0; lines[i]; i++) {
			if (!*lines[i])
				continue;
			Problem p = { .text = g_strdup (lines[i]), .order = problems->len };
			problem_locate (&p, config);
			g_array_append_val (problems, p);
		}
	}
	g_array_sort (problems, problem_compare);
	for (guint i = 0; i < problems->len; i++)
		fprintf (stderr, "%s\n", g_array_index (problems, Problem, i).text);
}

int
md_cmd_check_config (int argc, char **argv)
{
	if (!md_cli_parse ("check-config", NULL, "Validate the configuration, rules and templates.", NULL, &argc, &argv) ||
	    !md_cli_no_operands ("check-config", argc, argv, "the file is given with -c before the command"))
		return MD_EX_USAGE;
	const char *path = md_cli.config_path ? md_cli.config_path : md_conf_default_path ();
	g_autoptr (GError) problems = NULL;
	g_autoptr (GError) error = NULL;
	g_autofree char *warnings = NULL;
	g_autoptr (MdConf) conf = path ? md_conf_load_lenient (path, &problems) : md_conf_new_defaults ();
	if (conf)
		md_desk_check (conf, &warnings, &error);
	/* Warnings go among the errors, by file and line; alone they leave
	 * the exit status 0: the desk runs, just not as one probably meant. */
	const char *reports[] = { problems ? problems->message : "", error ? error->message : "",
	                          warnings ? warnings : "", NULL };
	print_problems (reports, conf && conf->path ? conf->path : path ? path : "(built-in defaults)");
	if (problems || error || !conf)
		return MD_EX_CONFIG;
	printf ("%s: configuration OK\n", conf->path ? conf->path : "built-in defaults");
	return MD_EX_OK;
}
