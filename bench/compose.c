/* bench/compose.c - the CPU cost of composing the desk's outgoing mail.
 *
 * For every new ticket the writer thread renders and composes an
 * acknowledgement inside the ingest transaction (notify.c queue ()), so
 * its cost is paid under the write lock.  This times, per mail:
 *   - vars:    the ticket's template variables as notify builds them
 *              (key, token reply address, resolve link, due time);
 *   - render:  md_template_render of templates/ack.tmpl;
 *   - compose: md_compose_to_bytes of the result, with the To, Reply-To,
 *              In-Reply-To, References, Auto-Submitted and template
 *              headers an acknowledgement has (a UTF-8 body of ~1.5 KB);
 *   - ack:     md_notify_ack end to end for stored tickets, in one
 *              transaction (store work included, commit excluded).
 * and prints mails/s and µs/mail for each.
 *
 *   make bench && bench/compose [N]     (default 5000)
 */
#include "config.h"

#include <glib/gstdio.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench-conf.h"
#include "compose.h"
#include "desk.h"
#include "md.h"
#include "message.h"
#include "notify.h"
#include "template.h"
#include "token.h"

static void
report (const char *what, int n, gint64 usecs)
{
	double secs = usecs / 1e6;
	printf ("  %-8s %8.0f mails/s %8.1f us/mail\n", what, n / secs, (double) usecs / n);
}

/* What ack gets: the ticket's variables and intake's extras. */
static GHashTable *
ack_vars (MdDesk *desk, const MdTicket *t)
{
	GHashTable *vars = md_notify_ticket_vars (desk, t);
	g_hash_table_insert (vars, g_strdup ("notice"), g_strdup (""));
	g_hash_table_insert (vars, g_strdup ("delivery"), g_strdup (""));
	return vars;
}

static const char *const thread_refs[] = { "<first-1234@customer.example>", "<second-5678@customer.example>", NULL };

static void
bench_compose (MdDesk *desk, int n)
{
	MdTicket t = {
		.subject = "Проблема з оплатою: checkout fails with error 502 after the update",
		.category = "Technical Request", .priority = "P3", .status = "Triage",
		.requester = "olena@customer.example", .organization = "Customer Ltd",
		.first_response_due = 1796200000,
	};
	const MdTemplate *tmpl = md_template_set_get (desk->templates, "ack");
	g_autofree char *from_name = NULL, *from_email = NULL;
	md_notify_desk_from (desk, &from_name, &from_email);
	MdMailbox to[] = { { NULL, t.requester } };
	gint64 t_vars = 0, t_render = 0, t_compose = 0;
	gsize total_bytes = 0;

	for (int i = 0; i < n; i++) {
		g_autoptr (GError) error = NULL;
		t.id = 1000 + i;
		gint64 t0 = g_get_monotonic_time ();
		g_autoptr (GHashTable) vars = ack_vars (desk, &t);
		g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t.id);
		g_autofree char *reply_to = md_address_for_ticket (&desk->addressing, t.id);
		gint64 t1 = g_get_monotonic_time ();
		g_autofree char *subject = NULL, *body = NULL;
		if (!md_template_render (tmpl, vars, &subject, &body, &error))
			g_error ("render: %s", error->message);
		gint64 t2 = g_get_monotonic_time ();
		MdOutgoing out = {
			.desk_name = from_name,
			.desk_address = from_email,
			.to = to,
			.n_to = 1,
			.reply_to = reply_to,
			.ticket_key = key,
			.subject = subject,
			.body = body,
			.in_reply_to = "<CAF=abc123.456@mail.customer.example>",
			.references = thread_refs,
			.date = md_now (),
			.auto_submitted = MD_AUTO_SUBMITTED_REPLIED,
			.headers = md_template_headers (tmpl),
		};
		g_autofree char *message_id = NULL;
		g_autoptr (GBytes) bytes = md_compose_to_bytes (&out, &message_id, &error);
		if (!bytes)
			g_error ("compose: %s", error->message);
		gint64 t3 = g_get_monotonic_time ();
		t_vars += t1 - t0;
		t_render += t2 - t1;
		t_compose += t3 - t2;
		total_bytes += g_bytes_get_size (bytes);
		if (i == 0 && g_getenv ("MD_BENCH_SHOW"))
			fwrite (g_bytes_get_data (bytes, NULL), 1, g_bytes_get_size (bytes), stdout);
	}
	printf ("acknowledgements rendered and composed: %d, %.0f bytes each\n", n, (double) total_bytes / n);
	report ("vars", n, t_vars);
	report ("render", n, t_render);
	report ("compose", n, t_compose);
	report ("total", n, t_vars + t_render + t_compose);
}

static MdMessage *
parse_request (MdDesk *desk, const char *dir)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = g_build_filename (dir, "request.eml", NULL);
	const char *text =
		"From: Olena Customer <olena@customer.example>\r\nTo: support@support.example.com\r\n"
		"Subject: Checkout fails with error 502\r\nMessage-ID: <CAF=abc123.456@mail.customer.example>\r\n"
		"Date: Tue, 01 Dec 2026 10:00:00 +0200\r\nMIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n\r\nThe total is not computed.\r\n";
	if (!g_file_set_contents (path, text, -1, &error))
		g_error ("%s", error->message);
	MdMessage *msg = md_message_parse_file (path, desk->spool, &desk->limits, &error);
	if (!msg)
		g_error ("parse: %s", error->message);
	return msg;
}

/* md_notify_ack for N stored tickets in one transaction, rolled back. */
static void
bench_ack (MdDesk *desk, MdStore *store, const char *dir, int n)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdMessage) msg = parse_request (desk, dir);
	desk->ack_limit = INT_MAX;
	if (!md_store_begin (store, &error))
		g_error ("%s", error->message);
	GPtrArray *tickets = g_ptr_array_new_with_free_func ((GDestroyNotify) md_ticket_free);
	for (int i = 0; i < n; i++) {
		g_autofree char *email = g_strdup_printf ("customer%d@customer.example", i);
		MdTicket *t = g_new0 (MdTicket, 1);
		t->subject = g_strdup ("Проблема з оплатою: checkout fails with error 502 after the update");
		t->category = "Technical Request";
		t->priority = "P3";
		t->status = "Triage";
		t->created_at = t->updated_at = t->status_changed_at = md_now ();
		t->first_response_due = md_now () + 4 * 3600;
		if (!md_store_person_ensure (store, email, "Olena Customer", &t->requester_id, &error) ||
		    !md_store_ticket_insert (store, t, &error))
			g_error ("%s", error->message);
		MdTicket *full = md_store_ticket_get (store, t->id, &error);
		md_ticket_free (t);
		if (!full)
			g_error ("%s", error->message);
		g_ptr_array_add (tickets, full);
	}
	gint64 t0 = g_get_monotonic_time ();
	for (guint i = 0; i < tickets->len; i++)
		if (!md_notify_ack (desk, store, tickets->pdata[i], msg, "olena@customer.example", NULL, NULL, &error))
			g_error ("ack: %s", error->message);
	gint64 usecs = g_get_monotonic_time () - t0;
	md_store_rollback (store);
	g_ptr_array_unref (tickets);
	printf ("md_notify_ack, store work included:\n");
	report ("ack", n, usecs);
}

int
main (int argc, char **argv)
{
	int n = argc > 1 ? atoi (argv[1]) : 5000;
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("maildesk-bench-XXXXXX", &error);
	MdConf *conf = md_bench_conf_new (dir);
	g_free (conf->name);
	conf->name = g_strdup ("Example Support");

	md_message_init ();
	g_autoptr (MdDesk) desk = md_desk_open (conf, &error);
	if (!desk)
		g_error ("%s", error->message);
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	if (!store)
		g_error ("%s", error->message);

	bench_compose (desk, n);
	if (!g_getenv ("MD_BENCH_COMPOSE_ONLY"))
		bench_ack (desk, store, dir, n);
	md_store_close (g_steal_pointer (&store));
	md_remove_tree (dir);
	return 0;
}
