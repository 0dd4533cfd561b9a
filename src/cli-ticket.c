/* cli-ticket.c - `maildesk ticket list|show`: tickets for people
 * (aligned text) and for programs (JSON with the fields of DESIGN 3;
 * names are stable: add, never rename). */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "cli.h"
#include "md.h"
#include "token.h"

static void
add_time (JsonBuilder *b, const char *name, gint64 t)
{
	json_builder_set_member_name (b, name);
	if (t) {
		g_autofree char *iso = md_time_iso_utc (t);
		json_builder_add_string_value (b, iso);
	} else {
		json_builder_add_null_value (b);
	}
}

static void
add_string (JsonBuilder *b, const char *name, const char *value)
{
	json_builder_set_member_name (b, name);
	if (value)
		json_builder_add_string_value (b, value);
	else
		json_builder_add_null_value (b);
}

static void
add_ticket_members (JsonBuilder *b, const MdDesk *desk, const MdTicket *t)
{
	g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);

	json_builder_set_member_name (b, "id");
	json_builder_add_int_value (b, t->id);
	add_string (b, "key", key);
	add_string (b, "subject", t->subject);
	add_string (b, "category", t->category);
	add_string (b, "priority", t->priority);
	add_string (b, "status", t->status);
	add_string (b, "requester", t->requester);
	add_string (b, "organization", t->organization);
	add_string (b, "visibility", t->shared ? "shared" : "private");
	add_string (b, "assignee", t->assignee);
	add_time (b, "created_at", t->created_at);
	add_time (b, "updated_at", t->updated_at);
	add_time (b, "first_response_due", t->first_response_due);
	add_time (b, "first_response_at", t->first_response_at);
	add_time (b, "resolved_at", t->resolved_at);
	add_time (b, "due_at", t->due_at);
	add_string (b, "flag", t->flag);
	json_builder_set_member_name (b, "tags");
	json_builder_begin_array (b);
	g_auto (GStrv) tags = t->tags ? g_strsplit (t->tags, ",", -1) : NULL;
	for (int i = 0; tags && tags[i]; i++)
		json_builder_add_string_value (b, tags[i]);
	json_builder_end_array (b);
	json_builder_set_member_name (b, "linked_ticket");
	if (t->linked_ticket_id) {
		g_autofree char *linked = md_ticket_key (desk->conf->ticket_prefix, t->linked_ticket_id);
		json_builder_add_string_value (b, linked);
	} else {
		json_builder_add_null_value (b);
	}
}

static void
add_messages (JsonBuilder *b, GPtrArray *messages)
{
	json_builder_set_member_name (b, "messages");
	json_builder_begin_array (b);
	for (guint i = 0; i < messages->len; i++) {
		MdStoredMessage *m = messages->pdata[i];
		json_builder_begin_object (b);
		json_builder_set_member_name (b, "id");
		json_builder_add_int_value (b, m->id);
		add_string (b, "direction", m->outgoing ? "out" : "in");
		add_string (b, "from", m->from_addr);
		add_string (b, "from_name", m->from_name);
		json_builder_set_member_name (b, "internal");
		json_builder_add_boolean_value (b, m->internal);
		add_string (b, "flag", m->flag);
		add_string (b, "subject", m->subject);
		add_string (b, "message_id", m->message_id);
		add_string (b, "body", m->body);
		add_string (b, "full_text", m->full_text);
		add_time (b, "created_at", m->created_at);
		json_builder_set_member_name (b, "attachments");
		json_builder_begin_array (b);
		for (guint k = 0; m->attachments && k < m->attachments->len; k++) {
			MdStoredAttachment *a = m->attachments->pdata[k];
			json_builder_begin_object (b);
			add_string (b, "filename", a->filename);
			add_string (b, "content_type", a->content_type);
			json_builder_set_member_name (b, "size");
			json_builder_add_int_value (b, a->size);
			add_string (b, "sha256", a->sha256);
			json_builder_set_member_name (b, "depth");
			json_builder_add_int_value (b, a->depth);
			json_builder_end_object (b);
		}
		json_builder_end_array (b);
		json_builder_end_object (b);
	}
	json_builder_end_array (b);
}

static void
add_history (JsonBuilder *b, GPtrArray *history)
{
	json_builder_set_member_name (b, "history");
	json_builder_begin_array (b);
	for (guint i = 0; i < history->len; i++) {
		MdHistoryEntry *h = history->pdata[i];
		json_builder_begin_object (b);
		add_time (b, "at", h->at);
		add_string (b, "actor", h->actor);
		add_string (b, "field", h->field);
		add_string (b, "old", h->old_value);
		add_string (b, "new", h->new_value);
		json_builder_end_object (b);
	}
	json_builder_end_array (b);
}

static void
add_fields (JsonBuilder *b, GHashTable *fields)
{
	g_autoptr (GList) names = g_list_sort (g_hash_table_get_keys (fields), (GCompareFunc) strcmp);
	json_builder_set_member_name (b, "fields");
	json_builder_begin_object (b);
	for (GList *l = names; l; l = l->next)
		add_string (b, l->data, g_hash_table_lookup (fields, l->data));
	json_builder_end_object (b);
}

static void
print_json (JsonBuilder *b)
{
	g_autoptr (JsonNode) root = json_builder_get_root (b);
	g_autoptr (JsonGenerator) gen = json_generator_new ();
	json_generator_set_pretty (gen, TRUE);
	json_generator_set_root (gen, root);
	g_autofree char *text = json_generator_to_data (gen, NULL);
	/* json-glib 1.6 leaves U+001F unescaped; a raw control byte can only
	 * stand inside a string, so escaping it here is always right. */
	for (const char *p = text; *p; p++) {
		if (*p == 0x1f)
			fputs ("\\u001f", stdout);
		else
			putchar (*p);
	}
	putchar ('\n');
}

static gint64
parse_id (MdDesk *desk, const char *text)
{
	gint64 id = md_ticket_key_parse (desk->conf->ticket_prefix, text);
	if (!id)
		fprintf (stderr, "maildesk: \"%s\" is not a ticket number (123 or %s-123)\n", text,
		         desk->conf->ticket_prefix);
	return id;
}

static int
ticket_list (MdDesk *desk, int argc, char **argv)
{
	g_autofree char *status = NULL, *category = NULL, *priority = NULL;
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "status", 0, 0, G_OPTION_ARG_STRING, &status, "only this status", "S" },
		{ "category", 0, 0, G_OPTION_ARG_STRING, &category, "only this category", "C" },
		{ "priority", 0, 0, G_OPTION_ARG_STRING, &priority, "only this priority", "P" },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL },
		{ NULL },
	};
	if (!md_cli_parse ("ticket list", NULL, "List tickets.", entries, &argc, &argv))
		return MD_EX_USAGE;

	MdTicketFilter filter = { 0 };
	struct { const char *given; const char **out; const char *(*norm) (const char *); const char *what; } checks[] = {
		{ status, &filter.status, md_status_normalize, "status" },
		{ category, &filter.category, md_category_normalize, "category" },
		{ priority, &filter.priority, md_priority_normalize, "priority" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (checks); i++) {
		if (!checks[i].given)
			continue;
		*checks[i].out = checks[i].norm (checks[i].given);
		if (!*checks[i].out) {
			fprintf (stderr, "maildesk: unknown %s \"%s\"\n", checks[i].what, checks[i].given);
			return MD_EX_USAGE;
		}
	}
	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	g_autoptr (GPtrArray) list = store ? md_store_ticket_list (store, &filter, &error) : NULL;
	if (!list) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	if (json) {
		g_autoptr (JsonBuilder) b = json_builder_new ();
		json_builder_begin_array (b);
		for (guint i = 0; i < list->len; i++) {
			json_builder_begin_object (b);
			add_ticket_members (b, desk, list->pdata[i]);
			json_builder_end_object (b);
		}
		json_builder_end_array (b);
		print_json (b);
		return MD_EX_OK;
	}
	for (guint i = 0; i < list->len; i++) {
		MdTicket *t = list->pdata[i];
		g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);
		printf ("%-9s %-20s %-2s %-27s %-28s %s\n", key, t->status, t->priority, t->category,
		        t->requester ? t->requester : "-", t->subject);
	}
	return MD_EX_OK;
}

static void
print_ticket_text (MdDesk *desk, MdTicket *t, GPtrArray *messages, GPtrArray *history, GHashTable *fields,
                   gboolean full)
{
	g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);
	g_autofree char *created = md_time_iso_utc (t->created_at);
	g_autofree char *due = t->first_response_due ? md_time_iso_utc (t->first_response_due) : g_strdup ("-");

	printf ("%s  %s\n", key, t->subject);
	printf ("Status:      %s\nPriority:    %s\nCategory:    %s\n", t->status, t->priority, t->category);
	printf ("Requester:   %s\nOrganization: %s (%s)\nAssignee:    %s\n", t->requester ? t->requester : "-",
	        t->organization ? t->organization : "-", t->shared ? "shared" : "private",
	        t->assignee ? t->assignee : "-");
	printf ("Created:     %s\nResponse due: %s\n", created, due);
	if (t->flag)
		printf ("Flag:        %s\n", t->flag);
	g_autoptr (GList) names = g_list_sort (g_hash_table_get_keys (fields), (GCompareFunc) strcmp);
	for (GList *l = names; l; l = l->next)
		printf ("Field %s: %s\n", (char *) l->data, (char *) g_hash_table_lookup (fields, l->data));
	for (guint i = 0; i < messages->len; i++) {
		MdStoredMessage *m = messages->pdata[i];
		g_autofree char *at = md_time_iso_utc (m->created_at);
		printf ("\n--- #%" G_GINT64_FORMAT " %s %s %s%s%s%s\n", m->id, m->outgoing ? "to" : "from",
		        m->from_addr ? m->from_addr : "?", at, m->internal ? " [internal]" : "",
		        m->flag ? " " : "", m->flag ? m->flag : "");
		fputs (full ? m->full_text : m->body, stdout);
		if (!g_str_has_suffix (full ? m->full_text : m->body, "\n"))
			putchar ('\n');
		for (guint k = 0; m->attachments && k < m->attachments->len; k++) {
			MdStoredAttachment *a = m->attachments->pdata[k];
			printf ("  [attachment] %s (%s, %" G_GINT64_FORMAT " bytes)\n", a->filename, a->content_type, a->size);
		}
	}
	printf ("\nHistory:\n");
	for (guint i = 0; i < history->len; i++) {
		MdHistoryEntry *h = history->pdata[i];
		g_autofree char *at = md_time_iso_utc (h->at);
		printf ("  %s %s %s: %s -> %s\n", at, h->actor, h->field, h->old_value ? h->old_value : "-",
		        h->new_value ? h->new_value : "-");
	}
}

static int
ticket_show (MdDesk *desk, int argc, char **argv)
{
	gboolean json = FALSE, full = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL },
		{ "full", 0, 0, G_OPTION_ARG_NONE, &full, "print the untrimmed text of each message", NULL },
		{ NULL },
	};
	if (!md_cli_parse ("ticket show", "ID", "Show one ticket.", entries, &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 2) {
		fprintf (stderr, "maildesk: ticket show needs one ID\n");
		return MD_EX_USAGE;
	}
	gint64 id = parse_id (desk, argv[1]);
	if (!id)
		return MD_EX_USAGE;

	g_autoptr (GError) error = NULL;
	g_autoptr (MdStore) store = md_desk_open_store (desk, FALSE, &error);
	g_autoptr (MdTicket) t = store ? md_store_ticket_get (store, id, &error) : NULL;
	if (!t) {
		md_cli_error (error);
		return g_error_matches (error, MD_ERROR, MD_ERROR_NOT_FOUND) ? MD_EX_DATAERR : MD_EX_TEMPFAIL;
	}
	g_autoptr (GPtrArray) messages = md_store_ticket_messages (store, id, &error);
	g_autoptr (GPtrArray) history = messages ? md_store_ticket_history (store, id, &error) : NULL;
	g_autoptr (GHashTable) fields = history ? md_store_fields (store, id, &error) : NULL;
	if (!fields) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	if (!json) {
		print_ticket_text (desk, t, messages, history, fields, full);
		return MD_EX_OK;
	}
	g_autoptr (JsonBuilder) b = json_builder_new ();
	json_builder_begin_object (b);
	add_ticket_members (b, desk, t);
	add_messages (b, messages);
	add_history (b, history);
	add_fields (b, fields);
	json_builder_end_object (b);
	print_json (b);
	return MD_EX_OK;
}

int
md_cmd_ticket (int argc, char **argv)
{
	if (argc < 2 || (strcmp (argv[1], "list") && strcmp (argv[1], "show"))) {
		fprintf (stderr, "Usage: maildesk ticket list [--status S] [--category C] [--priority P] [--json]\n"
		                 "       maildesk ticket show ID [--json] [--full]\n");
		return MD_EX_USAGE;
	}
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	if (strcmp (argv[1], "list") == 0)
		return ticket_list (desk, argc - 1, argv + 1);
	return ticket_show (desk, argc - 1, argv + 1);
}
