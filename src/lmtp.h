/* lmtp.h - the LMTP server engine (RFC 2033 over RFC 5321 syntax).
 *
 * The engine owns the listeners, the sessions, the protocol state, the
 * spooling of message bodies and every reply code.  The application
 * (ingest) plugs in through MdLmtpCallbacks and never sees a socket; the
 * engine never sees a ticket.  Everything runs on the GMainContext that
 * was the thread default when md_lmtp_server_new was called, except
 * md_lmtp_transaction_done, which may be called from any thread.
 */
#ifndef MD_LMTP_H
#define MD_LMTP_H

#include <glib.h>

#include "spool.h"

typedef struct _MdLmtpServer MdLmtpServer;
/* One MAIL..end-of-data transaction handed to the application. */
typedef struct _MdLmtpTransaction MdLmtpTransaction;

typedef struct {
	const char *hostname;     /* greeting and replies; NULL = g_get_host_name () */
	gint64 max_message_size;  /* SIZE capability, 552 5.3.4 beyond; 0 = unbounded */
	guint max_recipients;     /* per transaction, 452 4.5.3 beyond; 0 = 100 */
	guint max_line_length;    /* incl. CRLF, commands and DATA lines; 0 = 1000 */
	guint idle_timeout_ms;    /* 421 4.4.2 and close; 0 = 300000 */
	guint max_connections;    /* 421 4.3.2 at the greeting beyond; 0 = 256 */
	guint unix_mode;          /* permissions of Unix sockets; 0 = 0660 */
	const char *unix_group;   /* group of Unix sockets; NULL = the process's own */
	gboolean trace;           /* every line in and out at g_debug */
} MdLmtpConfig;

typedef struct {
	/* RCPT TO: return TRUE to accept, or FALSE with an MD_ERROR:
	 * NO_USER -> 550 5.1.1, BAD_DOMAIN -> 550 5.1.2, BAD_TOKEN -> 550 5.7.1,
	 * temporary codes -> 451 4.3.0 (DISK_FULL 452 4.3.1). */
	/* ACCEPTED: the transaction's recipients so far, NULL-terminated. */
	gboolean (*check_recipient) (gpointer app, const char *address, const char *const *accepted,
	                             GError **error);
	/* After the final dot (or BDAT LAST): the raw message is durable in the
	 * spool under raw_sha256.  Called on the worker thread that made it
	 * durable, never on the main loop.  The application must call
	 * md_lmtp_transaction_done exactly once, now or later, from any thread.
	 * The strings stay valid until then.  sender is "" for <>. */
	void (*deliver) (gpointer app, MdLmtpTransaction *tx, const char *sender,
	                 const char *const *recipients, const char *raw_sha256, gint64 size);
} MdLmtpCallbacks;

/* Finishes a transaction: errors is NULL (all delivered) or a g_new array
 * of one GError* per recipient in RCPT order, NULL entries meaning
 * delivered; the engine takes the array and the errors.  info is NULL or
 * one string per recipient (NULL entries allowed) appended to its 250
 * reply and the log, e.g. "SUP-12"; it is copied.  Thread-safe: the
 * replies are sent from the server's main context. tx is gone after. */
void md_lmtp_transaction_done (MdLmtpTransaction *tx, GError **errors, const char *const *info);
/* The session id (16 hex digits) that the engine logs; owned by tx. */
const char *md_lmtp_transaction_id (const MdLmtpTransaction *tx);

/* cfg is copied; spool and cb->app must outlive the server.
 * Free with md_lmtp_server_free. */
MdLmtpServer *md_lmtp_server_new (const MdLmtpConfig *cfg, MdSpool *spool, const MdLmtpCallbacks *cb,
                                  gpointer app, GError **error);
/* Adds listeners: "host:port", "[v6]:port", "unix:/path", comma-separated.
 * Port 0 picks a free port; "*:port" is every address.  Unix sockets get
 * cfg->unix_mode (created 0600 first, under a umask set for the bind).  A
 * stale Unix socket file is replaced; a live one or any other file is an
 * error (MD_ERROR_CONFIG).  Every address is bound before any is served:
 * on error none of this spec is left open. */
gboolean md_lmtp_server_listen (MdLmtpServer *s, const char *listen_spec, GError **error);
/* Whether one listen entry is well formed (host:port, [v6]:port,
 * unix:/path), without resolving or binding it; MD_ERROR_CONFIG if not. */
gboolean md_lmtp_listen_check (const char *entry, GError **error);
/* The bound addresses in listen syntax ("127.0.0.1:41873"), NULL-terminated;
 * owned by the server, valid until the next listen or stop. */
const char *const *md_lmtp_server_addresses (MdLmtpServer *s);
/* Closes the listeners (and removes Unix socket files); sessions go on. */
void md_lmtp_server_stop_accepting (MdLmtpServer *s);
/* Transactions past their end of data whose replies are not yet sent. */
guint md_lmtp_server_active_transactions (MdLmtpServer *s);
/* For a graceful stop: stops accepting, and sessions answer a new MAIL
 * with 421 4.3.2 and close, so that what is in flight can finish and
 * nothing new starts. */
void md_lmtp_server_drain (MdLmtpServer *s);
/* Transactions in flight: begun (MAIL accepted) and not yet answered,
 * whether their body is still arriving or they wait for the
 * application.  What a drain waits for. */
guint md_lmtp_server_open_transactions (MdLmtpServer *s);
guint md_lmtp_server_connections (MdLmtpServer *s);
/* Stops accepting, tells every client 421 4.3.2 and closes it.  Replies of
 * transactions still in the application are dropped (the MTA retries);
 * the application may still call md_lmtp_transaction_done for them.  A
 * spool commit still running uses spool: wait for active_transactions()
 * to reach 0 first when the spool is to be freed too. */
void md_lmtp_server_free (MdLmtpServer *s);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdLmtpServer, md_lmtp_server_free)

#endif
