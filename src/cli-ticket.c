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
#include "merge.h"
#include "thread.h"
#include "token.h"
#include "workflow.h"

#include <errno.h>
#include <unistd.h>

/* The most text `ticket reply` takes from standard input. */
#define REPLY_MAX_BYTES (1024 * 1024)

/* NAME: "SUP-12" for ticket ID, null for 0. */
static void
add_ticket_key (JsonBuilder *b, const MdDesk *desk, const char *name, gint64 id)
{
	json_builder_set_member_name (b, name);
	if (id) {
		g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, id);
		json_builder_add_string_value (b, key);
	} else {
		json_builder_add_null_value (b);
	}
}

static void
add_ticket_members (JsonBuilder *b, const MdDesk *desk, const MdTicket *t)
{
	g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);

	json_builder_set_member_name (b, "id");
	json_builder_add_int_value (b, t->id);
	md_json_add_string (b, "key", key);
	md_json_add_string (b, "subject", t->subject);
	md_json_add_string (b, "category", t->category);
	md_json_add_string (b, "priority", t->priority);
	md_json_add_string (b, "status", t->status);
	md_json_add_string (b, "requester", t->requester);
	md_json_add_string (b, "organization", t->organization);
	md_json_add_string (b, "visibility", t->shared ? "shared" : "private");
	md_json_add_string (b, "assignee", t->assignee);
	md_json_add_time (b, "created_at", t->created_at);
	md_json_add_time (b, "updated_at", t->updated_at);
	md_json_add_time (b, "first_response_due", t->first_response_due);
	md_json_add_time (b, "first_response_at", t->first_response_at);
	md_json_add_time (b, "resolved_at", t->resolved_at);
	md_json_add_time (b, "due_at", t->due_at);
	md_json_add_string (b, "flag", t->flag);
	json_builder_set_member_name (b, "tags");
	json_builder_begin_array (b);
	g_auto (GStrv) tags = t->tags ? g_strsplit (t->tags, ",", -1) : NULL;
	for (int i = 0; tags && tags[i]; i++)
		json_builder_add_string_value (b, tags[i]);
	json_builder_end_array (b);
	add_ticket_key (b, desk, "linked_ticket", t->linked_ticket_id);
	add_ticket_key (b, desk, "merged_into", t->merged_into_id);
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
		md_json_add_string (b, "direction", m->outgoing ? "out" : "in");
		md_json_add_string (b, "from", m->from_addr);
		md_json_add_string (b, "from_name", m->from_name);
		json_builder_set_member_name (b, "internal");
		json_builder_add_boolean_value (b, m->internal);
		md_json_add_string (b, "flag", m->flag);
		md_json_add_string (b, "subject", m->subject);
		md_json_add_string (b, "message_id", m->message_id);
		md_json_add_string (b, "body", m->body);
		md_json_add_string (b, "full_text", m->full_text);
		md_json_add_time (b, "created_at", m->created_at);
		json_builder_set_member_name (b, "attachments");
		json_builder_begin_array (b);
		for (guint k = 0; m->attachments && k < m->attachments->len; k++) {
			MdStoredAttachment *a = m->attachments->pdata[k];
			json_builder_begin_object (b);
			md_json_add_string (b, "filename", a->filename);
			md_json_add_string (b, "content_type", a->content_type);
			json_builder_set_member_name (b, "size");
			json_builder_add_int_value (b, a->size);
			md_json_add_string (b, "sha256", a->sha256);
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
		md_json_add_time (b, "at", h->at);
		md_json_add_string (b, "actor", h->actor);
		md_json_add_string (b, "field", h->field);
		md_json_add_string (b, "old", h->old_value);
		md_json_add_string (b, "new", h->new_value);
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
		md_json_add_string (b, l->data, g_hash_table_lookup (fields, l->data));
	json_builder_end_object (b);
}

static void
add_participants (JsonBuilder *b, GPtrArray *participants)
{
	json_builder_set_member_name (b, "participants");
	json_builder_begin_array (b);
	for (guint i = 0; i < participants->len; i++)
		json_builder_add_string_value (b, participants->pdata[i]);
	json_builder_end_array (b);
}

/* The exit status of a failed look-up of a ticket.  A number that names
 * no ticket is input that does not exist, EX_NOINPUT, for show, set and
 * reply alike (EX_NOUSER is deliver's, for an address; EX_DATAERR is a
 * bad value given for a ticket that exists). */
static int
lookup_exit_code (const GError *error)
{
	return g_error_matches (error, MD_ERROR, MD_ERROR_NOT_FOUND) ? MD_EX_NOINPUT : MD_EX_TEMPFAIL;
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

/* Each ticket printed as it is read (md_store_ticket_foreach): a desk
 * of a million tickets lists in the memory of one. */
typedef struct {
	MdDesk *desk;
	gboolean json;
	guint n;
} ListPrinter;

static void
print_list_entry (MdTicket *t, gpointer data)
{
	ListPrinter *lp = data;

	if (lp->json) {
		g_autoptr (JsonBuilder) b = json_builder_new ();
		json_builder_begin_object (b);
		add_ticket_members (b, lp->desk, t);
		json_builder_end_object (b);
		md_json_print_element (b, lp->n);
	} else {
		g_autofree char *key = md_ticket_key (lp->desk->conf->ticket_prefix, t->id);
		printf ("%-9s %-20s %-2s %-27s %-28s %s\n", key, t->status, t->priority, t->category,
		        t->requester ? t->requester : "-", t->subject);
	}
	lp->n++;
	md_ticket_free (t);
}

/* The people and organization filters, checked against the desk: a
 * mistyped address is an error, not an empty list.  The strings stay
 * the caller's.  Addresses and names compare without case, as the
 * desk's columns do. */
static int
resolve_list_people (MdStore *store, const char *assignee, const char *customer, const char *org,
                     MdTicketFilter *filter)
{
	g_autoptr (GError) error = NULL;
	const char *people[] = { assignee, customer };
	for (gsize i = 0; i < G_N_ELEMENTS (people); i++) {
		if (!people[i] || (people[i] == assignee && g_ascii_strcasecmp (assignee, "none") == 0))
			continue;
		g_autoptr (MdPerson) p = md_store_person_find (store, people[i], &error);
		if (!p && g_error_matches (error, MD_ERROR, MD_ERROR_NOT_FOUND)) {
			fprintf (stderr, "maildesk: nobody with address %s on this desk\n", people[i]);
			return MD_EX_NOINPUT;
		}
		if (!p) {
			md_cli_error (error);
			return MD_EX_TEMPFAIL;
		}
	}
	if (assignee)
		filter->assignee = g_ascii_strcasecmp (assignee, "none") == 0 ? "" : assignee;
	if (customer) {
		filter->requester = customer;
		filter->org_id = md_store_org_of (store, customer, &error);
	}
	if (org && !error && !(filter->organization_id = md_store_org_find (store, org, &error)) && !error) {
		fprintf (stderr, "maildesk: no organization named \"%s\"\n", org);
		return MD_EX_NOINPUT;
	}
	if (error) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	return MD_EX_OK;
}

static int
ticket_list (MdDesk *desk, int argc, char **argv)
{
	g_autofree char *status = NULL, *category = NULL, *priority = NULL;
	g_autofree char *assignee = NULL, *customer = NULL, *org = NULL;
	gboolean json = FALSE, open_only = FALSE, flagged = FALSE;
	GOptionEntry entries[] = {
		{ "status", 0, 0, G_OPTION_ARG_STRING, &status, "only this status", "S" },
		{ "category", 0, 0, G_OPTION_ARG_STRING, &category, "only this category", "C" },
		{ "priority", 0, 0, G_OPTION_ARG_STRING, &priority, "only this priority", "P" },
		{ "open", 0, 0, G_OPTION_ARG_NONE, &open_only, "only tickets not resolved", NULL },
		{ "assignee", 0, 0, G_OPTION_ARG_STRING, &assignee, "only tickets assigned to EMAIL (none: unassigned)",
		  "EMAIL" },
		{ "customer", 0, 0, G_OPTION_ARG_STRING, &customer,
		  "only tickets EMAIL may see: requested, copied on, or shared in their organization", "EMAIL" },
		{ "org", 0, 0, G_OPTION_ARG_STRING, &org, "only the tickets of organization NAME", "NAME" },
		{ "flagged", 0, 0, G_OPTION_ARG_NONE, &flagged,
		  "only tickets with a flag (quarantined, unreadable mail, a sender that may be forged)", NULL },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL },
		{ NULL },
	};
	if (!md_cli_parse ("ticket list", NULL, "List tickets.", entries, &argc, &argv) ||
	    !md_cli_no_operands ("ticket list", argc, argv,
	                         "filters are --status, --category, --priority, --open, --assignee, --customer, --org "
	                         "and --flagged"))
		return MD_EX_USAGE;

	MdTicketFilter filter = { .open_only = open_only, .flagged_only = flagged };
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
	if (!store) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	int rc = resolve_list_people (store, assignee, customer, org, &filter);
	if (rc != MD_EX_OK)
		return rc;
	ListPrinter lp = { desk, json, 0 };
	if (!md_store_ticket_foreach (store, &filter, print_list_entry, &lp, &error)) {
		/* what was printed stays: the exit status says it is not all */
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	if (json)
		md_json_print_array_end (lp.n);
	return MD_EX_OK;
}

static void
print_ticket_text (MdDesk *desk, MdTicket *t, GPtrArray *participants, GPtrArray *messages, GPtrArray *history,
                   GHashTable *fields, gboolean full)
{
	g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);
	g_autofree char *created = md_time_iso_utc (t->created_at);
	g_autofree char *due = t->first_response_due ? md_time_iso_utc (t->first_response_due) : g_strdup ("-");

	printf ("%s  %s\n", key, t->subject);
	printf ("Status:      %s\nPriority:    %s\nCategory:    %s\n", t->status, t->priority, t->category);
	printf ("Requester:   %s\nOrganization: %s (%s)\nAssignee:    %s\n", t->requester ? t->requester : "-",
	        t->organization ? t->organization : "-", t->shared ? "shared" : "private",
	        t->assignee ? t->assignee : "-");
	if (participants->len) {
		g_ptr_array_add (participants, NULL);
		g_autofree char *who = g_strjoinv (", ", (char **) participants->pdata);
		g_ptr_array_remove_index (participants, participants->len - 1);
		printf ("Participants: %s\n", who);
	}
	printf ("Created:     %s\nResponse due: %s\n", created, due);
	if (t->flag)
		printf ("Flag:        %s\n", t->flag);
	if (t->merged_into_id) {
		g_autofree char *into = md_ticket_key (desk->conf->ticket_prefix, t->merged_into_id);
		printf ("Merged into: %s\n", into);
	}
	g_autoptr (GList) names = g_list_sort (g_hash_table_get_keys (fields), (GCompareFunc) strcmp);
	for (GList *l = names; l; l = l->next)
		printf ("Field %s: %s\n", (char *) l->data, (char *) g_hash_table_lookup (fields, l->data));
	for (guint i = 0; i < messages->len; i++) {
		MdStoredMessage *m = messages->pdata[i];
		g_autofree char *at = md_time_iso_utc (m->created_at);
		/* An outgoing message's address is the desk's own: its sender. */
		printf ("\n--- #%" G_GINT64_FORMAT " %s %s %s%s%s%s\n", m->id, m->outgoing ? "out from" : "from",
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
		return lookup_exit_code (error);
	}
	g_autoptr (GPtrArray) messages = md_store_ticket_messages (store, id, &error);
	g_autoptr (GPtrArray) history = messages ? md_store_ticket_history (store, id, &error) : NULL;
	g_autoptr (GHashTable) fields = history ? md_store_fields (store, id, &error) : NULL;
	g_autoptr (GPtrArray) participants = fields ? md_store_participants (store, id, &error) : NULL;
	if (!participants) {
		md_cli_error (error);
		return MD_EX_TEMPFAIL;
	}
	if (!json) {
		print_ticket_text (desk, t, participants, messages, history, fields, full);
		return MD_EX_OK;
	}
	g_autoptr (JsonBuilder) b = json_builder_new ();
	json_builder_begin_object (b);
	add_ticket_members (b, desk, t);
	add_participants (b, participants);
	add_messages (b, messages);
	add_history (b, history);
	add_fields (b, fields);
	json_builder_end_object (b);
	md_json_print (b);
	return MD_EX_OK;
}

/* Who acts from the command line: --as, else $MAILDESK_AGENT, else the
 * system.  Given an address, it must be an agent's.  ACTOR's strings
 * are *EMAIL_R and *NAME_R, which the caller frees. */
static gboolean
cli_actor (MdDesk *desk, MdStore *store, const char *as, MdActor *actor, char **email_r, char **name_r)
{
	const char *who = as ? as : g_getenv ("MAILDESK_AGENT");
	if (!who || !*who) {
		*actor = (MdActor) { MD_ACTOR_SYSTEM, NULL, NULL };
		return TRUE;
	}
	*email_r = g_ascii_strdown (who, -1);
	if (!md_is_agent (store, *email_r, (const char *const *) desk->conf->agents)) {
		fprintf (stderr, "maildesk: %s is not an agent (maildesk agent add %s)\n", *email_r, *email_r);
		return FALSE;
	}
	g_autoptr (MdPerson) p = md_store_person_find (store, *email_r, NULL);
	*name_r = p ? g_strdup (p->name) : NULL;
	*actor = (MdActor) { MD_ACTOR_AGENT, *email_r, *name_r };
	return TRUE;
}

/* A transaction that found no ticket to act on: nothing to keep. */
static int
finish_lookup (MdStore *store, GError *error)
{
	md_store_rollback (store);
	md_cli_error (error);
	int rc = lookup_exit_code (error);
	g_error_free (error);
	return rc;
}

static int
finish (MdStore *store, GError *error)
{
	if (!error && md_store_commit (store, &error))
		return MD_EX_OK;
	md_store_rollback (store);
	md_cli_error (error);
	int rc = g_error_matches (error, MD_ERROR, MD_ERROR_INVALID) || g_error_matches (error, MD_ERROR, MD_ERROR_NOT_FOUND) ||
	                 g_error_matches (error, MD_ERROR, MD_ERROR_DENIED)
	         ? MD_EX_DATAERR : MD_EX_TEMPFAIL;
	g_error_free (error);
	return rc;
}

/* A change to a ticket from the command line: the store, the ticket,
 * and who acts (cli_actor; ACTOR's strings are EMAIL and NAME). */
typedef struct {
	MdStore *store;
	MdTicket *ticket;
	MdActor actor;
	char *email, *name;
} Change;

static void
change_clear (Change *c)
{
	g_clear_pointer (&c->ticket, md_ticket_free);
	g_clear_pointer (&c->store, md_store_close);
	g_free (c->email);
	g_free (c->name);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Change, change_clear)

/* What set and reply do before they change ticket ID: open the store,
 * find who acts, begin the transaction and read the ticket in it.  The
 * exit status of what failed (the transaction, if begun, rolled back),
 * else MD_EX_OK. */
static int
begin_change (MdDesk *desk, gint64 id, const char *as, Change *c)
{
	GError *error = NULL;
	c->store = md_desk_open_store (desk, FALSE, &error);
	if (!c->store) {
		md_cli_error (error);
		g_error_free (error);
		return MD_EX_TEMPFAIL;
	}
	if (!cli_actor (desk, c->store, as, &c->actor, &c->email, &c->name))
		return MD_EX_USAGE;
	if (!md_store_begin (c->store, &error))
		return finish (c->store, error);
	c->ticket = md_store_ticket_get (c->store, id, &error);
	return c->ticket ? MD_EX_OK : finish_lookup (c->store, error);
}

static int
ticket_set (MdDesk *desk, int argc, char **argv)
{
	g_autofree char *as = NULL;
	GOptionEntry entries[] = {
		{ "as", 0, 0, G_OPTION_ARG_STRING, &as, "act as this agent (default $MAILDESK_AGENT)", "EMAIL" },
		{ NULL },
	};
	if (!md_cli_parse ("ticket set", "ID key=value...", "Change fields of a ticket.", entries, &argc, &argv))
		return MD_EX_USAGE;
	if (argc < 3) {
		fprintf (stderr, "Usage: maildesk ticket set ID key=value... (status, priority, category, assignee, visibility)\n");
		return MD_EX_USAGE;
	}
	gint64 id = parse_id (desk, argv[1]);
	if (!id)
		return MD_EX_USAGE;
	g_auto (Change) c = { 0 };
	int rc = begin_change (desk, id, as, &c);
	if (rc != MD_EX_OK)
		return rc;
	GError *error = NULL;
	for (int i = 2; !error && i < argc; i++) {
		const char *eq = strchr (argv[i], '=');
		if (!eq) {
			g_set_error (&error, MD_ERROR, MD_ERROR_INVALID, "\"%s\" is not key=value", argv[i]);
			break;
		}
		g_autofree char *key = g_strndup (argv[i], (gsize) (eq - argv[i]));
		g_autofree char *value = g_strdup (eq + 1);
		md_workflow_set_field (desk, c.store, c.ticket, g_strstrip (key), g_strstrip (value), &c.actor, &error);
	}
	return finish (c.store, error);
}

static int
ticket_reply (MdDesk *desk, int argc, char **argv)
{
	g_autofree char *as = NULL;
	gboolean internal = FALSE;
	GOptionEntry entries[] = {
		{ "as", 0, 0, G_OPTION_ARG_STRING, &as, "reply as this agent (default $MAILDESK_AGENT)", "EMAIL" },
		{ "internal", 0, 0, G_OPTION_ARG_NONE, &internal, "an internal note, not sent to the customer", NULL },
		{ NULL },
	};
	if (!md_cli_parse ("ticket reply", "ID", "Reply as an agent; the text is read from standard input.", entries,
	                   &argc, &argv))
		return MD_EX_USAGE;
	if (argc != 2)
		return MD_EX_USAGE;
	gint64 id = parse_id (desk, argv[1]);
	if (!id)
		return MD_EX_USAGE;
	g_autoptr (GString) text = g_string_new (NULL);
	char buf[8192];
	ssize_t n;
	/* Bounded, and refused whole beyond the bound: cutting a reply
	 * short would send the customer half of what the agent wrote. */
	while (text->len <= REPLY_MAX_BYTES && (n = read (STDIN_FILENO, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf (stderr, "maildesk: reading the reply: %s\n", g_strerror (errno));
			return MD_EX_TEMPFAIL;
		}
		g_string_append_len (text, buf, n);
	}
	if (text->len > REPLY_MAX_BYTES) {
		fprintf (stderr, "maildesk: the reply is over %d bytes\n", REPLY_MAX_BYTES);
		return MD_EX_DATAERR;
	}
	if (!g_utf8_validate (text->str, (gssize) text->len, NULL)) {
		fprintf (stderr, "maildesk: the reply is not UTF-8 text\n");
		return MD_EX_DATAERR;
	}
	/* An empty standard input is a script's mistake (a file that was not
	 * there, a pipe that broke), not an answer to store and mail. */
	g_autofree char *stripped = g_strstrip (g_strdup (text->str));
	if (!*stripped) {
		fprintf (stderr, "maildesk: the reply is empty (its text is read from standard input)\n");
		return MD_EX_DATAERR;
	}
	/* No agent named: the desk itself replies (DESIGN 3: `ticket reply
	 * ID`, text on stdin), from its own address and name; a command it
	 * cannot carry out fails the reply, since no mailbox hears of it. */
	g_autofree char *desk_name = NULL, *desk_email = NULL;
	md_notify_desk_from (desk, &desk_name, &desk_email);
	g_auto (Change) c = { 0 };
	int rc = begin_change (desk, id, as, &c);
	if (rc != MD_EX_OK)
		return rc;
	GError *error = NULL;
	g_autoptr (GPtrArray) commands = md_commands_parse (text->str);
	for (guint i = 0; i < commands->len; i++)
		internal |= g_strcmp0 (((MdCommand *) commands->pdata[i])->name, "internal") == 0;
	g_autoptr (MdStoredMessage) m = g_new0 (MdStoredMessage, 1);
	m->ticket_id = c.ticket->id;
	m->from_addr = g_strdup (c.actor.email ? c.actor.email : desk_email);
	m->from_name = g_strdup (c.actor.email ? c.actor.name : desk_name);
	m->subject = g_strdup (c.ticket->subject);
	m->body = g_strdup (text->str);
	m->full_text = g_strdup (text->str);
	m->internal = internal;
	m->flag = g_strdup ("from the command line");
	m->created_at = md_now ();
	c.ticket->updated_at = m->created_at;
	if (md_store_message_insert (c.store, m, &error) && md_store_ticket_update (c.store, c.ticket, &error))
		md_workflow_agent_reply (desk, c.store, c.ticket, &c.actor, text->str, internal, commands, NULL, &error);
	return finish (c.store, error);
}

static int
ticket_merge (MdDesk *desk, int argc, char **argv)
{
	g_autofree char *as = NULL;
	GOptionEntry entries[] = {
		{ "as", 0, 0, G_OPTION_ARG_STRING, &as, "act as this agent (default $MAILDESK_AGENT)", "EMAIL" },
		{ NULL },
	};
	if (!md_cli_parse ("ticket merge", "ID INTO", "Merge ticket ID, a duplicate, into ticket INTO.", entries, &argc,
	                   &argv))
		return MD_EX_USAGE;
	if (argc != 3) {
		fprintf (stderr, "Usage: maildesk ticket merge ID INTO [--as AGENT]\n");
		return MD_EX_USAGE;
	}
	gint64 id = parse_id (desk, argv[1]), into_id = parse_id (desk, argv[2]);
	if (!id || !into_id)
		return MD_EX_USAGE;
	g_auto (Change) c = { 0 };
	int rc = begin_change (desk, id, as, &c);
	if (rc != MD_EX_OK)
		return rc;
	GError *error = NULL;
	g_autoptr (MdTicket) into = md_store_ticket_get (c.store, into_id, &error);
	if (!into)
		return finish_lookup (c.store, error);
	md_merge_tickets (desk, c.store, c.ticket, into, &c.actor, &error);
	rc = finish (c.store, error);
	if (rc == MD_EX_OK) {
		g_autofree char *from = md_ticket_key (desk->conf->ticket_prefix, id);
		g_autofree char *to = md_ticket_key (desk->conf->ticket_prefix, into_id);
		printf ("%s merged into %s\n", from, to);
	}
	return rc;
}

int
md_cmd_ticket (int argc, char **argv)
{
	static const char *const verbs[] = { "list", "show", "set", "reply", "merge" };
	gboolean known = FALSE;
	for (gsize i = 0; argc >= 2 && i < G_N_ELEMENTS (verbs); i++)
		known |= strcmp (argv[1], verbs[i]) == 0;
	if (!known)
		return md_cli_usage (argc, argv, "Usage: maildesk ticket list [--status S] [--category C] [--priority P] [--open]\n"
		                                 "                           [--assignee EMAIL|none] [--customer EMAIL] [--org NAME]\n"
		                                 "                           [--flagged] [--json]\n"
		                                 "       maildesk ticket show ID [--json] [--full]\n"
		                                 "       maildesk ticket set ID key=value... [--as AGENT]\n"
		                                 "       maildesk ticket reply ID [--as AGENT] [--internal] < text\n"
		                                 "       maildesk ticket merge ID INTO [--as AGENT]\n");
	gboolean reads = strcmp (argv[1], "list") == 0 || strcmp (argv[1], "show") == 0;
	g_autoptr (MdDesk) desk = reads ? md_cli_open_reader () : md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	if (strcmp (argv[1], "list") == 0)
		return ticket_list (desk, argc - 1, argv + 1);
	if (strcmp (argv[1], "set") == 0)
		return ticket_set (desk, argc - 1, argv + 1);
	if (strcmp (argv[1], "reply") == 0)
		return ticket_reply (desk, argc - 1, argv + 1);
	if (strcmp (argv[1], "merge") == 0)
		return ticket_merge (desk, argc - 1, argv + 1);
	return ticket_show (desk, argc - 1, argv + 1);
}
