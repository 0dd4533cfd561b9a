/* lmtp-session.h - between the LMTP protocol engine (lmtp-session.c) and
 * its transport (lmtp.c).  A session knows no socket: bytes go in, reply
 * bytes come out, so tests and the fuzzer can drive it from a buffer.
 * Not part of the application's interface (that is lmtp.h).
 */
#ifndef MD_LMTP_SESSION_H
#define MD_LMTP_SESSION_H

#include <gio/gio.h>

#include "lmtp.h"

struct _MdLmtpServer {
	gint ref;                    /* atomic; transactions in flight hold one */
	MdLmtpConfig cfg;            /* defaults filled in; hostname owned */
	MdSpool *spool;
	MdLmtpCallbacks cb;
	gpointer app;
	GMainContext *context;       /* where sessions and replies live */
	GPtrArray *listeners;         /* Listener*, owned by lmtp.c */
	GSource *accept_resume;      /* set while accepting rests (EMFILE) */
	GPtrArray *addresses;        /* char*, NULL-terminated, listen syntax */
	GPtrArray *unix_paths;       /* char*, socket files we created */
	GList *connections;          /* MdLmtpConn*, owned by lmtp.c */
	guint n_connections;
	guint active_transactions;
	gboolean draining;           /* md_lmtp_server_drain: no new transaction */
};

MdLmtpServer *md_lmtp_server_ref (MdLmtpServer *s);
void md_lmtp_server_unref (MdLmtpServer *s);

typedef struct _MdLmtpSession MdLmtpSession;
/* Called when a session has new output or wants input again outside of
 * md_lmtp_session_input (a delivery finished). */
typedef void (*MdLmtpSessionWake) (gpointer owner);

/* Queues the greeting.  peer is for the log.  Free with md_lmtp_session_free. */
MdLmtpSession *md_lmtp_session_new (MdLmtpServer *server, const char *peer, MdLmtpSessionWake wake,
                                    gpointer owner);
const char *md_lmtp_session_id (const MdLmtpSession *s);
/* How many bytes the session takes now; 0 while a delivery is pending,
 * the output is backed up, or the session is closing. */
gsize md_lmtp_session_input_room (const MdLmtpSession *s);
/* Takes the bytes (keep len within input_room: that bounds the buffer)
 * and processes what it can; len 0 just resumes processing, e.g. after
 * the output was sent. */
void md_lmtp_session_input (MdLmtpSession *s, const void *buf, gsize len);
/* Replies not yet sent; the transport sends them and truncates the string. */
GString *md_lmtp_session_output (MdLmtpSession *s);
/* QUIT, timeout or a fatal error: close once the output is sent. */
gboolean md_lmtp_session_closing (const MdLmtpSession *s);
/* A delivery is pending: the server, not the client, is the slow one. */
gboolean md_lmtp_session_waiting (const MdLmtpSession *s);
/* Idle timeout: queues 421 4.4.2 and starts closing. */
void md_lmtp_session_timeout (MdLmtpSession *s);
/* Queues a 421 4.3.2 shutdown notice and starts closing. */
void md_lmtp_session_shutdown (MdLmtpSession *s);
/* Whether a transaction is open and not yet at its end of data (MAIL
 * accepted, recipients, the body on its way). */
gboolean md_lmtp_session_in_transaction (const MdLmtpSession *s);
/* Aborts a body being received (nothing half-stored stays), lets a
 * pending delivery finish without replies, logs the disconnect with
 * reason, frees and sets *s to NULL. */
void md_lmtp_session_free (MdLmtpSession **s, const char *reason);

#endif
