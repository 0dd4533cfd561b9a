/* desk.c - opening a desk: the things every entry point needs loaded. */
#include "config.h"

#include "desk.h"
#include "md.h"

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

MdDesk *
md_desk_open (MdConf *conf, GError **error)
{
	g_autoptr (MdDesk) desk = g_new0 (MdDesk, 1);
	desk->conf = conf;
	g_rw_lock_init (&desk->rules_lock);

	desk->rules_path = md_desk_resolve_path (conf->rules, "filters/default.rules");
	desk->templates_path = md_desk_resolve_path (conf->templates, "templates/");
	desk->rules = md_rules_load_file (desk->rules_path, error);
	if (!desk->rules)
		return NULL;
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
	desk->limits = md_message_limits_default ();
	return g_steal_pointer (&desk);
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
	md_spool_free (desk->spool);
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
	return md_store_open (desk->db_path, read_only ? MD_STORE_READ_ONLY : MD_STORE_READ_WRITE,
	                      MD_BUSY_TIMEOUT_MS, error);
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

gboolean
md_desk_reload (MdDesk *desk, GError **error)
{
	MdRules *fresh = md_rules_load_file (desk->rules_path, error);
	if (!fresh)
		return FALSE;
	g_rw_lock_writer_lock (&desk->rules_lock);
	MdRules *old = desk->rules;
	desk->rules = fresh;
	g_rw_lock_writer_unlock (&desk->rules_lock);
	md_rules_free (old);
	return TRUE;
}
