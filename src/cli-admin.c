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

int
md_cmd_agent (int argc, char **argv)
{
	g_autofree char *name = NULL;
	GOptionEntry entries[] = {
		{ "name", 'n', 0, G_OPTION_ARG_STRING, &name, "display name", "NAME" },
		{ NULL },
	};
	if (!md_cli_parse ("agent", "add EMAIL", "Add an agent.", entries, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 3 || strcmp (argv[1], "add") || !md_address_looks_valid (argv[2])) {
		fprintf (stderr, "Usage: maildesk agent add EMAIL [--name NAME]\n");
		return MD_EX_USAGE;
	}
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	g_autofree char *email = g_ascii_strdown (argv[2], -1);
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
	return MD_EX_TEMPFAIL;
}

static const char *const *
header_values (gpointer user_data, const char *name)
{
	return md_message_header_values (user_data, name);
}

static const char *const *
ptr_array_strv (GPtrArray *a)
{
	g_ptr_array_add (a, NULL);
	return (const char *const *) a->pdata;
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
	if (!md_cli_parse ("classify", NULL, "Classify a message read from standard input.", entries, &argc, &argv))
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
		g_autoptr (GPtrArray) names = g_ptr_array_new ();
		for (guint i = 0; i < msg->attachments->len; i++)
			g_ptr_array_add (names, ((MdAttachment *) msg->attachments->pdata[i])->filename);
		/* copies of the pointers only: a copy keeps the original's free
		 * function, which would free msg's strings a second time */
		g_autoptr (GPtrArray) to = g_ptr_array_copy (msg->to, NULL, NULL);
		g_autoptr (GPtrArray) cc = g_ptr_array_copy (msg->cc, NULL, NULL);
		g_ptr_array_set_free_func (to, NULL);
		g_ptr_array_set_free_func (cc, NULL);
		MdRuleInput input = {
			.from = msg->from_addr, .to = ptr_array_strv (to), .cc = ptr_array_strv (cc),
			.subject = msg->subject, .body = msg->body, .attachments = ptr_array_strv (names),
			.get_header = header_values, .user_data = msg,
		};
		MdClassification cls = { 0 };
		md_rules_classify (rules, &input, &cls);
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

int
md_cmd_check_config (int argc, char **argv)
{
	if (!md_cli_parse ("check-config", NULL, "Validate the configuration, rules and templates.", NULL, &argc, &argv))
		return MD_EX_USAGE;
	const char *path = md_cli.config_path ? md_cli.config_path : md_conf_default_path ();
	g_autoptr (GError) problems = NULL;
	g_autoptr (GError) error = NULL;
	g_autoptr (MdConf) conf = path ? md_conf_load_lenient (path, &problems) : md_conf_new_defaults ();
	if (problems)
		fprintf (stderr, "%s\n", problems->message);
	if (!conf)
		return MD_EX_CONFIG;
	if (!md_desk_check (conf, &error))
		fprintf (stderr, "%s\n", error->message);
	if (problems || error)
		return MD_EX_CONFIG;
	printf ("%s: configuration OK\n", conf->path ? conf->path : "built-in defaults");
	return MD_EX_OK;
}
