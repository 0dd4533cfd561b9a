/* notify.c - from a ticket event to a queued message: recipients,
 * template variables, composition and the outbox row, in the caller's
 * transaction. */
#include "config.h"

#include <string.h>

#include "catalog.h"
#include "compose.h"
#include "md.h"
#include "notify.h"
#include "outgoing.h"
#include "outbox.h"
#include "template.h"
#include "thread.h"
#include "token.h"

/* ---- loop safety ---- */

static gboolean
header_has (const MdMessage *msg, const char *name)
{
	return md_message_header_values ((MdMessage *) msg, name) != NULL;
}

static const char *
header_first (const MdMessage *msg, const char *name)
{
	const char *const *v = md_message_header_values ((MdMessage *) msg, name);
	return v ? v[0] : NULL;
}

/* Local parts (before any +detail) of addresses no person writes from. */
static const char *const machine_locals[] = {
	"mailer-daemon", "noreply", "no-reply", "no_reply", "do-not-reply", "donotreply", "do_not_reply", NULL,
};
/* ... and of role addresses that people write from but that must get
 * no automatic answer (a bounce to them would go nowhere useful). */
static const char *const daemon_locals[] = {
	"mailer-daemon", "postmaster", "noreply", "no-reply", "no_reply", "do-not-reply",
	"donotreply", "do_not_reply", "bounce", "bounces", NULL,
};

static gboolean
local_part_in (const char *address, const char *const *locals)
{
	const char *at = address ? strchr (address, '@') : NULL;
	if (!at)
		return FALSE;
	g_autofree char *local = g_ascii_strdown (address, at - address);
	char *plus = strchr (local, '+');
	if (plus)
		*plus = 0;
	return g_strv_contains (locals, local);
}

const char *
md_notify_automatic_reason (const MdMessage *msg)
{
	const char *auto_submitted = header_first (msg, "Auto-Submitted");
	const char *precedence = header_first (msg, "Precedence");
	g_autofree char *precedence_lc = precedence ? g_ascii_strdown (precedence, -1) : NULL;

	while (auto_submitted && g_ascii_isspace (*auto_submitted))
		auto_submitted++;
	if (auto_submitted && g_ascii_strncasecmp (auto_submitted, "no", 2) != 0)
		return "it is auto-submitted (RFC 3834)";
	/* Older responders say so only in these (RFC 3834 5 mentions them). */
	if (header_has (msg, "X-Autoreply") || header_has (msg, "X-Autorespond"))
		return "it is an automatic reply";
	/* Not bulk: some list servers and CRMs mark people's mail so. */
	if (precedence_lc && (strstr (precedence_lc, "junk") || strstr (precedence_lc, "auto_reply")))
		return "its precedence is junk or auto_reply";
	if (msg->envelope_sender && !*msg->envelope_sender)
		return "its envelope sender is null (a bounce)";
	if (local_part_in (msg->from_addr, machine_locals) || local_part_in (msg->envelope_sender, machine_locals))
		return "it comes from a daemon or no-reply address";
	return NULL;
}

const char *
md_notify_suppress_reason (const MdMessage *msg, const char *envelope_sender)
{
	const char *precedence = header_first (msg, "Precedence");
	const char *suppress = header_first (msg, "X-Auto-Response-Suppress");
	/* Header values compare without case (RFC 2076 usage, Exchange's). */
	g_autofree char *precedence_lc = precedence ? g_ascii_strdown (precedence, -1) : NULL;
	g_autofree char *suppress_lc = suppress ? g_ascii_strdown (suppress, -1) : NULL;
	const char *automatic = md_notify_automatic_reason (msg);

	/* What the entry point knew of the envelope, unless the caller says. */
	if (!envelope_sender)
		envelope_sender = msg->envelope_sender;
	if (header_has (msg, MD_LOOP_HEADER))
		return "it carries our own loop header";
	if (automatic)
		return automatic;
	if (header_has (msg, "List-Id") || header_has (msg, "List-Unsubscribe"))
		return "it comes from a mailing list";
	if (precedence_lc && (strstr (precedence_lc, "list") || strstr (precedence_lc, "bulk")))
		return "its precedence is list or bulk";
	if (suppress_lc && (strstr (suppress_lc, "all") || strstr (suppress_lc, "autoreply")))
		return "the sender asked for no automatic replies";
	if (envelope_sender && !*envelope_sender)
		return "its envelope sender is null (a bounce)";
	/* Forged, most likely: an answer would go to someone who never wrote. */
	if (msg->from_auth == MD_SENDER_AUTH_FAIL)
		return "its From failed DMARC at the desk's MTA";
	if (local_part_in (msg->from_addr, daemon_locals) || local_part_in (envelope_sender, daemon_locals))
		return "it comes from a daemon or role address";
	return NULL;
}

/* ---- variables ---- */

void
md_notify_desk_from (MdDesk *desk, char **name_r, char **email_r)
{
	const char *from = desk->conf->smtp_from;
	const char *lt = from ? strchr (from, '<') : NULL;
	const char *gt = lt ? strchr (lt, '>') : NULL;

	if (lt && gt) {
		*name_r = g_strstrip (g_strndup (from, (gsize) (lt - from)));
		*email_r = g_strndup (lt + 1, (gsize) (gt - lt - 1));
	} else if (from) {
		*name_r = g_strdup (desk->conf->name);
		*email_r = g_strstrip (g_strdup (from));
	} else {
		*name_r = g_strdup (desk->conf->name);
		*email_r = g_strdup (desk->desk_address);
	}
	if (*name_r && !**name_r) {
		g_free (*name_r);
		*name_r = g_strdup (desk->conf->name);
	}
}

char *
md_notify_local_time (MdDesk *desk, gint64 t)
{
	if (!t)
		return g_strdup ("");
	g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (t);
	g_autoptr (GDateTime) local = g_date_time_to_timezone (utc, md_calendar_zone (desk->calendar));
	return g_date_time_format (local, "%a %d %b %Y %H:%M %Z");
}

/* The desk zone's offset from UTC at T, in seconds: the Date of the
 * desk's mail reads as its local time, as the times in the text do. */
static int
zone_offset (MdDesk *desk, gint64 t)
{
	g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (t);
	g_autoptr (GDateTime) local = g_date_time_to_timezone (utc, md_calendar_zone (desk->calendar));
	return (int) (g_date_time_get_utc_offset (local) / G_TIME_SPAN_SECOND);
}

char *
md_notify_resolve_link (const char *reply_address, const char *key)
{
	g_autofree char *subject = g_strdup_printf ("Resolve [%s]", key);
	g_autofree char *esc_subject = g_uri_escape_string (subject, NULL, FALSE);
	return g_strdup_printf ("mailto:%s?subject=%s&body=%%23resolve", reply_address, esc_subject);
}

static int
priority_index (const char *priority)
{
	for (int i = 0; md_priorities[i]; i++)
		if (g_strcmp0 (md_priorities[i], priority) == 0)
			return i;
	return 2;
}

char *
md_notify_response_time (MdDesk *desk, const char *priority)
{
	int i = priority_index (priority);
	return desk->has_first_response[i] ? md_duration_format (&desk->first_response[i]) : g_strdup ("");
}

static void
set (GHashTable *vars, const char *name, const char *value)
{
	g_hash_table_insert (vars, g_strdup (name), g_strdup (value ? value : ""));
}

GHashTable *
md_notify_ticket_vars (MdDesk *desk, const MdTicket *t)
{
	GHashTable *vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	set (vars, "desk.name", desk->conf->name);
	set (vars, "desk.address", desk->desk_address);
	if (!t) {
		set (vars, "reply_address", desk->desk_address);
		return vars;
	}
	g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, t->id);
	g_autofree char *reply = md_address_for_ticket (&desk->addressing, t->id);
	g_autofree char *link = md_notify_resolve_link (reply, key);
	g_autofree char *due = md_notify_local_time (desk, t->first_response_due);
	g_autofree char *response_time = md_notify_response_time (desk, t->priority);
	set (vars, "reply_address", reply);
	set (vars, "resolve_link", link);
	set (vars, "ticket.key", key);
	set (vars, "ticket.subject", t->subject);
	set (vars, "ticket.status", t->status);
	set (vars, "status", t->status);
	set (vars, "ticket.priority", t->priority);
	set (vars, "ticket.category", t->category);
	set (vars, "ticket.requester", t->requester);
	set (vars, "ticket.requester_name", t->requester_name);
	set (vars, "ticket.assignee", t->assignee);
	set (vars, "ticket.assignee_name", t->assignee_name);
	set (vars, "ticket.visibility", t->shared ? "shared" : "private");
	set (vars, "ticket.organization", t->organization);
	set (vars, "due", due);
	set (vars, "response_time", response_time);
	return vars;
}

/* The variables of a mail about TICKET: with SHARED, a table of the
 * mail's own to render over the ticket's (*UNDER_R), which *SHARED keeps
 * for the caller's next mail (made into it when NULL: an acknowledgement
 * and intake's question had each made the same); else one table of both. */
static GHashTable *
mail_vars (MdDesk *desk, const MdTicket *ticket, GHashTable **shared, GHashTable **under_r)
{
	*under_r = NULL;
	if (!shared)
		return md_notify_ticket_vars (desk, ticket);
	if (!*shared)
		*shared = md_notify_ticket_vars (desk, ticket);
	*under_r = *shared;
	return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static void
add_vars (GHashTable *vars, GHashTable *extra)
{
	GHashTableIter it;
	gpointer k, v;
	if (!extra)
		return;
	g_hash_table_iter_init (&it, extra);
	while (g_hash_table_iter_next (&it, &k, &v))
		set (vars, k, v);
}

/* ---- recipients ---- */

static gboolean
usable_rcpt (const char *email, const char *except)
{
	if (!email || (except && g_ascii_strcasecmp (email, except) == 0))
		return FALSE;
	if (!md_compose_address_is_valid (email)) {
		/* A From that parsed but is no usable address: the message is
		 * still stored; it just gets no mail back (else compose fails
		 * and the whole ingest is refused). */
		g_info ("notify: not writing to unusable address '%s'", email);
		return FALSE;
	}
	return TRUE;
}

static void
add_rcpt (GPtrArray *rcpts, const char *email, const char *except)
{
	if (!usable_rcpt (email, except))
		return;
	for (guint i = 0; i < rcpts->len; i++)
		if (g_ascii_strcasecmp (rcpts->pdata[i], email) == 0)
			return;
	g_ptr_array_add (rcpts, g_strdup (email));
}

/* Adds each of MORE (an organization's members, the agents: thousands,
 * it may be) not in RCPTS yet, looked up in a set rather than the list,
 * which add_rcpt reads whole for each address. */
static void
add_rcpts (GPtrArray *rcpts, GPtrArray *more, const char *except)
{
	g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	for (guint i = 0; i < rcpts->len; i++)
		g_hash_table_add (seen, g_ascii_strdown (rcpts->pdata[i], -1));
	for (guint i = 0; more && i < more->len; i++) {
		const char *email = more->pdata[i];
		if (usable_rcpt (email, except) && g_hash_table_add (seen, g_ascii_strdown (email, -1)))
			g_ptr_array_add (rcpts, g_strdup (email));
	}
}

/* Requester, participants and, for a shared ticket, its organization;
 * NULL when the store fails: a mail that silently missed its readers
 * would be worse than the message tried again. */
static GPtrArray *
customer_side (MdStore *store, const MdTicket *t, const char *except, GError **error)
{
	g_autoptr (GPtrArray) rcpts = g_ptr_array_new_with_free_func (g_free);
	add_rcpt (rcpts, t->requester, except);
	g_autoptr (GPtrArray) parts = md_store_participants (store, t->id, error);
	if (!parts)
		return NULL;
	for (guint i = 0; i < parts->len; i++)
		add_rcpt (rcpts, parts->pdata[i], except);
	if (t->shared && t->organization_id) {
		g_autoptr (GPtrArray) members = md_store_org_members (store, t->organization_id, error);
		if (!members)
			return NULL;
		add_rcpts (rcpts, members, except);
	}
	return g_steal_pointer (&rcpts);
}

/* Drops from RCPTS (customer_side) those a customer's own action may not
 * mail.  Whoever opens a ticket names its participants in Cc, under any
 * From, and a customer may #resolve and reopen it as often as they
 * like: else each toggle is a mail with their subject and name to
 * addresses of their choosing, from the desk's domain.  A participant
 * hears of a customer's change only once the desk has written to them
 * on the ticket (an agent's reply, an agent's change), and nobody more
 * than ack_rate_limit times an hour (the requester's From is forgeable
 * too).  The requester and the organization's members are the desk's
 * own records and are told, within the limit. */
static void
hold_customer_caused (MdDesk *desk, MdStore *store, const MdTicket *t, GPtrArray *rcpts, const char *kind)
{
	g_autoptr (GPtrArray) parts = md_store_participants (store, t->id, NULL);
	for (guint i = rcpts->len; i > 0; i--) {
		const char *rcpt = rcpts->pdata[i - 1];
		gboolean participant = FALSE;
		for (guint p = 0; parts && p < parts->len && !participant; p++)
			participant = g_ascii_strcasecmp (parts->pdata[p], rcpt) == 0;
		gboolean own = t->requester && g_ascii_strcasecmp (t->requester, rcpt) == 0;
		gboolean member = t->shared && t->organization_id &&
		                  md_store_org_is_member (store, t->organization_id, rcpt);
		if ((participant && !own && !member && !md_outbox_mailed (store, t->id, rcpt, NULL)) ||
		    md_notify_rate_limited (desk, store, rcpt, kind))
			g_ptr_array_remove_index (rcpts, i - 1);
	}
}

/* The assignee, else every agent; NULL when the store fails. */
static GPtrArray *
agent_side (MdDesk *desk, MdStore *store, const MdTicket *t, const char *except, GError **error)
{
	GPtrArray *rcpts = g_ptr_array_new_with_free_func (g_free);
	if (t->assignee) {
		add_rcpt (rcpts, t->assignee, except);
		return rcpts;
	}
	g_autoptr (GPtrArray) agents = md_store_agents (store, error);
	if (!agents) {
		g_ptr_array_unref (rcpts);
		return NULL;
	}
	add_rcpts (rcpts, agents, except);
	for (int i = 0; desk->conf->agents && desk->conf->agents[i]; i++)
		add_rcpt (rcpts, desk->conf->agents[i], except);
	return rcpts;
}

/* ---- composing and queueing ---- */

typedef struct {
	const char *event;
	const char *kind;                 /* outbox kind; the event when NULL */
	const MdTicket *ticket;
	GHashTable *vars;
	GHashTable *under;                /* variables shared with other mails, under vars; may be NULL */
	const char *const *thread;        /* the ticket's Message-IDs when known; NULL: read from the store */
	GPtrArray *rcpts;                 /* char* */
	const char *in_reply_to;
	MdAutoSubmitted auto_submitted;
	const char *agent_name;
	const MdMessage *attachments_of;  /* relay this message's attachments */
	gboolean record;                  /* keep a copy in the ticket's messages */
} Outgoing;

static const char *const *
thread_references (MdStore *store, const Outgoing *o, GPtrArray *holder)
{
	if (!o->ticket)
		return NULL;
	g_autoptr (GPtrArray) ids = md_store_ticket_thread_ids (store, o->ticket->id, MD_COMPOSE_MAX_REFERENCES,
	                                                        md_template_event_is_customer_facing (o->event), NULL);
	for (guint i = 0; ids && i < ids->len; i++)
		g_ptr_array_add (holder, g_strdup (ids->pdata[i]));
	g_ptr_array_add (holder, NULL);
	return (const char *const *) holder->pdata;
}

/* The desk's record of each recipient (NULL where it has none).  Read
 * once for automatic mail to customers, which asks of every recipient
 * both whether it is an agent and whether it bounces (an
 * acknowledgement read the requester's row twice for it). */
static GPtrArray *
recipients_known (MdStore *store, const Outgoing *o)
{
	GPtrArray *people = g_ptr_array_new_with_free_func ((GDestroyNotify) md_person_free);
	for (guint i = 0; i < o->rcpts->len; i++)
		g_ptr_array_add (people, md_store_person_find (store, o->rcpts->pdata[i], NULL));
	return people;
}

/* Whether the mail goes to agents only: an agents' event, or an answer
 * (a command error, #list) addressed to agents alone.  PEOPLE: the
 * recipients' records from recipients_known, or NULL to look them up. */
static gboolean
addressed_to_agents (MdDesk *desk, MdStore *store, const Outgoing *o, GPtrArray *people)
{
	const char *const *agents = (const char *const *) desk->conf->agents;
	if (!md_template_event_is_customer_facing (o->event))
		return TRUE;
	for (guint i = 0; i < o->rcpts->len; i++)
		if (people ? !md_person_is_agent (people->pdata[i], o->rcpts->pdata[i], agents)
		           : !md_is_agent (store, o->rcpts->pdata[i], agents))
			return FALSE;
	return o->rcpts->len > 0;
}

/* Automatic mail to customers skips addresses known to bounce (PEOPLE:
 * their records, from recipients_known).  Not the agents': a report
 * anyone can send must not cut them off. */
static void
drop_bouncing (Outgoing *o, GPtrArray *people)
{
	for (guint i = o->rcpts->len; i > 0; i--) {
		const MdPerson *p = people->pdata[i - 1];
		if (p && p->bouncing)
			g_ptr_array_remove_index (o->rcpts, i - 1);
	}
}

/* The event's template rendered with o->vars, under the rules lock a
 * SIGHUP reload takes; the template's extra headers copied out. */
static gboolean
render (MdDesk *desk, const Outgoing *o, char **subject_r, char **body_r, GStrv *headers_r, GError **error)
{
	g_rw_lock_reader_lock (&desk->rules_lock);
	const MdTemplate *tmpl = md_template_set_get (desk->templates, o->event);
	gboolean rendered = tmpl && md_template_render_over (tmpl, o->vars, o->under, subject_r, body_r, error);
	*headers_r = tmpl ? g_strdupv ((char **) md_template_headers (tmpl)) : NULL;
	g_rw_lock_reader_unlock (&desk->rules_lock);
	if (!tmpl)
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "no template for %s", o->event);
	return rendered;
}

/* The relayed message's attachments that go out: its own files (not
 * those of a message inside it, nor the HTML its text came from), at
 * most MD_COMPOSE_MAX_ATTACHMENTS.  Borrowed from o->attachments_of. */
static GPtrArray *
sent_attachments (const Outgoing *o)
{
	GPtrArray *sent = g_ptr_array_new ();
	for (guint i = 0; o->attachments_of && i < o->attachments_of->attachments->len; i++) {
		MdAttachment *a = o->attachments_of->attachments->pdata[i];
		if (a->depth == 0 && !a->is_body && sent->len < MD_COMPOSE_MAX_ATTACHMENTS)
			g_ptr_array_add (sent, a);
	}
	return sent;
}

/* The attachments that go out as files of the spool (their paths owned
 * by paths). */
static GArray *
attachment_files (MdDesk *desk, GPtrArray *sent, GPtrArray *paths)
{
	GArray *files = g_array_new (FALSE, TRUE, sizeof (MdAttachmentFile));
	for (guint i = 0; i < sent->len; i++) {
		MdAttachment *a = sent->pdata[i];
		char *path = md_spool_path (desk->spool, MD_SPOOL_BLOB, a->sha256);
		g_ptr_array_add (paths, path);
		MdAttachmentFile f = { a->filename, a->content_type, path, a->charset };
		g_array_append_val (files, f);
	}
	return files;
}

/* One outbox row per MD_COMPOSE_MAX_RECIPIENTS (a large organization's
 * shared ticket), each with its own Message-ID; returns the first, under
 * which the ticket keeps its copy, and files the others as the ticket's. */
static char *
enqueue_chunks (MdStore *store, const Outgoing *o, MdOutgoing *out, const char *envelope_from, GError **error)
{
	g_autofree MdMailbox *to = g_new0 (MdMailbox, o->rcpts->len);
	for (guint i = 0; i < o->rcpts->len; i++)
		to[i].email = o->rcpts->pdata[i];
	g_autofree char *message_id = NULL;
	for (guint start = 0; start < o->rcpts->len; start += MD_COMPOSE_MAX_RECIPIENTS) {
		guint n = MIN (o->rcpts->len - start, MD_COMPOSE_MAX_RECIPIENTS);
		out->to = to + start;
		out->n_to = n;
		/* Composed by the sender, off the writer thread every session waits for. */
		g_autofree char *id = NULL;
		g_autoptr (GBytes) bytes = md_outgoing_spec_new (out, &id, error);
		if (!bytes)
			return NULL;
		g_autofree const char **chunk = g_new0 (const char *, n + 1);
		memcpy (chunk, o->rcpts->pdata + start, n * sizeof *chunk);
		if (!md_outbox_enqueue_bytes (store, o->ticket ? o->ticket->id : 0, o->kind ? o->kind : o->event,
		                              envelope_from, chunk, bytes, id, error))
			return NULL;
		if (!message_id)
			message_id = g_steal_pointer (&id);
		else if (o->ticket && !md_store_message_id_add (store, id, o->ticket->id, error))
			return NULL;
	}
	out->to = NULL;
	out->n_to = 0;
	return g_steal_pointer (&message_id);
}

/* The kept copy's rows for the attachments that went out: the same
 * blobs, so the ticket shows what the customer was sent.  The strings
 * are borrowed: the store only reads them during the insert. */
static GPtrArray *
copy_attachments (GPtrArray *sent)
{
	GPtrArray *rows = g_ptr_array_new_full (sent->len, g_free);
	for (guint i = 0; i < sent->len; i++) {
		MdAttachment *a = sent->pdata[i];
		MdStoredAttachment *sa = g_new0 (MdStoredAttachment, 1);
		sa->filename = a->filename;
		sa->content_type = a->content_type;
		sa->size = a->size;
		sa->sha256 = a->sha256;
		g_ptr_array_add (rows, sa);
	}
	return rows;
}

/* The copy of the sent mail kept among the ticket's messages, with the
 * attachments SENT. */
static gboolean
record_copy (MdStore *store, const Outgoing *o, const MdOutgoing *out, GPtrArray *sent, const char *message_id,
             GError **error)
{
	g_autoptr (MdStoredMessage) copy = g_new0 (MdStoredMessage, 1);
	g_autoptr (GString) rcpt_list = g_string_new (NULL);
	for (guint i = 0; i < o->rcpts->len; i++) {
		if (i)
			g_string_append (rcpt_list, ", ");
		g_string_append (rcpt_list, o->rcpts->pdata[i]);
	}
	copy->ticket_id = o->ticket->id;
	copy->outgoing = TRUE;
	copy->message_id = g_strdup (message_id);
	copy->from_addr = g_strdup (out->desk_address);
	copy->from_name = g_strdup (o->agent_name ? o->agent_name : out->desk_name);
	copy->subject = g_strdup (out->subject);
	copy->body = g_strdup (out->body);
	copy->full_text = g_strconcat ("To: ", rcpt_list->str, "\n\n", out->body, NULL);
	copy->flag = g_strconcat ("sent: ", o->event, NULL);
	copy->created_at = md_now ();
	copy->attachments = copy_attachments (sent);
	return md_store_message_insert (store, copy, error);
}

static gboolean
queue (MdDesk *desk, MdStore *store, Outgoing *o, GError **error)
{
	gboolean automatic = o->auto_submitted != MD_AUTO_SUBMITTED_NONE;
	g_autoptr (GPtrArray) people = automatic && md_template_event_is_customer_facing (o->event)
	                               ? recipients_known (store, o) : NULL;
	gboolean to_agents = addressed_to_agents (desk, store, o, people);
	if (!to_agents && automatic)
		drop_bouncing (o, people);
	if (o->rcpts->len == 0)
		return TRUE;

	/* Mail to agents carries the address only agents get (agent_token =
	 * separate; else the ticket's one address), in its links too. */
	g_autofree char *reply_to = !o->ticket ? NULL
	                            : to_agents ? md_address_for_agents (&desk->addressing, o->ticket->id)
	                                        : md_address_for_ticket (&desk->addressing, o->ticket->id);
	if (reply_to && to_agents && desk->addressing.agent_tokens) {
		g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, o->ticket->id);
		set (o->vars, "reply_address", reply_to);
		g_hash_table_insert (o->vars, g_strdup ("resolve_link"), md_notify_resolve_link (reply_to, key));
	}

	g_autofree char *subject = NULL, *body = NULL;
	g_auto (GStrv) headers = NULL;
	if (!render (desk, o, &subject, &body, &headers, error))
		return FALSE;
	g_autofree char *from_name = NULL, *from_email = NULL;
	md_notify_desk_from (desk, &from_name, &from_email);
	g_autofree char *key = o->ticket ? md_ticket_key (desk->conf->ticket_prefix, o->ticket->id) : NULL;
	g_autoptr (GPtrArray) refs_holder = g_ptr_array_new_with_free_func (g_free);
	g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	g_autoptr (GPtrArray) sent = sent_attachments (o);
	g_autoptr (GArray) files = attachment_files (desk, sent, paths);
	gint64 now = md_now ();
	MdOutgoing out = {
		.desk_name = from_name,
		.desk_address = from_email,
		.agent_name = o->agent_name,
		.reply_to = reply_to,
		.ticket_key = key,
		.subject = subject,
		.body = body,
		.references = o->thread ? o->thread : thread_references (store, o, refs_holder),
		.date = now,
		.date_offset = zone_offset (desk, now),
		.auto_submitted = o->auto_submitted,
		.headers = (const char *const *) headers,
		.attachments = (const MdAttachmentFile *) files->data,
		.n_attachments = files->len,
	};
	/* DESIGN 8: In-Reply-To on every mail of a thread.  Mail that answers
	 * no message of its own (a status change, a reminder, a follow-up)
	 * answers the thread's latest one. */
	out.in_reply_to = o->in_reply_to;
	for (guint i = 0; !out.in_reply_to && out.references && out.references[i]; i++)
		if (!out.references[i + 1])
			out.in_reply_to = out.references[i];
	/* Bounces of the desk's mail come back to the ticket's own address. */
	g_autofree char *message_id = enqueue_chunks (store, o, &out, reply_to ? reply_to : from_email, error);
	if (!message_id)
		return FALSE;
	if (!o->ticket)
		return TRUE;
	if (!o->record)
		return md_store_message_id_add (store, message_id, o->ticket->id, error);
	return record_copy (store, o, &out, sent, message_id, error);
}

/* ---- events ---- */

gboolean
md_notify_rate_limited (MdDesk *desk, MdStore *store, const char *rcpt, const char *kind)
{
	gint64 since = md_now () - desk->ack_limit_period;
	if (md_outbox_count_recent (store, rcpt, kind, since) < (guint) desk->ack_limit)
		return FALSE;
	g_info ("notify: %s mail to %s rate-limited", kind, rcpt);
	return TRUE;
}

gboolean
md_notify_ack (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdMessage *msg,
               const char *envelope_sender, GHashTable *extra, GHashTable **ticket_vars, GError **error)
{
	const char *why = md_notify_suppress_reason (msg, envelope_sender);
	if (why || !ticket->requester) {
		g_info ("notify: no acknowledgement for ticket %" G_GINT64_FORMAT ": %s", ticket->id,
		        why ? why : "no sender");
		return TRUE;
	}
	g_autoptr (MdPerson) p = md_store_person_find (store, ticket->requester, NULL);
	if (p && p->bouncing)
		return TRUE;
	if (md_notify_rate_limited (desk, store, ticket->requester, "ack"))
		return TRUE;
	GHashTable *under = NULL;
	g_autoptr (GHashTable) vars = mail_vars (desk, ticket, ticket_vars, &under);
	add_vars (vars, extra);
	g_autoptr (GPtrArray) rcpts = g_ptr_array_new_with_free_func (g_free);
	add_rcpt (rcpts, ticket->requester, NULL);
	/* The new ticket's thread is so far the message acknowledged. */
	const char *const thread[] = { msg->message_id, NULL };
	Outgoing o = { .event = "ack", .ticket = ticket, .vars = vars, .under = under, .thread = thread,
		       .rcpts = rcpts, .in_reply_to = msg->message_id, .auto_submitted = MD_AUTO_SUBMITTED_REPLIED,
		       .record = TRUE };
	return queue (desk, store, &o, error);
}

static char *
attachment_names (const MdMessage *msg)
{
	GString *s = g_string_new (NULL);
	for (guint i = 0; msg && i < msg->attachments->len; i++) {
		MdAttachment *a = msg->attachments->pdata[i];
		if (a->depth == 0 && !a->is_body)
			g_string_append_printf (s, "%s%s", s->len ? "\n" : "", a->filename);
	}
	return g_string_free (s, FALSE);
}

static void
set_author (GHashTable *vars, const MdPersonRef *who)
{
	set (vars, "author.email", who ? who->email : NULL);
	set (vars, "author.name", who ? who->name : NULL);
}

gboolean
md_notify_agent_reply (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *agent,
                       const char *comment, const char *old_status, const MdMessage *msg, GError **error)
{
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, ticket);
	g_autofree char *names = attachment_names (msg);
	g_autofree char *window = md_duration_format (&desk->reopen_window);
	set_author (vars, agent);
	set (vars, "comment", comment);
	set (vars, "attachments", names);
	set (vars, "old_status", old_status);
	set (vars, "resolved", g_strcmp0 (ticket->status, MD_STATUS_RESOLVED) == 0 ? "yes" : "");
	set (vars, "reopen_window", window);
	g_autoptr (GPtrArray) rcpts = customer_side (store, ticket, agent->email, error);
	if (!rcpts)
		return FALSE;
	/* In reply to the latest mail the customer has, not to the agent's
	 * own, which they never get (the thread's newest, as for mail that
	 * answers nothing of its own). */
	Outgoing o = { .event = "agent-reply", .ticket = ticket, .vars = vars, .rcpts = rcpts,
		       .auto_submitted = MD_AUTO_SUBMITTED_NONE,
		       .agent_name = agent->name ? agent->name : agent->email, .attachments_of = msg,
		       .record = TRUE };
	return queue (desk, store, &o, error);
}

gboolean
md_notify_customer_reply (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *author,
                          const char *comment, const MdMessage *msg, GError **error)
{
	g_autoptr (GPtrArray) rcpts = agent_side (desk, store, ticket, author->email, error);
	if (!rcpts)
		return FALSE;
	/* A desk without agents yet relays nothing: no variables to make
	 * (every new ticket comes here). */
	if (rcpts->len == 0)
		return TRUE;
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, ticket);
	g_autofree char *names = attachment_names (msg);
	set_author (vars, author);
	set (vars, "comment", comment);
	set (vars, "attachments", names);
	/* Relayed by the desk, not written to the agents: auto-generated,
	 * which also keeps their out-of-office replies away. */
	Outgoing o = { .event = "customer-reply", .ticket = ticket, .vars = vars, .rcpts = rcpts,
		       .in_reply_to = msg ? msg->message_id : NULL, .auto_submitted = MD_AUTO_SUBMITTED_GENERATED,
		       .attachments_of = msg };
	return queue (desk, store, &o, error);
}

gboolean
md_notify_status_change (MdDesk *desk, MdStore *store, const MdTicket *ticket, const char *old_status,
                         const MdPersonRef *actor, const char *comment, const char *except, gboolean by_customer,
                         GError **error)
{
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, ticket);
	g_autofree char *window = md_duration_format (&desk->reopen_window);
	set_author (vars, actor);
	set (vars, "status", ticket->status);
	set (vars, "old_status", old_status);
	set (vars, "resolved", g_strcmp0 (ticket->status, MD_STATUS_RESOLVED) == 0 ? "yes" : "");
	set (vars, "comment", comment);
	set (vars, "reopen_window", window);
	g_autoptr (GPtrArray) rcpts = customer_side (store, ticket, except, error);
	if (!rcpts)
		return FALSE;
	if (by_customer)
		hold_customer_caused (desk, store, ticket, rcpts, "status-change");
	Outgoing o = { .event = "status-change", .ticket = ticket, .vars = vars, .rcpts = rcpts,
		       .auto_submitted = MD_AUTO_SUBMITTED_GENERATED, .record = TRUE };
	return queue (desk, store, &o, error);
}

gboolean
md_notify_merged (MdDesk *desk, MdStore *store, const MdTicket *source, const MdTicket *into, const char *except,
                  GError **error)
{
	g_autoptr (GPtrArray) rcpts = customer_side (store, source, except, error);
	g_autoptr (GPtrArray) readers = rcpts ? customer_side (store, into, NULL, error) : NULL;
	if (!readers)
		return FALSE;
	/* Only to who may read INTO: its subject and address are in the
	 * mail, and a shared duplicate may go into a private ticket, which
	 * the organization's other members must not learn of.  Both sides
	 * may be an organization of thousands: a set, not a scan each. */
	g_autoptr (GHashTable) may_read = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	for (guint r = 0; r < readers->len; r++)
		g_hash_table_add (may_read, g_ascii_strdown (readers->pdata[r], -1));
	for (guint i = rcpts->len; i > 0; i--) {
		g_autofree char *folded = g_ascii_strdown (rcpts->pdata[i - 1], -1);
		if (!g_hash_table_contains (may_read, folded))
			g_ptr_array_remove_index (rcpts, i - 1);
	}
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, into);
	g_autofree char *key = md_ticket_key (desk->conf->ticket_prefix, source->id);
	set (vars, "merged.key", key);
	set (vars, "merged.subject", source->subject);
	/* About INTO: its Reply-To, tag and thread, so that the answer to it
	 * lands where the work goes on, and its copy is kept there. */
	Outgoing o = { .event = "merged", .ticket = into, .vars = vars, .rcpts = rcpts,
		       .auto_submitted = MD_AUTO_SUBMITTED_GENERATED, .record = TRUE };
	return queue (desk, store, &o, error);
}

static gboolean
reply_to_one (MdDesk *desk, MdStore *store, const MdTicket *ticket, const char *event, GHashTable *vars,
              const MdPersonRef *to, const MdMessage *msg, GError **error)
{
	g_autoptr (GPtrArray) rcpts = g_ptr_array_new_with_free_func (g_free);
	if (msg && md_notify_suppress_reason (msg, NULL))
		return TRUE;
	add_rcpt (rcpts, to->email, NULL);
	Outgoing o = { .event = event, .ticket = ticket, .vars = vars, .rcpts = rcpts,
		       .in_reply_to = msg ? msg->message_id : NULL, .auto_submitted = MD_AUTO_SUBMITTED_REPLIED };
	return queue (desk, store, &o, error);
}

gboolean
md_notify_unverified_agent (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *agent,
                            const MdMessage *msg, GError **error)
{
	/* Anyone can put an agent's address in From: without a limit each
	 * forged message would have the desk mail the agent.  The message
	 * itself is kept all the same (the caller stored it). */
	if (md_notify_rate_limited (desk, store, agent->email, "unverified-agent"))
		return TRUE;
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, ticket);
	set_author (vars, agent);
	return reply_to_one (desk, store, ticket, "unverified-agent", vars, agent, msg, error);
}

gboolean
md_notify_command_error (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *to,
                         const char *command, const char *reason, const MdMessage *msg, GError **error)
{
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, ticket);
	set_author (vars, to);
	set (vars, "command", command);
	set (vars, "error", reason);
	return reply_to_one (desk, store, ticket, "command-error", vars, to, msg, error);
}

gboolean
md_notify_visibility (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *to,
                      const MdMessage *msg, GError **error)
{
	/* The requester's From is forgeable: a stranger's #share and #private
	 * in turn must not become a stream of mail to them. */
	if (md_notify_rate_limited (desk, store, to->email, "visibility"))
		return TRUE;
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, ticket);
	set_author (vars, to);
	set (vars, "shared", ticket->shared ? "yes" : "");
	return reply_to_one (desk, store, ticket, "visibility", vars, to, msg, error);
}

gboolean
md_notify_list (MdDesk *desk, MdStore *store, const MdTicket *ticket, const MdPersonRef *to,
                const char *tickets_text, const MdMessage *msg, GError **error)
{
	g_autoptr (GHashTable) vars = md_notify_ticket_vars (desk, ticket);
	set_author (vars, to);
	set (vars, "tickets", tickets_text);
	return reply_to_one (desk, store, ticket, "list", vars, to, msg, error);
}

gboolean
md_notify_event (MdDesk *desk, MdStore *store, const MdTicket *ticket, const char *event, GHashTable *extra,
                 const char *const *rcpts, const char *in_reply_to, gboolean auto_generated, guint *queued_r,
                 GHashTable **ticket_vars, GError **error)
{
	GHashTable *under = NULL;
	g_autoptr (GHashTable) vars = mail_vars (desk, ticket, ticket_vars, &under);
	add_vars (vars, extra);
	g_autoptr (GPtrArray) list = g_ptr_array_new_with_free_func (g_free);
	for (int i = 0; rcpts && rcpts[i]; i++)
		add_rcpt (list, rcpts[i], NULL);
	Outgoing o = { .event = event, .ticket = ticket, .vars = vars, .under = under, .rcpts = list,
		       .in_reply_to = in_reply_to,
		       .auto_submitted = auto_generated ? MD_AUTO_SUBMITTED_GENERATED : MD_AUTO_SUBMITTED_REPLIED,
		       .record = md_template_event_is_customer_facing (event) };
	gboolean ok = queue (desk, store, &o, error);
	/* queue drops the addresses that bounce; add_rcpt the unusable ones */
	if (queued_r)
		*queued_r = ok ? list->len : 0;
	return ok;
}
