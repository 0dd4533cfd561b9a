/* desk.c - opening a desk: the things every entry point needs loaded. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "desk.h"
#include "imap.h"
#include "lmtp.h"
#include "md.h"
#include "smtp.h"

#define MD_BUSY_TIMEOUT_MS 5000

char *
md_desk_resolve_path (const char *configured, const char *fallback_default)
{
	if (g_file_test (configured, G_FILE_TEST_EXISTS) || g_strcmp0 (configured, fallback_default) != 0)
		return g_strdup (configured);
	g_autofree char *installed = g_build_filename (MD_PKGDATADIR, configured, NULL);
	if (g_file_test (installed, G_FILE_TEST_EXISTS))
		return g_steal_pointer (&installed);
	return g_strdup (configured);
}

static void
add_problem (GString *problems, const char *text)
{
	if (problems->len)
		g_string_append_c (problems, '\n');
	g_string_append (problems, text);
}

static void
parse_duration (MdConf *conf, GString *problems, const char *group, const char *key, const char *text,
                MdDuration *out)
{
	g_autoptr (GError) error = NULL;
	if (!md_duration_parse (text, out, &error)) {
		g_autofree char *where = md_conf_where (conf, group, key);
		g_autofree char *msg = g_strdup_printf ("%s: %s: %s", where, key, error->message);
		add_problem (problems, msg);
	}
}

/* "5/1h": at most 5 per hour. */
static gboolean
parse_rate (const char *text, int *count_r, gint64 *period_r)
{
	const char *slash = text ? strchr (text, '/') : NULL;
	MdDuration d;
	char *end = NULL;
	if (!slash)
		return FALSE;
	gint64 n = g_ascii_strtoll (text, &end, 10);
	if (end != slash || n < 0 || n > 100000)
		return FALSE;
	if (!md_duration_parse (slash + 1, &d, NULL) || d.unit != MD_DURATION_SECONDS || d.amount <= 0)
		return FALSE;
	*count_r = (int) n;
	*period_r = d.amount;
	return TRUE;
}

/* The forms file: none when `forms` is empty, or when it is the default
 * and missing (a desk configured before forms existed); any other
 * missing file is an error. */
static char *
forms_path (MdConf *conf)
{
	if (!conf->forms || !*conf->forms)
		return NULL;
	char *path = md_desk_resolve_path (conf->forms, "filters/forms.conf");
	if (strcmp (conf->forms, "filters/forms.conf") == 0 && !g_file_test (path, G_FILE_TEST_EXISTS)) {
		g_free (path);
		return NULL;
	}
	return path;
}

/* The rules, the templates and the intake forms: the files of the mail
 * flow, which an agent may be editing while serve runs the last good set. */
static void
load_mail_files (MdDesk *desk, GString *problems)
{
	MdConf *conf = desk->conf;
	g_autoptr (GError) error = NULL;

	desk->rules = md_rules_load_file (desk->rules_path, &error);
	if (!desk->rules && g_error_matches (error, MD_ERROR, MD_ERROR_IO)) {
		/* no file to point into: point at the key that names it */
		g_autofree char *where = md_conf_where (conf, "desk", "rules");
		g_autofree char *msg = g_strdup_printf ("%s: rules: %s", where, error->message);
		add_problem (problems, msg);
	} else if (!desk->rules) {
		add_problem (problems, error->message);
	}
	g_clear_error (&error);
	if (!g_file_test (desk->templates_path, G_FILE_TEST_IS_DIR)) {
		g_autofree char *where = md_conf_where (conf, "desk", "templates");
		g_autofree char *msg = g_strdup_printf ("%s: templates: \"%s\" is not a directory", where,
		                                        desk->templates_path);
		add_problem (problems, msg);
	} else if (!(desk->templates = md_template_set_load (desk->templates_path, &error))) {
		add_problem (problems, error->message);
	}
	g_clear_error (&error);
	desk->forms_path = forms_path (conf);
	if (desk->forms_path && !(desk->forms = md_forms_load_file (desk->forms_path, &error)))
		add_problem (problems, error->message);
	g_clear_error (&error);
}

/* Fills desk (which may be a scratch one) and collects every problem.
 * For a READER the files of the mail flow (rules, templates, intake
 * forms) are neither loaded nor checked. */
static void
load_parts (MdDesk *desk, GString *problems, gboolean reader)
{
	MdConf *conf = desk->conf;
	g_autoptr (GError) error = NULL;

	desk->rules_path = md_desk_resolve_path (conf->rules, "filters/default.rules");
	desk->templates_path = md_desk_resolve_path (conf->templates, "templates/");
	if (!reader)
		load_mail_files (desk, problems);
	desk->calendar = md_calendar_new (conf->timezone, conf->hours, conf->holidays, &error);
	if (!desk->calendar) {
		const char *key = strstr (error->message, "hours") ? "hours"
		                  : strstr (error->message, "holiday") ? "holidays" : "timezone";
		g_autofree char *where = md_conf_where (conf, "calendar", key);
		g_autofree char *msg = g_strdup_printf ("%s: [calendar]: %s", where, error->message);
		add_problem (problems, msg);
	}
	g_clear_error (&error);
	for (int i = 0; i < 5; i++) {
		if (!conf->first_response[i])
			continue;
		g_autofree char *key = g_strdup_printf ("%s.first_response", md_priorities[i]);
		parse_duration (conf, problems, "sla", key, conf->first_response[i], &desk->first_response[i]);
		desk->has_first_response[i] = TRUE;
	}
	for (int i = 0; conf->waiting_reminders && conf->waiting_reminders[i]; i++) {
		if (i >= (int) G_N_ELEMENTS (desk->waiting_reminders)) {
			g_autofree char *where = md_conf_where (conf, "followup", "waiting_reminders");
			g_autofree char *msg = g_strdup_printf ("%s: waiting_reminders: at most %d follow-ups", where,
			                                        (int) G_N_ELEMENTS (desk->waiting_reminders));
			add_problem (problems, msg);
			break;
		}
		parse_duration (conf, problems, "followup", "waiting_reminders", conf->waiting_reminders[i],
		                &desk->waiting_reminders[i]);
		desk->n_waiting_reminders = i + 1;
	}
	parse_duration (conf, problems, "followup", "auto_resolve_after",
	                conf->auto_resolve_after ? conf->auto_resolve_after : "", &desk->auto_resolve_after);
	parse_duration (conf, problems, "followup", "reopen_window",
	                conf->reopen_window ? conf->reopen_window : "", &desk->reopen_window);
	if (g_strcmp0 (conf->agent_token, "shared") != 0 && g_strcmp0 (conf->agent_token, "separate") != 0) {
		g_autofree char *where = md_conf_where (conf, "desk", "agent_token");
		g_autofree char *msg = g_strdup_printf ("%s: agent_token: \"%s\" is neither shared nor separate", where,
		                                        conf->agent_token ? conf->agent_token : "");
		add_problem (problems, msg);
	}
	if (conf->require_sender_auth && !(conf->authserv_id && conf->authserv_id[0])) {
		g_autofree char *where = md_conf_where (conf, "desk", "require_sender_auth");
		g_autofree char *msg = g_strdup_printf ("%s: require_sender_auth: no authserv_id says whose "
		                                        "Authentication-Results to read, so no sender could pass", where);
		add_problem (problems, msg);
	}
	if (!parse_rate (conf->ack_rate_limit, &desk->ack_limit, &desk->ack_limit_period)) {
		g_autofree char *where = md_conf_where (conf, "desk", "ack_rate_limit");
		g_autofree char *msg = g_strdup_printf ("%s: ack_rate_limit: \"%s\" is not COUNT/DURATION (e.g. 5/1h)",
		                                        where, conf->ack_rate_limit ? conf->ack_rate_limit : "");
		add_problem (problems, msg);
	}
}

typedef struct {
	MdConf *conf;
	GString *problems;
	const char *group;
} Checking;

static void
report_problem (const char *key, const char *message, gpointer data)
{
	Checking *c = data;
	g_autofree char *where = md_conf_where (c->conf, c->group, key);
	g_autofree char *msg = g_strdup_printf ("%s: %s", where, message);
	add_problem (c->problems, msg);
}

/* What serve, fetch and outbox flush would refuse at start, and values
 * that cannot be meant (a trailing "# comment" kept in the value: GKeyFile
 * has none), for check-config alone: other commands do not need them. */
static void
check_services (MdConf *conf, GString *problems)
{
	Checking c = { conf, problems, "desk" };
	if (conf->domain && strpbrk (conf->domain, " \t@#;,<>"))
		report_problem ("domain", "domain: expected a mail domain such as support.example.com "
		                "(comments go on lines of their own)", &c);
	c.group = "lmtp";
	for (int i = 0; conf->listen && conf->listen[i]; i++) {
		g_autoptr (GError) error = NULL;
		if (!md_lmtp_listen_check (conf->listen[i], &error))
			report_problem ("listen", error->message, &c);
	}
	c.group = "smtp";
	md_smtp_conf_check (conf, report_problem, &c);
	for (guint i = 0; conf->imap && i < conf->imap->len; i++) {
		MdImapConf *m = conf->imap->pdata[i];
		g_autofree char *group = g_strdup_printf ("imap.%s", m->name);
		c.group = group;
		md_imap_conf_check (m, report_problem, &c);
	}
}

static void
template_warning (MdDesk *desk, GString *warnings, const char *event, const char *text)
{
	g_autofree char *file = g_strconcat (event, ".tmpl", NULL);
	g_autofree char *path = g_build_filename (desk->templates_path, file, NULL);
	g_autofree char *msg = g_strdup_printf ("%s: warning: %s", path, text);
	add_problem (warnings, msg);
}

/* What loads but is likely a mistake, for check-config's warnings. */
static void
check_mail_files (MdDesk *desk, GString *warnings)
{
	if (!desk->templates)
		return;
	/* The acknowledgement is where a new ticket's customer is asked for
	 * the fields its form requires (the second question goes only to
	 * one who has answered part of them): an ack without {{missing}}
	 * never asks. */
	const MdTemplate *ack = md_template_set_get (desk->templates, "ack");
	if (ack && md_forms_require_any (desk->forms) && !md_template_uses (ack, "missing")) {
		g_autofree char *text = g_strdup_printf ("intake forms are configured (%s) but this template does not "
		                                         "use {{missing}}: customers are never asked for the fields "
		                                         "their form requires", desk->forms_path);
		template_warning (desk, warnings, "ack", text);
	}
	/* DESIGN 7: every notification carries the link that marks its
	 * ticket resolved.  A `list` carries one per ticket, in {{tickets}}. */
	for (int i = 0; md_template_events[i]; i++) {
		const char *event = md_template_events[i];
		const MdTemplate *t = md_template_set_get (desk->templates, event);
		if (t && !md_template_uses (t, "resolve_link") &&
		    !(strcmp (event, "list") == 0 && md_template_uses (t, "tickets")))
			template_warning (desk, warnings, event, "this template does not use {{resolve_link}}: its mail "
			                  "carries no link that marks the ticket resolved (DESIGN 7)");
	}
}

gboolean
md_desk_check (MdConf *conf, char **warnings_r, GError **error)
{
	MdDesk scratch = { .conf = conf };
	g_autoptr (GString) problems = g_string_new (NULL);
	g_autoptr (GString) warnings = g_string_new (NULL);

	load_parts (&scratch, problems, FALSE);
	check_services (conf, problems);
	check_mail_files (&scratch, warnings);
	if (warnings_r)
		*warnings_r = warnings->len ? g_strdup (warnings->str) : NULL;
	scratch.conf = NULL;
	if (scratch.rules)
		md_rules_free (scratch.rules);
	md_template_set_free (scratch.templates);
	md_forms_unref (scratch.forms);
	md_calendar_free (scratch.calendar);
	g_free (scratch.forms_path);
	g_free (scratch.rules_path);
	g_free (scratch.templates_path);
	if (problems->len) {
		g_set_error_literal (error, MD_ERROR, MD_ERROR_CONFIG, problems->str);
		return FALSE;
	}
	return TRUE;
}

/* Root working on a data directory another user owns (cron's tick, an
 * admin's deliver or ticket set, an MTA's pipe run as root) becomes that
 * user first: a spool directory, WAL or -shm file root created would be
 * root's 0700/0600 and refuse the desk's own user from then on (every
 * message whose attachment hashes under that directory deferred for
 * good).  Root on a directory of root's, or one not yet made, stays root. */
static gboolean
become_data_dir_owner (const char *data_dir, GError **error)
{
	struct stat st;
	if (geteuid () != 0 || stat (data_dir, &st) < 0 || st.st_uid == 0)
		return TRUE;
	struct passwd *pw = getpwuid (st.st_uid);
	gid_t gid = pw ? pw->pw_gid : st.st_gid;
	int rc = pw ? initgroups (pw->pw_name, gid) : setgroups (0, NULL);
	if (rc == 0)
		rc = setgid (gid);
	if (rc == 0)
		rc = setuid (st.st_uid);
	if (rc < 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "cannot become the owner (uid %u) of %s: %s",
		             (unsigned) st.st_uid, data_dir, g_strerror (errno));
		return FALSE;
	}
	g_debug ("desk: running as uid %u, the owner of %s", (unsigned) st.st_uid, data_dir);
	return TRUE;
}

static MdDesk *
desk_open (MdConf *conf, gboolean reader, GError **error)
{
	g_autoptr (MdDesk) desk = g_new0 (MdDesk, 1);
	g_autoptr (GString) problems = g_string_new (NULL);
	desk->conf = conf;
	g_rw_lock_init (&desk->rules_lock);

	if (!become_data_dir_owner (conf->data_dir, error))
		return NULL;
	load_parts (desk, problems, reader);
	if (problems->len) {
		g_set_error_literal (error, MD_ERROR, MD_ERROR_CONFIG, problems->str);
		return NULL;
	}
	g_autofree char *spool_dir = g_build_filename (conf->data_dir, "spool", NULL);
	desk->spool = md_spool_open (spool_dir, error);
	if (!desk->spool)
		return NULL;
	desk->secret = md_token_load_secret (conf->data_dir, error);
	if (!desk->secret)
		return NULL;
	desk->db_path = g_build_filename (conf->data_dir, "maildesk.db", NULL);
	desk->desk_address = g_strdup_printf ("%s@%s", conf->intake, conf->domain);
	desk->addressing.domain = conf->domain;
	desk->addressing.intake = conf->intake;
	desk->addressing.prefix = conf->ticket_prefix;
	desk->addressing.secret = desk->secret;
	desk->addressing.agent_tokens = g_strcmp0 (conf->agent_token, "separate") == 0;
	desk->limits = md_message_limits_default ();
	return g_steal_pointer (&desk);
}

MdDesk *
md_desk_open (MdConf *conf, GError **error)
{
	return desk_open (conf, FALSE, error);
}

MdDesk *
md_desk_open_reader (MdConf *conf, GError **error)
{
	return desk_open (conf, TRUE, error);
}

void
md_desk_free (MdDesk *desk)
{
	if (!desk)
		return;
	md_conf_free (desk->conf);
	if (desk->rules)
		md_rules_free (desk->rules);
	g_rw_lock_clear (&desk->rules_lock);
	md_template_set_free (desk->templates);
	md_forms_unref (desk->forms);
	g_free (desk->forms_path);
	md_calendar_free (desk->calendar);
	md_spool_free (desk->spool);
	md_turn_free (desk->write_turn);
	if (desk->secret)
		g_bytes_unref (desk->secret);
	g_free (desk->db_path);
	g_free (desk->rules_path);
	g_free (desk->templates_path);
	g_free (desk->desk_address);
	g_free (desk);
}

MdStore *
md_desk_open_store (MdDesk *desk, gboolean read_only, GError **error)
{
	MdStore *store = md_store_open (desk->db_path, read_only ? MD_STORE_READ_ONLY : MD_STORE_READ_WRITE,
	                                MD_BUSY_TIMEOUT_MS, error);
	if (store && !read_only && desk->write_turn)
		md_store_share_turn (store, desk->write_turn);
	return store;
}

void
md_desk_classify (MdDesk *desk, const MdRuleInput *input, MdClassification *out)
{
	g_rw_lock_reader_lock (&desk->rules_lock);
	md_rules_classify (desk->rules, input, out);
	g_rw_lock_reader_unlock (&desk->rules_lock);
}

gboolean
md_desk_matches_recipient (MdDesk *desk, const char *address)
{
	g_rw_lock_reader_lock (&desk->rules_lock);
	gboolean match = md_rules_matches_recipient (desk->rules, address);
	g_rw_lock_reader_unlock (&desk->rules_lock);
	return match;
}

MdForms *
md_desk_forms (MdDesk *desk)
{
	g_rw_lock_reader_lock (&desk->rules_lock);
	MdForms *forms = desk->forms ? md_forms_ref (desk->forms) : NULL;
	g_rw_lock_reader_unlock (&desk->rules_lock);
	return forms;
}

gboolean
md_desk_reload (MdDesk *desk, GError **error)
{
	GError *local = NULL;
	MdRules *fresh = md_rules_load_file (desk->rules_path, &local);
	MdTemplateSet *fresh_templates = fresh ? md_template_set_load (desk->templates_path, &local) : NULL;
	MdForms *fresh_forms = fresh_templates && desk->forms_path ? md_forms_load_file (desk->forms_path, &local) : NULL;

	if (!fresh || !fresh_templates || (desk->forms_path && !fresh_forms)) {
		if (fresh)
			md_rules_free (fresh);
		md_template_set_free (fresh_templates);
		g_propagate_error (error, local);
		return FALSE;
	}
	g_rw_lock_writer_lock (&desk->rules_lock);
	MdRules *old = desk->rules;
	MdTemplateSet *old_templates = desk->templates;
	MdForms *old_forms = desk->forms;
	desk->rules = fresh;
	desk->templates = fresh_templates;
	desk->forms = fresh_forms;
	g_rw_lock_writer_unlock (&desk->rules_lock);
	md_rules_free (old);
	md_template_set_free (old_templates);
	md_forms_unref (old_forms);
	return TRUE;
}
