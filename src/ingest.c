/* ingest.c - DESIGN 5 steps 2-6: dedupe, parse, thread, authorize,
 * classify, trim and store one received message. */
#include "config.h"

#include <string.h>

#include "authres.h"
#include "catalog.h"
#include "compose.h"
#include "ingest.h"
#include "intake.h"
#include "md.h"
#include "message.h"
#include "rules.h"
#include "notify.h"
#include "outbox.h"
#include "schedule.h"
#include "trim.h"
#include "workflow.h"

struct _MdIngestJob {
	MdDesk *desk;
	char *raw_sha256;
	gint64 raw_size;
	char *sender;              /* envelope; "" for <>, NULL when unknown */
	GStrv recipients;          /* envelope */
	MdMessage *msg;
	gboolean msg_borrowed;     /* another envelope's job parsed it (md_ingest_each) */
	MdClassification cls;
	gint64 token_ticket_id;
	gboolean agent_token;      /* it came with the agent token (agent_token = separate) */
	char *sender_addr;         /* From, else the envelope sender */
	char *trimmed_body;        /* the body trimmed as a reply, made off the writer; NULL: not yet */
	const char *unverified_why; /* the note's flag when the From was not believed */
	MdIntakeMatch *intake_match; /* the form of the ticket it would open, made off the writer; NULL: not yet */
	MdIngestResult result;
};

gboolean
md_ingest_check_recipient (MdDesk *desk, const char *address, const char *const *accepted, GError **error)
{
	gint64 id = 0;
	switch (md_address_classify (&desk->addressing, address, &id)) {
	case MD_ADDRESS_INTAKE:
		return TRUE;
	case MD_ADDRESS_TICKET:
		for (guint i = 0; accepted && accepted[i]; i++) {
			gint64 other = 0;
			if (md_address_classify (&desk->addressing, accepted[i], &other) == MD_ADDRESS_TICKET && other != id) {
				g_set_error (error, MD_ERROR, MD_ERROR_SPLIT, "%s: this message goes to another ticket", address);
				return FALSE;
			}
		}
		return TRUE;
	case MD_ADDRESS_BAD_TOKEN:
		g_set_error (error, MD_ERROR, MD_ERROR_BAD_TOKEN, "%s: reply token does not match the ticket", address);
		return FALSE;
	case MD_ADDRESS_OTHER_LOCAL:
		if (md_desk_matches_recipient (desk, address))
			return TRUE;
		g_set_error (error, MD_ERROR, MD_ERROR_NO_USER, "%s: no such mailbox here", address);
		return FALSE;
	case MD_ADDRESS_FOREIGN:
		if (md_desk_matches_recipient (desk, address))
			return TRUE;
		g_set_error (error, MD_ERROR, MD_ERROR_BAD_DOMAIN, "%s: this desk only takes mail for @%s", address,
		             desk->conf->domain);
		return FALSE;
	}
	return FALSE;
}

GPtrArray *
md_ingest_group_recipients (MdDesk *desk, const char *const *recipients)
{
	GPtrArray *groups = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);

	for (guint i = 0; recipients && recipients[i]; i++) {
		GPtrArray *home = NULL;
		/* The first group that takes it: LMTP's rule, with each group a
		 * transaction of its own. */
		for (guint g = 0; !home && g < groups->len; g++) {
			GPtrArray *group = groups->pdata[g];
			g_autoptr (GError) split = NULL;
			if (md_ingest_check_recipient (desk, recipients[i], (const char *const *) group->pdata, &split))
				home = group;
		}
		if (!home) {
			home = g_ptr_array_new ();
			g_ptr_array_add (home, NULL);
			g_ptr_array_add (groups, home);
		}
		g_ptr_array_insert (home, (gint) home->len - 1, (gpointer) recipients[i]);
	}
	return groups;
}

MdIngestJob *
md_ingest_job_new (MdDesk *desk, const char *raw_sha256, gint64 raw_size, const MdEnvelope *env)
{
	MdIngestJob *job = g_new0 (MdIngestJob, 1);
	job->desk = desk;
	job->raw_sha256 = g_strdup (raw_sha256);
	job->raw_size = raw_size;
	job->sender = env && env->sender ? g_strdup (env->sender) : NULL;  /* "" for <> */
	job->recipients = g_strdupv (env && env->recipients ? (char **) env->recipients : NULL);
	return job;
}

void
md_ingest_job_free (MdIngestJob *job)
{
	if (!job)
		return;
	g_free (job->raw_sha256);
	g_free (job->sender);
	g_strfreev (job->recipients);
	if (job->msg && !job->msg_borrowed)
		md_message_free (job->msg);
	md_classification_clear (&job->cls);
	g_free (job->sender_addr);
	g_free (job->trimmed_body);
	md_intake_match_free (job->intake_match);
	g_free (job->result.key);
	g_free (job);
}

const MdIngestResult *
md_ingest_result (const MdIngestJob *job)
{
	return &job->result;
}

/* The reply token, from the envelope recipients when the entry point
 * knows them, else from the addresses in To and Cc. */
static void
find_token (MdIngestJob *job)
{
	const MdAddressing *a = &job->desk->addressing;
	GPtrArray *candidates = g_ptr_array_new ();
	g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);

	if (job->recipients && job->recipients[0]) {
		for (int i = 0; job->recipients[i]; i++)
			g_ptr_array_add (candidates, job->recipients[i]);
	} else {
		for (guint i = 0; job->msg->to && i < job->msg->to->len; i++)
			g_ptr_array_add (candidates, job->msg->to->pdata[i]);
		for (guint i = 0; job->msg->cc && i < job->msg->cc->len; i++)
			g_ptr_array_add (candidates, job->msg->cc->pdata[i]);
		/* What the delivering MTA wrote of the envelope (the topmost of
		 * each): a ticket's address in Bcc shows only there. */
		static const char *const envelope_headers[] = { "Delivered-To", "X-Original-To" };
		for (gsize h = 0; h < G_N_ELEMENTS (envelope_headers); h++) {
			const char *const *v = md_message_header_values (job->msg, envelope_headers[h]);
			if (v && v[0]) {
				char *addr = g_strstrip (g_strdup (v[0]));
				gsize len = strlen (addr);
				if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
					memmove (addr, addr + 1, len - 2);
					addr[len - 2] = '\0';
				}
				g_ptr_array_add (candidates, addr);
				g_ptr_array_add (owned, addr);
			}
		}
	}
	for (guint i = 0; i < candidates->len; i++) {
		gint64 id = 0;
		if (md_address_classify (a, candidates->pdata[i], &id) != MD_ADDRESS_TICKET ||
		    (job->token_ticket_id && id != job->token_ticket_id))
			continue;
		job->token_ticket_id = id;
		job->agent_token |= md_address_has_agent_token (a, candidates->pdata[i]);
	}
	g_ptr_array_free (candidates, TRUE);
}

static const char *const *
header_values (gpointer user_data, const char *name)
{
	return md_message_header_values (user_data, name);
}

void
md_rule_view_init (MdRuleView *view, MdMessage *msg, const char *from, const char *const *recipients)
{
	view->to = g_ptr_array_new ();
	view->cc = g_ptr_array_new ();
	view->names = g_ptr_array_new ();
	for (guint i = 0; msg->to && i < msg->to->len; i++)
		g_ptr_array_add (view->to, msg->to->pdata[i]);
	for (int i = 0; recipients && recipients[i]; i++)
		g_ptr_array_add (view->to, (gpointer) recipients[i]);
	g_ptr_array_add (view->to, NULL);
	for (guint i = 0; msg->cc && i < msg->cc->len; i++)
		g_ptr_array_add (view->cc, msg->cc->pdata[i]);
	g_ptr_array_add (view->cc, NULL);
	for (guint i = 0; i < msg->attachments->len; i++)
		g_ptr_array_add (view->names, ((MdAttachment *) msg->attachments->pdata[i])->filename);
	g_ptr_array_add (view->names, NULL);
	view->input = (MdRuleInput) {
		.from = from,
		.to = (const char *const *) view->to->pdata,
		.cc = (const char *const *) view->cc->pdata,
		.subject = msg->subject,
		.body = msg->body,
		.attachments = (const char *const *) view->names->pdata,
		.get_header = header_values,
		.user_data = msg,
	};
}

void
md_rule_view_clear (MdRuleView *view)
{
	g_clear_pointer (&view->to, g_ptr_array_unref);
	g_clear_pointer (&view->cc, g_ptr_array_unref);
	g_clear_pointer (&view->names, g_ptr_array_unref);
}

char *
md_ingest_sender_address (const MdMessage *msg, const char *envelope_sender)
{
	/* An ambiguous From is a forgery's mark: the envelope sender, which
	 * is as easy to forge, does not stand in for it. */
	const char *from = msg->from_addr ? msg->from_addr
	                   : msg->from_ambiguous ? NULL
	                   : envelope_sender && *envelope_sender ? envelope_sender : NULL;
	return from ? g_ascii_strdown (from, -1) : NULL;
}

static void
classify (MdIngestJob *job)
{
	g_auto (MdRuleView) view = { 0 };

	md_rule_view_init (&view, job->msg, job->sender_addr, (const char *const *) job->recipients);
	md_desk_classify (job->desk, &view.input, &job->cls);
}

/* Without an envelope (IMAP, a plain `deliver`), the Return-Path the
 * delivering MTA wrote says whether the sender was <>. */
static gboolean
has_null_return_path (MdMessage *msg)
{
	const char *const *rp = md_message_header_values (msg, "Return-Path");
	if (!rp || !rp[0])
		return FALSE;
	g_autofree char *value = g_strstrip (g_strdup (rp[0]));
	return strcmp (value, "<>") == 0;
}

/* Whether TEXT begins with a command line: mail to the intake address
 * is then trimmed as a reply is (a #list signed by its sender is a #list
 * alone). */
static gboolean
starts_with_command (const char *text)
{
	g_autoptr (GPtrArray) commands = md_commands_parse (text);
	return commands->len > 0;
}

static char *
join_tags (GPtrArray *tags)
{
	if (!tags || tags->len == 0)
		return NULL;
	g_ptr_array_add (tags, NULL);
	char *joined = g_strjoinv (",", (char **) tags->pdata);
	g_ptr_array_remove_index (tags, tags->len - 1);
	return joined;
}

/* What prepare reads of the envelope's recipients, the message parsed:
 * the token, the rules' verdict, the intake form and, for what may be a
 * reply, its trimmed body (a copy of TRIMMED when another envelope made
 * it). */
static void
prepare_for_recipients (MdIngestJob *job, const char *trimmed)
{
	find_token (job);
	classify (job);
	/* A reply is trimmed here, on the parsing threads, not in the writer
	 * every session waits for (a long body of quoted headers costs up
	 * to ~2 s a MB).  Only mail that may be a reply: the writer knows. */
	if (job->token_ticket_id || job->msg->in_reply_to || job->msg->references->len || strchr (job->msg->subject, '[') ||
	    starts_with_command (job->msg->body))
		job->trimmed_body = trimmed ? g_strdup (trimmed) : md_trim_reply (job->msg->body, NULL);
	/* The form of the ticket it opens is a few regular expressions over
	 * the whole text: found here too, for mail that does not look like a
	 * reply (the writer finds it for the rest, when one opens a ticket). */
	if (!job->token_ticket_id && !job->msg->in_reply_to && !job->msg->references->len && !job->msg->is_report &&
	    !job->cls.drop_silently) {
		g_autofree char *tags = join_tags (job->cls.tags);
		job->intake_match = md_intake_match (job->desk, job->cls.category ? job->cls.category : MD_DEFAULT_CATEGORY,
		                                     tags, job->msg);
	}
}

gboolean
md_ingest_prepare (MdIngestJob *job, GError **error)
{
	g_autofree char *path = md_spool_path (job->desk->spool, MD_SPOOL_RAW, job->raw_sha256);

	job->msg = md_message_parse_file (path, job->desk->spool, &job->desk->limits, error);
	if (!job->msg)
		return FALSE;
	job->msg->envelope_sender = g_strdup (job->sender ? job->sender : has_null_return_path (job->msg) ? "" : NULL);
	job->sender_addr = md_ingest_sender_address (job->msg, job->sender);
	const char *const *trusted = (const char *const *) job->desk->conf->authserv_id;
	if (trusted && trusted[0])
		job->msg->from_auth = md_authres_verdict ((const char *const *) job->msg->auth_results->pdata,
		                                          trusted, job->msg->from_ambiguous ? NULL : job->msg->from_addr);
	prepare_for_recipients (job, NULL);
	return TRUE;
}

/* md_ingest_prepare for the message FIRST has prepared, in another
 * envelope from the same sender: what the parse and the sender give is
 * FIRST's, read, not made again (FIRST must live while JOB is used). */
static void
prepare_like (MdIngestJob *job, const MdIngestJob *first)
{
	job->msg = first->msg;
	job->msg_borrowed = TRUE;
	job->sender_addr = g_strdup (first->sender_addr);
	prepare_for_recipients (job, first->trimmed_body);
}

/* ---- storing ---- */

static char *
problems_flag (const MdMessage *msg)
{
	if (!msg->problems || msg->problems->len == 0)
		return NULL;
	GString *s = g_string_new ("needs human: ");
	for (guint i = 0; i < msg->problems->len && i < 8; i++)
		g_string_append_printf (s, "%s%s", i ? "; " : "", (const char *) msg->problems->pdata[i]);
	return g_string_free (s, FALSE);
}

static MdStoredMessage *
stored_message_new (MdIngestJob *job, gint64 ticket_id, gboolean trim)
{
	MdMessage *msg = job->msg;
	MdStoredMessage *m = g_new0 (MdStoredMessage, 1);

	m->ticket_id = ticket_id;
	m->message_id = g_strdup (msg->message_id);
	m->from_addr = g_strdup (job->sender_addr);
	m->from_name = g_strdup (msg->from_name);
	m->subject = g_strdup (msg->subject);
	m->full_text = g_strdup (msg->body);
	m->body = !trim ? g_strdup (msg->body)
	          : job->trimmed_body ? g_strdup (job->trimmed_body) : md_trim_reply (msg->body, NULL);
	m->raw_sha256 = g_strdup (job->raw_sha256);
	m->raw_size = job->raw_size;
	m->created_at = md_now ();
	m->flag = problems_flag (msg);
	m->attachments = g_ptr_array_new ();
	for (guint i = 0; i < msg->attachments->len; i++) {
		MdAttachment *a = msg->attachments->pdata[i];
		/* Borrowed: the store only reads them during the insert. */
		MdStoredAttachment *sa = g_new0 (MdStoredAttachment, 1);
		sa->filename = a->filename;
		sa->content_type = a->content_type;
		sa->size = a->size;
		sa->sha256 = a->sha256;
		sa->depth = a->depth;
		sa->is_inline = a->is_inline;
		g_ptr_array_add (m->attachments, sa);
	}
	g_ptr_array_set_free_func (m->attachments, g_free);
	return m;
}

static gboolean
insert_message (MdIngestJob *job, MdStore *store, MdStoredMessage *m, GError **error)
{
	if (!md_store_message_insert (store, m, error))
		return FALSE;
	job->result.message_row_id = m->id;
	return TRUE;
}

/* An address the desk itself receives or sends mail at: the intake and
 * its sub-addresses, the local parts of its domain that the rules take,
 * and the From of its mail. */
static gboolean
is_desk_address (MdIngestJob *job, const char *address)
{
	MdDesk *desk = job->desk;
	switch (md_address_classify (&desk->addressing, address, NULL)) {
	case MD_ADDRESS_INTAKE:
	case MD_ADDRESS_TICKET:
	case MD_ADDRESS_BAD_TOKEN:
		return TRUE;
	case MD_ADDRESS_OTHER_LOCAL:
		/* postmaster: LMTP takes it for the intake (RFC 5321 4.5.1) */
		if (md_desk_matches_recipient (desk, address) || g_ascii_strncasecmp (address, "postmaster@", 11) == 0)
			return TRUE;
		break;
	case MD_ADDRESS_FOREIGN:
		break;
	}
	g_autofree char *from_name = NULL, *from_email = NULL;
	md_notify_desk_from (desk, &from_name, &from_email);
	return g_ascii_strcasecmp (address, from_email) == 0;
}

/* Why a message is the desk's own mail come back (our loop header, or a
 * From at one of the desk's addresses), or NULL when it is not. */
static const char *
own_mail_reason (MdIngestJob *job, MdStore *store)
{
	const char *const *loop = md_message_header_values (job->msg, MD_LOOP_HEADER);
	for (guint i = 0; loop && loop[i]; i++) {
		g_autofree char *value = g_strstrip (g_strdup (loop[i]));
		if (g_ascii_strcasecmp (value, job->desk->conf->domain) == 0)
			return "it carries our own loop header";
	}
	/* An agent may well write from an address a rule also takes. */
	if (job->sender_addr && is_desk_address (job, job->sender_addr) &&
	    !md_is_agent (store, job->sender_addr, (const char *const *) job->desk->conf->agents))
		return "it is from one of the desk's own addresses";
	return NULL;
}

static gboolean
add_participants (MdIngestJob *job, MdStore *store, gint64 ticket_id, GError **error)
{
	GPtrArray *cc = job->msg->cc;
	for (guint i = 0; cc && i < cc->len && i < 50; i++) {
		const char *addr = cc->pdata[i];
		gint64 pid = 0;
		if (is_desk_address (job, addr) || g_ascii_strcasecmp (addr, job->sender_addr ? job->sender_addr : "") == 0)
			continue;
		if (!md_store_person_ensure (store, addr, NULL, &pid, error) ||
		    !md_store_participant_add (store, ticket_id, pid, error))
			return FALSE;
	}
	return TRUE;
}

/* The command lines at the top of a message that opens a ticket, read
 * as in a reply (trimmed; none in a forwarded message), up to the first
 * that names no command: a new request that opens with "#include" or
 * "#2 of 3" is text, not a mistyped command to answer. */
static GPtrArray *
opening_commands (MdIngestJob *job)
{
	GPtrArray *commands = md_commands_parse (job->trimmed_body ? job->trimmed_body : job->msg->body);
	guint known = 0;
	while (known < commands->len && md_command_is_known (((MdCommand *) commands->pdata[known])->name))
		known++;
	/* (no command in a forwarded message; the check costs a scan of the
	 * text, so only when there is one) */
	if (known && md_trim_starts_with_forward (job->msg->body))
		known = 0;
	g_ptr_array_set_size (commands, known);
	return commands;
}

/* Whether COMMANDS (opening_commands) are all the command-like lines
 * TEXT opens with, so that stripping them leaves the rest as written. */
static gboolean
commands_are_all (GPtrArray *commands, const char *text)
{
	if (!commands->len)
		return FALSE;
	g_autoptr (GPtrArray) lines = md_commands_parse (text);
	return commands->len == lines->len;
}

static MdActorKind
sender_kind (MdIngestJob *job, MdStore *store)
{
	return job->sender_addr && md_is_agent (store, job->sender_addr, (const char *const *) job->desk->conf->agents)
	       ? MD_ACTOR_AGENT : MD_ACTOR_CUSTOMER;
}

/* Whether the message is commands alone, all #list: answered with the
 * list, it opens no ticket.  Not one that needs a human (unparsed parts,
 * quarantine), nor one with a file, which says something (as a reply's
 * does), nor one without a sender to answer. */
static gboolean
only_list (MdIngestJob *job, GPtrArray *commands)
{
	if (!commands->len || !job->sender_addr || job->cls.quarantine || job->cls.drop_silently ||
	    (job->msg->problems && job->msg->problems->len))
		return FALSE;
	for (guint i = 0; i < commands->len; i++)
		if (strcmp (((MdCommand *) commands->pdata[i])->name, "list") != 0)
			return FALSE;
	for (guint i = 0; i < job->msg->attachments->len; i++) {
		const MdAttachment *a = job->msg->attachments->pdata[i];
		if (a->depth == 0 && !a->is_body)
			return FALSE;
	}
	const char *text = job->trimmed_body ? job->trimmed_body : job->msg->body;
	g_autofree char *rest = md_commands_strip (text);
	return commands_are_all (commands, text) && !*g_strstrip (rest);
}

/* A #list alone: kept and recorded as any received mail (so that a
 * redelivery does nothing), attached to no ticket, and answered under
 * the loop rules and the per-sender limit of automatic mail. */
static gboolean
answer_list (MdIngestJob *job, MdStore *store, GError **error)
{
	g_autoptr (MdStoredMessage) m = stored_message_new (job, 0, TRUE);
	m->internal = TRUE;
	g_free (m->flag);
	m->flag = g_strdup ("#list answered; no ticket");
	if (!insert_message (job, store, m, error))
		return FALSE;
	if (md_notify_rate_limited (job->desk, store, job->sender_addr, "list"))
		return TRUE;
	MdActor actor = { sender_kind (job, store), job->sender_addr, job->msg->from_name };
	return md_workflow_list (job->desk, store, NULL, &actor, job->msg, error);
}

/* COMMANDS: those the message begins with (opening_commands). */
static gboolean
create_ticket (MdIngestJob *job, MdStore *store, gint64 linked_to, GPtrArray *commands, GError **error)
{
	MdMessage *msg = job->msg;
	MdClassification *cls = &job->cls;
	gint64 now = md_now ();
	g_autoptr (MdTicket) t = g_new0 (MdTicket, 1);

	if (cls->drop_silently) {
		/* Kept in the spool and recorded, attached to no ticket. */
		g_autoptr (MdStoredMessage) m = stored_message_new (job, 0, FALSE);
		g_free (m->flag);
		m->flag = g_strdup ("dropped by rules");
		m->internal = TRUE;
		return insert_message (job, store, m, error);
	}

	if (job->sender_addr && !md_store_person_ensure (store, job->sender_addr, msg->from_name, &t->requester_id, error))
		return FALSE;
	t->subject = g_strdup (msg->subject && *msg->subject ? msg->subject : "(no subject)");
	t->category = cls->category ? cls->category : MD_DEFAULT_CATEGORY;
	t->priority = cls->priority ? cls->priority : MD_DEFAULT_PRIORITY;
	t->status = MD_STATUS_TRIAGE;
	t->organization_id = job->sender_addr ? md_store_org_of (store, job->sender_addr, NULL) : 0;
	t->shared = g_strcmp0 (cls->visibility, "shared") == 0 && t->organization_id;
	if (cls->assignee && !md_store_person_ensure (store, cls->assignee, NULL, &t->assignee_id, error))
		return FALSE;
	t->created_at = t->updated_at = t->status_changed_at = now;
	t->tags = join_tags (cls->tags);
	t->linked_ticket_id = linked_to;
	g_autofree char *linked_key = linked_to ? md_ticket_key (job->desk->conf->ticket_prefix, linked_to) : NULL;
	t->flag = cls->quarantine ? g_strdup ("quarantined by rules") : problems_flag (msg);
	/* The agents answer whom the ticket names: tell them it may be a
	 * forgery, or the answer goes to someone who never wrote. */
	if (msg->from_auth == MD_SENDER_AUTH_FAIL && !cls->quarantine) {
		char *flag = g_strdup_printf ("%s%sunverified sender: DMARC failed, the From may be forged",
		                              t->flag ? t->flag : "", t->flag ? "; " : "");
		g_free (t->flag);
		t->flag = flag;
	}
	t->first_response_due = md_workflow_first_response_due (job->desk, t->priority, t->created_at);
	if (!md_store_ticket_insert (store, t, error))
		return FALSE;

	g_autoptr (MdStoredMessage) m = stored_message_new (job, t->id, FALSE);
	const char *actor = job->sender_addr ? job->sender_addr : "unknown sender";
	if (!insert_message (job, store, m, error) || !add_participants (job, store, t->id, error) ||
	    !md_store_history_add (store, t->id, now, actor, "status", NULL, t->status, error) ||
	    !md_store_history_add (store, t->id, now, "rules", "category", NULL, t->category, error) ||
	    !md_store_history_add (store, t->id, now, "rules", "priority", NULL, t->priority, error))
		return FALSE;
	if (linked_to && !md_store_history_add (store, t->id, now, actor, "linked_ticket", NULL, linked_key, error))
		return FALSE;
	job->result.ticket_id = t->id;
	job->result.new_ticket = TRUE;

	g_autoptr (MdTicket) full = md_store_ticket_get (store, t->id, error);
	if (!full)
		return FALSE;
	/* Opening commands may change the ticket again: the timers are
	 * armed once, for the state it ends in. */
	full->timers_held = TRUE;
	g_autoptr (MdIntake) intake = md_intake_new_ticket (job->desk, store, full, msg, job->intake_match, error);
	if (!intake)
		return FALSE;
	MdPersonRef author = { job->sender_addr, msg->from_name };
	/* Agents read the request without the command lines, as in a reply. */
	g_autofree char *stripped = commands_are_all (commands, msg->body) ? md_commands_strip (msg->body) : NULL;
	const char *request = stripped ? stripped : msg->body;
	/* Who sent it matters only to commands (a person lookup per ticket). */
	MdActor sender = { commands->len ? sender_kind (job, store) : MD_ACTOR_CUSTOMER, job->sender_addr,
	                   msg->from_name };
	/* A quarantined ticket is held for a human: nobody is mailed, and
	 * its commands are left to that human.  The others run before the
	 * acknowledgement, which shows the visibility #share asked for. */
	if (!cls->quarantine &&
	    !(md_workflow_opening_commands (job->desk, store, full, commands, &sender, msg, error) &&
	      md_notify_ack (job->desk, store, full, msg, job->sender, md_intake_ack_vars (intake), NULL, error) &&
	      md_notify_customer_reply (job->desk, store, full, &author, request, msg, error)))
		return FALSE;
	full->timers_held = FALSE;
	return md_schedule_new_ticket (job->desk, store, full, error);
}

static gboolean
agent_comment (MdIngestJob *job, MdStore *store, MdTicket *t, MdStoredMessage *m, GPtrArray *commands,
               GError **error)
{
	/* The agent's name as the desk knows it, not as the mail claims. */
	g_autoptr (MdPerson) p = md_store_person_find (store, job->sender_addr, NULL);
	MdActor actor = { MD_ACTOR_AGENT, job->sender_addr, p && p->name ? p->name : job->msg->from_name };
	return md_workflow_agent_reply (job->desk, store, t, &actor, m->body, m->internal, commands, job->msg, error);
}

static gboolean
customer_comment (MdIngestJob *job, MdStore *store, MdTicket *t, MdStoredMessage *m, GPtrArray *commands,
                  GError **error)
{
	MdActor actor = { MD_ACTOR_CUSTOMER, job->sender_addr, job->msg->from_name };
	return md_workflow_customer_reply (job->desk, store, t, &actor, m->body, commands, job->msg, error);
}

static gboolean
add_comment (MdIngestJob *job, MdStore *store, MdTicket *t, MdThreadAction action, GError **error)
{
	g_autoptr (MdStoredMessage) m = stored_message_new (job, t->id, TRUE);
	/* Commands are the author's own lines: none in a forwarded message,
	 * whoever forwards it (what trimming keeps of it is the other's). */
	g_autoptr (GPtrArray) commands = md_commands_parse (m->body);
	/* none in a forwarded message (a scan of the text: only when needed) */
	if (commands->len && md_trim_starts_with_forward (job->msg->body))
		g_ptr_array_set_size (commands, 0);
	gboolean internal_cmd = FALSE;

	/* An out-of-office or other machine's answer, the customer's or an
	 * agent's, is kept for a human: it is no reply, moves no status,
	 * meets no SLA, is relayed to no one. */
	const char *automatic = action == MD_THREAD_COMMENT || action == MD_THREAD_AGENT_COMMENT
	                        ? md_notify_automatic_reason (job->msg) : NULL;
	g_autofree char *automatic_flag = automatic ? g_strdup_printf ("automatic: %s", automatic) : NULL;

	for (guint i = 0; i < commands->len; i++)
		internal_cmd |= g_strcmp0 (((MdCommand *) commands->pdata[i])->name, "internal") == 0;
	if (action == MD_THREAD_UNVERIFIED_SENDER || action == MD_THREAD_UNVERIFIED_AGENT || automatic) {
		const char *why = automatic ? automatic_flag
		                  : action == MD_THREAD_UNVERIFIED_AGENT ? "unverified agent"
		                  : job->unverified_why ? job->unverified_why : "unverified sender";
		m->internal = TRUE;
		if (m->flag) {
			char *both = g_strdup_printf ("%s; %s", why, m->flag);
			g_free (m->flag);
			m->flag = both;
		} else {
			m->flag = g_strdup (why);
		}
	} else if (action == MD_THREAD_AGENT_COMMENT && internal_cmd) {
		m->internal = TRUE;
	}
	if (!insert_message (job, store, m, error))
		return FALSE;
	job->result.ticket_id = t->id;

	if (action == MD_THREAD_UNVERIFIED_SENDER || automatic)
		return TRUE;  /* kept for a human; changes nothing, tells no one */
	if (action == MD_THREAD_UNVERIFIED_AGENT) {
		MdPersonRef agent = { job->sender_addr, job->msg->from_name };
		if (commands->len && !md_store_history_add (store, t->id, md_now (), job->sender_addr, "command refused",
		                                             "(unverified agent)", "mail did not reach the token address", error))
			return FALSE;
		return md_notify_unverified_agent (job->desk, store, t, &agent, job->msg, error);
	}
	t->updated_at = md_now ();
	if (!md_store_ticket_update (store, t, error))
		return FALSE;
	if (action == MD_THREAD_AGENT_COMMENT) {
		/* Whom a verified agent copies becomes a participant. */
		if (!m->internal && !add_participants (job, store, t->id, error))
			return FALSE;
		return agent_comment (job, store, t, m, commands, error);
	}
	return customer_comment (job, store, t, m, commands, error);
}

/* A delivery report: an internal note on the ticket of the bounced
 * message, never a new ticket (DESIGN 8). */
static gboolean
store_bounce (MdIngestJob *job, MdStore *store, GError **error)
{
	gint64 ticket_id = job->token_ticket_id;
	if (!ticket_id && job->msg->report_original_message_id)
		ticket_id = md_store_ticket_by_message_id (store, job->msg->report_original_message_id, NULL);
	if (ticket_id) {
		g_autoptr (MdTicket) t = md_store_ticket_get (store, ticket_id, NULL);
		if (!t)
			ticket_id = 0;
	}
	/* Stop automatic mail to an address that bounces for good.  Anyone
	 * can write a report, so only one that came back to the ticket's own
	 * address (the desk's mail goes out from it, VERP) counts, and only
	 * for addresses the desk mailed on that ticket. */
	GPtrArray *failed = job->msg->report_failed_recipients;
	for (guint i = 0; ticket_id && ticket_id == job->token_ticket_id && failed && i < failed->len; i++) {
		GError *local = NULL;
		gboolean ours = md_outbox_mailed (store, ticket_id, failed->pdata[i], &local);
		if (local) {
			g_propagate_error (error, local);
			return FALSE;
		}
		if (ours && !md_store_set_bouncing (store, failed->pdata[i], TRUE, error))
			return FALSE;
	}
	g_autoptr (MdStoredMessage) m = stored_message_new (job, ticket_id, FALSE);
	g_free (m->flag);
	m->flag = g_strdup ("bounce");
	m->internal = TRUE;
	job->result.ticket_id = ticket_id;
	return insert_message (job, store, m, error);
}

/* The ticket the message threads to (thread.c), 0 for none, in
 * *TICKET_ID_R; FALSE with ERROR set when the store failed. */
static gboolean
find_thread (MdIngestJob *job, MdStore *store, gint64 *ticket_id_r, MdFoundBy *found_r, GError **error)
{
	MdMessage *msg = job->msg;
	GError *local = NULL;
	*ticket_id_r = md_thread_find (store, job->desk->conf->ticket_prefix, job->token_ticket_id, msg->in_reply_to,
	                               (const char *const *) msg->references->pdata, msg->references->len,
	                               msg->subject, found_r, &local);
	if (local) {
		g_propagate_error (error, local);
		return FALSE;
	}
	return TRUE;
}

/* The desk's own mail come back (DESIGN 8, no loops): kept as an
 * internal note on the ticket it names, if any, and acted on by no one. */
static gboolean
store_own_mail (MdIngestJob *job, MdStore *store, const char *why, GError **error)
{
	MdMessage *msg = job->msg;
	MdFoundBy found = MD_FOUND_NONE;
	gint64 ticket_id;
	if (!find_thread (job, store, &ticket_id, &found, error))
		return FALSE;
	g_info ("ingest: %s: %s; kept as a note", msg->message_id ? msg->message_id : "message", why);
	g_autoptr (MdStoredMessage) m = stored_message_new (job, ticket_id, FALSE);
	g_free (m->flag);
	m->flag = g_strdup_printf ("loop: %s", why);
	m->internal = TRUE;
	job->result.ticket_id = ticket_id;
	return insert_message (job, store, m, error);
}

/* Without the token, a reply to a ticket is only its From's word that
 * the customer sent it.  Where the desk's MTA checked that word
 * (authserv_id), a failed DMARC check, or with require_sender_auth no
 * passing one, keeps the reply for a human.  Sets the note's flag. */
static gboolean
from_believed (MdIngestJob *job)
{
	const MdConf *conf = job->desk->conf;
	MdSenderAuth auth = job->msg->from_auth;
	if (!conf->authserv_id || !conf->authserv_id[0] || auth == MD_SENDER_AUTH_PASS ||
	    (auth == MD_SENDER_AUTH_NONE && !conf->require_sender_auth))
		return TRUE;
	job->unverified_why = auth == MD_SENDER_AUTH_FAIL ? "unverified sender: DMARC failed"
	                                                  : "unverified sender: From not authenticated";
	g_info ("ingest: %s: %s; kept as a note", job->msg->message_id ? job->msg->message_id : "message",
	        job->unverified_why);
	return FALSE;
}

/* DESIGN 1: a reply after the reopen window opens a new ticket that
 * links the old one. */
static gboolean
reopen_window_passed (MdDesk *desk, const MdTicket *t)
{
	if (g_strcmp0 (t->status, MD_STATUS_RESOLVED) != 0 || !t->resolved_at)
		return FALSE;
	gint64 until = md_calendar_add (desk->calendar, t->resolved_at, &desk->reopen_window);
	return until > 0 && md_now () > until;
}

static gboolean
store_new_message (MdIngestJob *job, MdStore *store, GError **error)
{
	MdMessage *msg = job->msg;
	MdFoundBy found = MD_FOUND_NONE;

	if (msg->is_report)
		return store_bounce (job, store, error);
	const char *own = own_mail_reason (job, store);
	if (own)
		return store_own_mail (job, store, own, error);
	/* Mail from an address proves it receives mail again. */
	if (job->sender_addr && !md_store_set_bouncing (store, job->sender_addr, FALSE, error))
		return FALSE;

	gint64 ticket_id;
	if (!find_thread (job, store, &ticket_id, &found, error))
		return FALSE;
	g_autoptr (MdTicket) t = ticket_id ? md_store_ticket_get (store, ticket_id, error) : NULL;
	if (ticket_id && !t)
		return FALSE;
	MdSenderRole role = t ? md_thread_role (store, t, job->sender_addr,
	                                        (const char *const *) job->desk->conf->agents)
	                      : MD_ROLE_STRANGER;
	MdThreadAction action = md_thread_decide (found, role);
	/* With agent tokens of their own, the customer's token proves no agent. */
	if (action == MD_THREAD_AGENT_COMMENT && job->desk->addressing.agent_tokens && !job->agent_token)
		action = MD_THREAD_UNVERIFIED_AGENT;
	if (action == MD_THREAD_COMMENT && found != MD_FOUND_TOKEN && !from_believed (job))
		action = MD_THREAD_UNVERIFIED_SENDER;
	job->result.action = action;

	/* A reply after the reopen window opens a ticket linking the old one. */
	gint64 linked_to = action == MD_THREAD_COMMENT && reopen_window_passed (job->desk, t) ? t->id : 0;
	if (action == MD_THREAD_NEW_TICKET || linked_to) {
		g_autoptr (GPtrArray) commands = opening_commands (job);
		return only_list (job, commands) ? answer_list (job, store, error)
		                                 : create_ticket (job, store, linked_to, commands, error);
	}
	return add_comment (job, store, t, action, error);
}

/* Whether the message was stored before, under KEY (its Message-ID, or
 * its hash) or, for a copy that reached a ticket's address, under
 * TICKET_KEY: a copy is new only when it reached a ticket the earlier
 * one did not go to (the same mail to two tickets, or split over two
 * deliveries by an MTA that sends one recipient at a time).  0 when new. */
static gint64
seen_before (MdIngestJob *job, MdStore *store, const char *key, const char *ticket_key, GError **error)
{
	GError *local = NULL;
	gint64 seen = md_store_seen (store, key, &local);
	if (local || !seen || !ticket_key) {
		if (local)
			g_propagate_error (error, local);
		return seen;
	}
	gint64 again = md_store_seen (store, ticket_key, &local);
	gint64 first_ticket = local || again ? 0 : md_store_message_ticket (store, seen, &local);
	if (local) {
		g_propagate_error (error, local);
		return 0;
	}
	return again ? again : first_ticket == job->token_ticket_id ? seen : 0;
}

gboolean
md_ingest_store (MdIngestJob *job, MdStore *store, GError **error)
{
	MdMessage *msg = job->msg;
	g_autofree char *key = msg->message_id ? g_strdup_printf ("<%s>", msg->message_id)
	                                       : g_strdup_printf ("sha256:%s", job->raw_sha256);
	g_autofree char *ticket_key = job->token_ticket_id
	                              ? g_strdup_printf ("%s ticket %" G_GINT64_FORMAT, key, job->token_ticket_id)
	                              : NULL;
	GError *local = NULL;

	memset (&job->result, 0, sizeof job->result);
	if (!md_store_savepoint (store, error))
		return FALSE;
	gint64 seen = seen_before (job, store, key, ticket_key, &local);
	if (local)
		goto fail;
	if (seen) {
		/* MTAs redeliver after timeouts: accept and do nothing. */
		job->result.duplicate = TRUE;
		job->result.message_row_id = seen;
	} else if (!store_new_message (job, store, &local) ||
	           !md_store_mark_seen (store, key, job->result.message_row_id, &local) ||
	           (ticket_key && !md_store_mark_seen (store, ticket_key, job->result.message_row_id, &local))) {
		goto fail;
	}
	if (!md_store_release (store, &local))
		goto fail;
	if (job->result.duplicate) {
		/* Report the ticket the first copy went to. */
		job->result.ticket_id = 0;
	}
	if (job->result.ticket_id)
		job->result.key = md_ticket_key (job->desk->conf->ticket_prefix, job->result.ticket_id);
	return TRUE;
fail:
	md_store_rollback_to (store);
	g_propagate_error (error, local);
	return FALSE;
}

gboolean
md_ingest_one (MdDesk *desk, MdStore *store, const char *raw_sha256, gint64 raw_size, const MdEnvelope *env,
               MdIngestResult *result_r, GError **error)
{
	MdEnvelope none = { NULL, NULL };
	return md_ingest_each (desk, store, raw_sha256, raw_size, env ? env : &none, 1, result_r, error);
}

gboolean
md_ingest_each (MdDesk *desk, MdStore *store, const char *raw_sha256, gint64 raw_size, const MdEnvelope *envs,
                guint n, MdIngestResult *results_r, GError **error)
{
	g_autoptr (GPtrArray) jobs = g_ptr_array_new_with_free_func ((GDestroyNotify) md_ingest_job_free);

	for (guint i = 0; i < n; i++) {
		MdIngestJob *job = md_ingest_job_new (desk, raw_sha256, raw_size, &envs[i]);
		g_ptr_array_add (jobs, job);
		/* One message: parsed once, whatever the tickets it goes to. */
		if (i > 0 && g_strcmp0 (envs[i].sender, envs[0].sender) == 0)
			prepare_like (job, jobs->pdata[0]);
		else if (!md_ingest_prepare (job, error))
			return FALSE;
	}
	/* One transaction: the message is filed to every ticket or to none,
	 * so a retry after a failure neither misses one nor doubles one. */
	if (!md_store_begin (store, error))
		return FALSE;
	for (guint i = 0; i < n; i++) {
		if (!md_ingest_store (jobs->pdata[i], store, error)) {
			md_store_rollback (store);
			return FALSE;
		}
	}
	if (!md_store_commit (store, error))
		return FALSE;
	for (guint i = 0; results_r && i < n; i++) {
		const MdIngestJob *job = jobs->pdata[i];
		results_r[i] = job->result;
		results_r[i].key = g_strdup (job->result.key);
	}
	return TRUE;
}
