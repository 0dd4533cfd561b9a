/* cli-outbox.c - `maildesk outbox flush|list|retry`: sending what is due
 * now, showing every row of the outbox with its state and last error
 * (JSON names are stable: add, never rename), and queueing failed rows
 * again. */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "md.h"
#include "outbox.h"
#include "token.h"

/* Each row printed as it is read (md_outbox_foreach): the outbox keeps
 * every mail ever sent, and lists in the memory of one row. */
typedef struct {
	const MdDesk *desk;
	gboolean json;
	guint n;
} ListPrinter;

static void
print_json (const MdDesk *desk, const MdOutboxEntry *e, guint index)
{
	g_autoptr (JsonBuilder) b = json_builder_new ();
	g_autofree char *key = e->ticket_id ? md_ticket_key (desk->conf->ticket_prefix, e->ticket_id) : NULL;
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "id");
	json_builder_add_int_value (b, e->id);
	md_json_add_string (b, "ticket", key);
	md_json_add_string (b, "kind", e->kind);
	md_json_add_string (b, "from", e->mail_from);
	md_json_add_string (b, "to", e->rcpt_to);
	md_json_add_string (b, "state", e->state);
	json_builder_set_member_name (b, "attempts");
	json_builder_add_int_value (b, e->attempts);
	md_json_add_time (b, "next_attempt_at", strcmp (e->state, "queued") ? 0 : e->next_attempt_at);
	md_json_add_string (b, "last_error", e->last_error);
	md_json_add_time (b, "created_at", e->created_at);
	md_json_add_time (b, "sent_at", e->sent_at);
	md_json_add_string (b, "message_id", e->message_id);
	json_builder_end_object (b);
	md_json_print_element (b, index);
}

static void
print_text (const MdOutboxEntry *e)
{
	g_autofree char *next = strcmp (e->state, "queued") ? g_strdup ("-") : md_time_iso_utc (e->next_attempt_at);
	printf ("%-6" G_GINT64_FORMAT " %-7s %-14s %-32s %8d  %-20s  %s\n", e->id, e->state, e->kind, e->rcpt_to,
	        e->attempts, next, e->last_error ? e->last_error : "-");
}

static void
print_entry (MdOutboxEntry *e, gpointer data)
{
	ListPrinter *lp = data;

	if (lp->json)
		print_json (lp->desk, e, lp->n);
	else
		print_text (e);
	lp->n++;
	md_outbox_entry_free (e);
}

static int
outbox_list (MdDesk *desk, int argc, char **argv)
{
	g_autofree char *state = NULL;
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "state", 0, 0, G_OPTION_ARG_STRING, &state, "only rows in this state", "queued|sent|failed" },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL },
		{ NULL },
	};
	if (!md_cli_parse ("outbox list", NULL, "List outgoing mail.", entries, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 1 || (state && !g_strv_contains ((const char *const[]) { "queued", "sent", "failed", NULL }, state))) {
		fprintf (stderr, "Usage: maildesk outbox list [--state queued|sent|failed] [--json]\n");
		return MD_EX_USAGE;
	}
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	ListPrinter lp = { desk, json, 0 };
	if (store && !json)
		printf ("%-6s %-7s %-14s %-32s %8s  %-20s  %s\n", "ID", "STATE", "KIND", "TO", "ATTEMPTS",
		        "NEXT ATTEMPT", "LAST ERROR");
	if (!store || !md_outbox_foreach (store, state, print_entry, &lp, &error)) {
		/* what was printed stays: the exit status says it is not all */
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	if (json)
		md_json_print_array_end (lp.n);
	return MD_EX_OK;
}

static int
outbox_flush (MdDesk *desk, int argc, char **argv)
{
	if (!md_cli_parse ("outbox flush", NULL, "Send every message that is due now, once.", NULL, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 1) {
		fprintf (stderr, "Usage: maildesk outbox flush\n");
		return MD_EX_USAGE;
	}
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	MdOutboxStats stats = { 0 };
	if (!store || !md_store_lazy_commits (store, &error) || !md_outbox_flush (desk, store, md_now (), &stats, &error)) {
		md_cli_error (error);
		return g_error_matches (error, MD_ERROR, MD_ERROR_CONFIG) ? MD_EX_CONFIG : MD_EX_TEMPFAIL;
	}
	printf ("sent %u, deferred %u, failed %u\n", stats.sent, stats.deferred, stats.failed);
	return stats.deferred ? MD_EX_TEMPFAIL : MD_EX_OK;
}

/* Failed rows back to the queue, once whatever failed them is fixed. */
static int
outbox_retry (MdDesk *desk, int argc, char **argv)
{
	if (!md_cli_parse ("outbox retry", "[ID...]", "Queue failed messages again (all of them without IDs).", NULL,
	                   &argc, &argv))
		return MD_EX_USAGE;
	g_autofree gint64 *ids = argc > 1 ? g_new0 (gint64, argc) : NULL;
	for (int i = 1; i < argc; i++) {
		char *end = NULL;
		ids[i - 1] = g_ascii_strtoll (argv[i], &end, 10);
		if (ids[i - 1] <= 0 || !end || *end) {
			fprintf (stderr, "maildesk: outbox retry: \"%s\" is not an outbox id\n", argv[i]);
			return MD_EX_USAGE;
		}
	}
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	gint64 n = store ? md_outbox_retry (store, ids, md_now (), &error) : -1;
	if (n < 0) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	printf ("queued again %" G_GINT64_FORMAT "\n", n);
	return MD_EX_OK;
}

int
md_cmd_outbox (int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	int (*run) (MdDesk *, int, char **) = !strcmp (sub, "list") ? outbox_list
	                                      : !strcmp (sub, "flush") ? outbox_flush
	                                      : !strcmp (sub, "retry") ? outbox_retry : NULL;
	if (!run)
		return md_cli_usage (argc, argv, "Usage: maildesk outbox flush | list [--state S] [--json] | retry [ID...]\n");
	/* Only flush composes and sends: list and retry read and mark rows. */
	g_autoptr (MdDesk) desk = run == outbox_flush ? md_cli_open_desk () : md_cli_open_reader ();
	if (!desk)
		return MD_EX_CONFIG;
	return run (desk, argc - 1, argv + 1);
}
