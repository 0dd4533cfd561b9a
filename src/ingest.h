/* ingest.h - the one path from received bytes to a stored ticket
 * (DESIGN 5), shared by LMTP, IMAP and `maildesk deliver`.
 *
 * An entry point spools the raw message itself (it owns the byte
 * stream), then:
 *   job = md_ingest_job_new (desk, sha, size, envelope);
 *   md_ingest_prepare (job)        parse and classify; no database; any thread
 *   md_ingest_store (job, store)   thread, authorize, store; inside the
 *                                  caller's transaction, under a savepoint
 * and says yes to its peer only after the transaction commits.
 * md_ingest_one() does all of it for a single message. */
#ifndef MD_INGEST_H
#define MD_INGEST_H

#include <glib.h>

#include "desk.h"
#include "message.h"
#include "rules.h"
#include "store.h"
#include "thread.h"

typedef struct {
	const char *sender;               /* envelope sender, may be NULL */
	const char *const *recipients;    /* envelope recipients, may be NULL */
} MdEnvelope;

typedef struct {
	gint64 ticket_id;        /* 0 when the message joined no ticket (dropped, orphan bounce) */
	gint64 message_row_id;
	gboolean duplicate;      /* seen before: nothing was done */
	gboolean new_ticket;
	MdThreadAction action;
	char *key;               /* "SUP-12" or NULL; owned by the job */
} MdIngestResult;

typedef struct _MdIngestJob MdIngestJob;

/* Checks one recipient as LMTP RCPT and `deliver --recipient` do:
 * MD_ERROR_BAD_DOMAIN, MD_ERROR_NO_USER or MD_ERROR_BAD_TOKEN; and, when
 * ACCEPTED (NULL-terminated, may be NULL) names the recipients already
 * taken for the same message, MD_ERROR_SPLIT for the address of a ticket
 * other than one of theirs: a message is filed to one ticket. */
gboolean md_ingest_check_recipient (MdDesk *desk, const char *address, const char *const *accepted,
                                    GError **error);

/* RECIPIENTS (NULL-terminated, may be NULL), each one that
 * md_ingest_check_recipient accepts, in the envelopes a message is filed
 * with, one ingest each: the first holds every address but those of
 * other tickets, each further ticket's addresses a group of their own,
 * as LMTP splits them over transactions (MD_ERROR_SPLIT).  A GPtrArray
 * of NULL-terminated GPtrArrays of the borrowed strings, none when
 * RECIPIENTS is empty.  Free with g_ptr_array_unref. */
GPtrArray *md_ingest_group_recipients (MdDesk *desk, const char *const *recipients);

/* The rules' view of a parsed message, the one ingest classifies and
 * `maildesk classify` prints: FROM (see md_ingest_sender_address), To
 * with the envelope RECIPIENTS (NULL-terminated, may be NULL), Cc, the
 * headers and the attachments' names.  It borrows MSG's and RECIPIENTS'
 * strings; md_rule_view_clear frees what it holds itself. */
typedef struct {
	MdRuleInput input;
	GPtrArray *to, *cc, *names;
} MdRuleView;
void md_rule_view_init (MdRuleView *view, MdMessage *msg, const char *from, const char *const *recipients);
void md_rule_view_clear (MdRuleView *view);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MdRuleView, md_rule_view_clear)

/* The sender's address as ingest reads it, lowercased: From, else (an
 * absent, not an ambiguous, From) ENVELOPE_SENDER; NULL when none.
 * Free with g_free. */
char *md_ingest_sender_address (const MdMessage *msg, const char *envelope_sender);

MdIngestJob *md_ingest_job_new (MdDesk *desk, const char *raw_sha256, gint64 raw_size, const MdEnvelope *env);
void md_ingest_job_free (MdIngestJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdIngestJob, md_ingest_job_free)

gboolean md_ingest_prepare (MdIngestJob *job, GError **error);
gboolean md_ingest_store (MdIngestJob *job, MdStore *store, GError **error);
const MdIngestResult *md_ingest_result (const MdIngestJob *job);

/* Spools nothing: RAW_SHA256 must already be in the spool.  ENV may be
 * NULL.  RESULT_R (may be NULL): its key is the caller's to g_free. */
gboolean md_ingest_one (MdDesk *desk, MdStore *store, const char *raw_sha256, gint64 raw_size,
                        const MdEnvelope *env, MdIngestResult *result_r, GError **error);

/* md_ingest_one for the same message in N envelopes, one per ticket it
 * was addressed to (see md_ingest_group_recipients), all in one
 * transaction: it is filed everywhere or nowhere, and parsed once when
 * the envelopes share a sender.  RESULTS_R (may be
 * NULL) receives N results; their keys are the caller's to g_free. */
gboolean md_ingest_each (MdDesk *desk, MdStore *store, const char *raw_sha256, gint64 raw_size,
                         const MdEnvelope *envs, guint n, MdIngestResult *results_r, GError **error);

#endif
