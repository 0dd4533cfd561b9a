/* lmtp-recorder.h - a small application for testing the LMTP engine: it
 * judges recipients by their local part, records every delivery and
 * answers per recipient, from a thread of its own (the cross-thread path
 * of md_lmtp_transaction_done) or inline from deliver().
 *
 * Recipients must be @desk.test (else BAD_DOMAIN).  At RCPT: nouser* ->
 * NO_USER, badtoken* -> BAD_TOKEN, rcptbusy* -> DB_BUSY.  After the data:
 * temp* -> DB_BUSY, full* -> DISK_FULL, denied* -> DENIED, anything else
 * is delivered with the info "SUP-<n>".
 */
#ifndef MD_LMTP_RECORDER_H
#define MD_LMTP_RECORDER_H

#include "lmtp.h"

typedef struct {
	char *sender;
	char **rcpts;
	char *sha256;
	gint64 size;
} MdTestDelivery;

typedef struct _MdTestRecorder MdTestRecorder;

/* delay_ms: how long the answering thread waits; -1 answers inline. */
MdTestRecorder *md_test_recorder_new (int delay_ms);
void md_test_recorder_free (MdTestRecorder *r);
const MdLmtpCallbacks *md_test_recorder_callbacks (void);
/* Called on the main loop for each delivery, before it is answered. */
void md_test_recorder_set_hook (MdTestRecorder *r, void (*hook) (const MdTestDelivery *d, gpointer data),
                                gpointer data);
guint md_test_recorder_count (MdTestRecorder *r);
/* Owned by the recorder. */
const MdTestDelivery *md_test_recorder_get (MdTestRecorder *r, guint i);
/* How many answers came from a thread other than the one calling deliver(). */
guint md_test_recorder_cross_thread_answers (MdTestRecorder *r);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdTestRecorder, md_test_recorder_free)

#endif
