/* cli-purge.c - `maildesk purge --resolved-before DAYS | --person EMAIL
 * [--dry-run] [--json]`: retention and erasure (purge.h), and what went
 * (or would go).  JSON is one object with stable names: add, never
 * rename. */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>

#include "cli.h"
#include "md.h"
#include "purge.h"

static void
add_count (JsonBuilder *b, const char *name, guint n)
{
	json_builder_set_member_name (b, name);
	json_builder_add_int_value (b, n);
}

static void
print_json (const MdPurgeStats *st, const char *person, gboolean dry_run)
{
	g_autoptr (JsonBuilder) b = json_builder_new ();
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "dry_run");
	json_builder_add_boolean_value (b, dry_run);
	add_count (b, "tickets", st->tickets);
	add_count (b, "messages", st->messages);
	add_count (b, "messages_on_no_ticket", st->ticketless);
	add_count (b, "attachments", st->attachments);
	add_count (b, "outbox", st->outbox);
	add_count (b, "outbox_queued", st->outbox_queued);
	add_count (b, "files", st->files);
	add_count (b, "files_waiting", st->files_waiting);
	md_json_add_string (b, "person", person);
	if (person) {
		add_count (b, "messages_erased_elsewhere", st->redacted);
		json_builder_set_member_name (b, "person_removed");
		json_builder_add_boolean_value (b, st->people > 0);
	}
	json_builder_end_object (b);
	md_json_print (b);
}

static void
print_text (const MdPurgeStats *st, const char *person, gboolean dry_run)
{
	printf ("%s\n", dry_run ? "would delete (dry run, nothing changed):" : "deleted:");
	printf ("  tickets       %u\n", st->tickets);
	printf ("  messages      %u\n", st->messages);
	printf ("  messages on no ticket  %u\n", st->ticketless);
	printf ("  attachments   %u\n", st->attachments);
	printf ("  outbox rows   %u", st->outbox);
	if (st->outbox_queued)
		printf (" (%u still queued: that mail is not sent)", st->outbox_queued);
	printf ("\n  files         %u", st->files);
	if (st->files_waiting)
		printf (" (%u more written too recently: left for a later run)", st->files_waiting);
	printf ("\n");
	if (!person)
		return;
	printf ("  messages on other tickets emptied  %u\n", st->redacted);
	printf ("  person %s  %s\n", person, st->people ? "removed" : "not known");
}

int
md_cmd_purge (int argc, char **argv)
{
	g_autofree char *before = NULL;
	g_autofree char *person = NULL;
	gboolean dry_run = FALSE, json = FALSE;
	GOptionEntry entries[] = {
		{ "resolved-before", 0, 0, G_OPTION_ARG_STRING, &before,
		  "delete tickets resolved, and mail kept on no ticket, more than DAYS days (or 12h, 30d) ago", "DAYS" },
		{ "person", 0, 0, G_OPTION_ARG_STRING, &person,
		  "erase this person: their tickets, their messages elsewhere, their record", "EMAIL" },
		{ "dry-run", 0, 0, G_OPTION_ARG_NONE, &dry_run, "say what would go, change nothing", NULL },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL },
		{ NULL },
	};
	if (!md_cli_parse ("purge", NULL, "Delete old resolved tickets, or erase a person.", entries, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 1 || (before != NULL) == (person != NULL) || (person && !*person)) {
		fprintf (stderr, "Usage: maildesk purge --resolved-before DAYS | --person EMAIL [--dry-run] [--json]\n");
		return MD_EX_USAGE;
	}
	gint64 age = 0;
	if (before && !md_cli_parse_age ("--resolved-before", before, &age))
		return MD_EX_USAGE;
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	MdPurgeStats st;
	gboolean ok = store && (person ? md_purge_person (desk, store, person, dry_run, &st, &error)
	                               : md_purge_resolved (desk, store, md_now () - age,
	                                                    dry_run, &st, &error));
	if (!ok) {
		md_cli_error (error);
		return g_error_matches (error, MD_ERROR, MD_ERROR_DENIED) ? MD_EX_DATAERR : MD_EX_TEMPFAIL;
	}
	if (json)
		print_json (&st, person, dry_run);
	else
		print_text (&st, person, dry_run);
	return MD_EX_OK;
}
