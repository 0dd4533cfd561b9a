/* cli-sla.c - `maildesk sla report [--json]`: first-response figures per
 * priority (DESIGN 3, 9), over every ticket or, with --since, the recent
 * ones and every open one; and the open tickets with a delivery estimate
 * from the intake forms.  JSON is an array of one object per priority
 * with stable names: add, never rename. */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "md.h"
#include "notify.h"
#include "schedule.h"

static void
add_count (JsonBuilder *b, const char *name, guint n)
{
	json_builder_set_member_name (b, name);
	json_builder_add_int_value (b, n);
}

static gboolean
in_priority (const MdTicket *t, const char *priority)
{
	return g_strcmp0 (t->priority, priority) == 0;
}

static void
add_deliveries (JsonBuilder *b, MdDesk *desk, GPtrArray *due, const char *priority, gint64 now)
{
	guint overdue = 0;
	json_builder_set_member_name (b, "deliveries");
	json_builder_begin_array (b);
	for (guint i = 0; i < due->len; i++) {
		const MdTicket *t = due->pdata[i];
		if (!in_priority (t, priority))
			continue;
		g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);
		json_builder_begin_object (b);
		json_builder_set_member_name (b, "key");
		json_builder_add_string_value (b, key);
		json_builder_set_member_name (b, "category");
		json_builder_add_string_value (b, t->category);
		md_json_add_time (b, "due_at", t->due_at);
		json_builder_set_member_name (b, "overdue");
		json_builder_add_boolean_value (b, t->due_at < now);
		json_builder_end_object (b);
		overdue += t->due_at < now;
	}
	json_builder_end_array (b);
	add_count (b, "deliveries_overdue", overdue);
}

static void
print_json (MdDesk *desk, const MdSlaFigures *figures, GPtrArray *due, gint64 now)
{
	g_autoptr (JsonBuilder) b = json_builder_new ();
	json_builder_begin_array (b);
	for (int i = 0; i < 5; i++) {
		const MdSlaFigures *f = &figures[i];
		json_builder_begin_object (b);
		json_builder_set_member_name (b, "priority");
		json_builder_add_string_value (b, f->priority);
		add_count (b, "open", f->open);
		add_count (b, "due", f->due);
		add_count (b, "due_next_working_day", f->due_next_working_day);
		add_count (b, "breached", f->breached);
		add_count (b, "met", f->met);
		add_count (b, "responded", f->responded);
		json_builder_set_member_name (b, "median_first_response_business_hours");
		if (f->median_response_bh >= 0)
			json_builder_add_double_value (b, (double) (gint64) (f->median_response_bh * 100 + 0.5) / 100);
		else
			json_builder_add_null_value (b);
		add_deliveries (b, desk, due, f->priority, now);
		json_builder_end_object (b);
	}
	json_builder_end_array (b);
	md_json_print (b);
}

static void
print_text (MdDesk *desk, const MdSlaFigures *figures, GPtrArray *due, gint64 now)
{
	printf ("%-8s %6s %6s %13s %9s %6s  %s\n", "PRIORITY", "OPEN", "DUE", "DUE NEXT DAY", "BREACHED", "MET",
	        "MEDIAN FIRST RESPONSE");
	for (int i = 0; i < 5; i++) {
		const MdSlaFigures *f = &figures[i];
		g_autofree char *median = f->median_response_bh >= 0
		                          ? g_strdup_printf ("%.1f business hours", f->median_response_bh)
		                          : g_strdup ("-");
		printf ("%-8s %6u %6u %13u %9u %6u  %s\n", f->priority, f->open, f->due, f->due_next_working_day,
		        f->breached, f->met, median);
	}
	if (!due->len)
		return;
	printf ("\nDELIVERY ESTIMATES (open tickets)\n");
	for (guint i = 0; i < due->len; i++) {
		const MdTicket *t = due->pdata[i];
		g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);
		g_autofree char *when = md_notify_local_time (desk, t->due_at);
		printf ("%-10s %-4s %-28s due %s%s\n", key, t->priority, t->category, when, t->due_at < now ? "  OVERDUE" : "");
	}
}

int
md_cmd_sla (int argc, char **argv)
{
	gboolean json = FALSE;
	g_autofree char *since_text = NULL;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL },
		{ "since", 0, 0, G_OPTION_ARG_STRING, &since_text,
		  "only tickets created in the last DAYS (or 30d, 12h), and every open one", "DAYS" },
		{ NULL },
	};
	if (argc < 2 || strcmp (argv[1], "report") != 0)
		return md_cli_usage (argc, argv, "Usage: maildesk sla report [--since DAYS] [--json]\n");
	argc--;
	argv++;
	if (!md_cli_parse ("sla report", NULL, "First-response figures per priority.", entries, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 1) {
		fprintf (stderr, "maildesk: sla report takes no arguments\n");
		return MD_EX_USAGE;
	}
	gint64 now = md_now ();
	gint64 since = 0, age = 0;
	if (since_text && !md_cli_parse_age ("--since", since_text, &age))
		return MD_EX_USAGE;
	if (since_text)
		since = MAX (now - age, 1);
	g_autoptr (MdDesk) desk = md_cli_open_reader ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	MdSlaFigures figures[5];
	MdTicketFilter with_due = { .with_due_at = TRUE };
	g_autoptr (GPtrArray) due = NULL;
	if (!store || !md_schedule_sla_report (desk, store, now, since, figures, &error) ||
	    !(due = md_store_ticket_list (store, &with_due, &error))) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	if (json)
		print_json (desk, figures, due, now);
	else
		print_text (desk, figures, due, now);
	return MD_EX_OK;
}
