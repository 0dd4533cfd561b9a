/* lmtp-session.c - one LMTP session as an explicit state machine: the
 * command parser, the {verb, check, proceed} table, the DATA and BDAT
 * readers that stream the body into the spool, and the per-recipient
 * replies (RFC 2033 4.2).  It knows no socket; lmtp.c moves its bytes.
 *
 * Standards: RFC 2033 (LMTP), RFC 5321 (syntax, limits), RFC 3463 and
 * RFC 2034 (enhanced status codes: on every 2xx/4xx/5xx reply; the
 * greeting, the LHLO reply and 354 carry none, as RFC 2034 3 says),
 * RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 2920 (PIPELINING), RFC 3030
 * (CHUNKING; in LMTP, BDAT LAST gets one reply per recipient like DATA).
 *
 * Peer quirks tolerated, each where it is handled:
 *  - a bare LF ends a line like CRLF (commands and DATA; the body is
 *    stored as received, CRLF or not), but only <CR><LF>.<CR><LF> ends
 *    the data (RFC 5321 4.1.1.4), so no message can carry a second
 *    transaction past us ("SMTP smuggling");
 *  - "MAIL FROM: <a>" / "RCPT TO: <a>" with a space after the colon;
 *  - trailing spaces after a command.
 */
#include "config.h"

#include <string.h>

#include "md.h"
#include "lmtp-session.h"

#define OUTPUT_HIGH_WATER (64 * 1024)  /* stop reading commands beyond */
#define BODY_FLUSH_SIZE   (64 * 1024)  /* body bytes batched per write(2) */
#define MAX_PATH_LENGTH   256          /* RFC 5321 4.5.3.1.3 */
#define MAX_LOCAL_LENGTH  64           /* RFC 5321 4.5.3.1.1 */

typedef enum {
	STATE_GREETED,    /* greeting sent; LHLO expected */
	STATE_READY,      /* LHLO done; no transaction */
	STATE_MAIL,       /* MAIL accepted; no recipient yet */
	STATE_RCPT,       /* at least one recipient accepted */
	STATE_DATA,       /* reading DATA lines up to the dot */
	STATE_BDAT,       /* reading a BDAT chunk */
	STATE_DELIVERING, /* end of data: spool commit, then the application */
	STATE_CLOSING,    /* QUIT, timeout or fatal error: only output is left */
} MdLmtpState;

typedef enum {
	BODY_NONE,
	BODY_DATA,
	BODY_BDAT,
} MdLmtpBody;

struct _MdLmtpTransaction {
	MdLmtpServer *server;     /* a reference */
	MdLmtpSession *session;   /* NULL once the client is gone */
	char *session_id;
	char *sender;             /* "" for <> */
	GPtrArray *rcpts;         /* char*, NULL-terminated */
	MdLmtpBody body;
	MdSpoolWriter *writer;    /* once the body outgrows pending */
	GString *pending;         /* body bytes not yet written */
	gint64 stored;            /* body bytes kept (pending or written) */
	gboolean mid_line;        /* DATA: inside the tail of an overlong line */
	gboolean after_bare_lf;   /* DATA: the last line ended in LF alone */
	gboolean line_too_long;   /* DATA: the body failed with 500 5.5.2 */
	GError *error;            /* the first spool failure while receiving */
	gint64 size;
	char *sha256;
	GError **results;         /* from the application, one per recipient */
	char **info;
};

struct _MdLmtpSession {
	MdLmtpServer *server;
	char id[17];
	char *peer;
	MdLmtpState state;
	MdLmtpSessionWake wake;
	gpointer owner;
	GByteArray *in;           /* received, not yet processed from in_pos */
	gsize in_pos;
	gsize in_max;
	GString *out;
	gboolean skipping_line;   /* discarding an overlong command line */
	char *lhlo_name;
	MdLmtpTransaction *tx;
	struct {                  /* the command at hand, parsed by its check */
		char *path;
		gint64 size;
		gboolean last;
	} cmd;
	struct {                  /* the BDAT chunk being read */
		guint64 left;
		gboolean last;
		const char *refusal;  /* reply once discarded, or NULL */
		MdLmtpState resume;   /* state after a refused chunk */
	} chunk;
};

typedef struct {
	guint code;
	const char *enhanced;
	const char *text;
} MdLmtpReply;

static void session_process (MdLmtpSession *s);

/* ---- states ---- */

static const char *
state_name (MdLmtpState state)
{
	switch (state) {
	case STATE_GREETED: return "greeted";
	case STATE_READY: return "ready";
	case STATE_MAIL: return "mail";
	case STATE_RCPT: return "rcpt";
	case STATE_DATA: return "data";
	case STATE_BDAT: return "bdat";
	case STATE_DELIVERING: return "delivering";
	case STATE_CLOSING: return "closing";
	}
	g_assert_not_reached ();
}

static void session_abandon (MdLmtpSession *s, const char *text);

static void
enter_state (MdLmtpSession *s, MdLmtpState state)
{
	if (s->state == state)
		return;
	g_debug ("%s lmtp state %s -> %s", s->id, state_name (s->state), state_name (state));
	s->state = state;
}

/* ---- replies ---- */

static void G_GNUC_PRINTF (2, 3)
reply (MdLmtpSession *s, const char *fmt, ...)
{
	gsize start = s->out->len;
	va_list ap;

	va_start (ap, fmt);
	g_string_append_vprintf (s->out, fmt, ap);
	va_end (ap);
	if (s->server->cfg.trace)
		g_debug ("%s lmtp > %s", s->id, s->out->str + start);
	g_string_append (s->out, "\r\n");
}

/* The one place that turns an error into a reply, as Dovecot's
 * lmtp-local.c does: RCPT checks, spool failures and the application's
 * per-recipient results all pass here.  Unknown trouble is temporary. */
static MdLmtpReply
reply_for_error (const GError *error)
{
	if (error->domain == MD_ERROR) {
		switch ((MdErrorCode) error->code) {
		case MD_ERROR_NO_USER:
		case MD_ERROR_NOT_FOUND:
			return (MdLmtpReply) { 550, "5.1.1", "User unknown" };
		case MD_ERROR_BAD_DOMAIN:
			return (MdLmtpReply) { 550, "5.1.2", "Domain not served here" };
		case MD_ERROR_BAD_TOKEN:
			return (MdLmtpReply) { 550, "5.7.1", "Reply token not valid" };
		case MD_ERROR_DENIED:
			return (MdLmtpReply) { 550, "5.7.1", "Delivery not authorized" };
		case MD_ERROR_TOO_BIG:
			return (MdLmtpReply) { 552, "5.3.4", "Message too big" };
		case MD_ERROR_EMPTY:
		case MD_ERROR_INVALID:
			return (MdLmtpReply) { 554, "5.6.0", "Message content rejected" };
		case MD_ERROR_DISK_FULL:
			return (MdLmtpReply) { 452, "4.3.1", "Insufficient system storage" };
		case MD_ERROR_SPLIT:
			/* RFC 5321 4.5.3.1.10: the client sends it again, in a
			 * transaction of its own. */
			return (MdLmtpReply) { 452, "4.5.3", "One ticket per message: send this recipient separately" };
		case MD_ERROR_INTERNAL:
		case MD_ERROR_DB_BUSY:
		case MD_ERROR_IO:
		case MD_ERROR_CONFIG:
			break;
		}
	}
	g_warn_if_fail (md_error_is_temporary (error));
	return (MdLmtpReply) { 451, "4.3.0", "Temporary failure, try again later" };
}

static const MdLmtpReply line_too_long_reply = { 500, "5.5.2", "Line too long" };

/* ---- transactions ---- */

static MdLmtpTransaction *
transaction_new (MdLmtpSession *s, const char *sender)
{
	MdLmtpTransaction *tx = g_new0 (MdLmtpTransaction, 1);
	tx->server = md_lmtp_server_ref (s->server);
	tx->session = s;
	tx->session_id = g_strdup (s->id);
	tx->sender = g_strdup (sender);
	tx->rcpts = g_ptr_array_new_with_free_func (g_free);
	g_ptr_array_add (tx->rcpts, NULL);
	return tx;
}

static guint
transaction_n_rcpts (const MdLmtpTransaction *tx)
{
	return tx->rcpts->len - 1;
}

static const char *const *
transaction_rcpts (const MdLmtpTransaction *tx)
{
	return (const char *const *) tx->rcpts->pdata;
}

static void
transaction_free (MdLmtpTransaction **txp)
{
	MdLmtpTransaction *tx = *txp;
	if (!tx)
		return;
	*txp = NULL;
	md_spool_writer_abort (tx->writer);
	if (tx->pending)
		g_string_free (tx->pending, TRUE);
	g_clear_error (&tx->error);
	for (guint i = 0; tx->results && i < transaction_n_rcpts (tx); i++)
		g_clear_error (&tx->results[i]);
	g_free (tx->results);
	for (guint i = 0; tx->info && i < transaction_n_rcpts (tx); i++)
		g_free (tx->info[i]);  /* NULL entries inside: not a strv */
	g_free (tx->info);
	g_ptr_array_unref (tx->rcpts);
	g_free (tx->sender);
	g_free (tx->sha256);
	g_free (tx->session_id);
	md_lmtp_server_unref (tx->server);
	g_free (tx);
}

/* Drops the transaction (RSET, LHLO, a failed body) back to READY. */
static void
session_reset (MdLmtpSession *s)
{
	transaction_free (&s->tx);
	if (s->state != STATE_GREETED && s->state != STATE_CLOSING)
		enter_state (s, STATE_READY);
}

/* ---- receiving the body ---- */

static void
body_fail (MdLmtpTransaction *tx, GError *error)
{
	if (!tx->error)
		tx->error = error;
	else
		g_error_free (error);
	g_clear_pointer (&tx->writer, md_spool_writer_abort);
}

static gboolean
body_failed (const MdLmtpTransaction *tx)
{
	return tx->error || tx->line_too_long;
}

/* Writes what is pending to the spool file, opening it first.  A body
 * that never outgrows one batch is written by the commit thread instead,
 * so most messages create their file off the main loop. */
static void
body_flush (MdLmtpTransaction *tx)
{
	GError *error = NULL;

	if (!tx->pending || tx->pending->len == 0 || body_failed (tx))
		return;
	if (!tx->writer)
		tx->writer = md_spool_writer_new (tx->server->spool, MD_SPOOL_RAW, tx->server->cfg.max_message_size,
		                                  &error);
	if (!tx->writer || !md_spool_writer_write (tx->writer, tx->pending->str, tx->pending->len, &error))
		body_fail (tx, error);
	g_string_truncate (tx->pending, 0);
}

static void
body_append (MdLmtpTransaction *tx, const char *p, gsize n)
{
	gint64 max = tx->server->cfg.max_message_size;

	tx->size += (gint64) n;  /* what arrived, stored or not, for the log */
	if (body_failed (tx))
		return;
	if (max > 0 && tx->stored + (gint64) n > max) {
		body_fail (tx, g_error_new (MD_ERROR, MD_ERROR_TOO_BIG,
		                            "message exceeds the maximum size of %" G_GINT64_FORMAT " bytes", max));
		return;
	}
	tx->stored += (gint64) n;
	g_string_append_len (tx->pending, p, (gssize) n);
	if (tx->pending->len >= BODY_FLUSH_SIZE)
		body_flush (tx);
}

/* The first DATA or BDAT of a transaction; the spool file is opened when
 * the body needs it (body_flush). */
static gboolean
body_begin (MdLmtpSession *s, MdLmtpBody body, GError **error)
{
	MdLmtpTransaction *tx = s->tx;

	if (tx->body != BODY_NONE)
		return TRUE;
	tx->body = body;
	tx->pending = g_string_sized_new (BODY_FLUSH_SIZE);
	return TRUE;
}

static void
reply_each_recipient (MdLmtpSession *s, MdLmtpTransaction *tx, const MdLmtpReply *r)
{
	for (guint i = 0; i < transaction_n_rcpts (tx); i++)
		reply (s, "%u %s <%s> %s", r->code, r->enhanced, transaction_rcpts (tx)[i], r->text);
}

static void
log_outcome (MdLmtpTransaction *tx, const char *event, const char *result)
{
	g_message ("%s lmtp %s from=<%s> rcpts=%u size=%" G_GINT64_FORMAT " result=%s", tx->session_id,
	           event, tx->sender, transaction_n_rcpts (tx), tx->size, result);
}

/* The body failed (size, line length, spool): every recipient hears why.
 * The caller ends the transaction. */
static void
body_refuse (MdLmtpSession *s, MdLmtpTransaction *tx)
{
	MdLmtpReply r = tx->line_too_long ? line_too_long_reply : reply_for_error (tx->error);
	g_autofree char *result = g_strdup_printf ("%u:%s", r.code, r.enhanced);

	if (tx->error && md_error_is_temporary (tx->error))
		g_warning ("%s lmtp spool error: %s", s->id, tx->error->message);
	reply_each_recipient (s, tx, &r);
	log_outcome (tx, "rejected", result);
}

static void deliver_committed (GObject *source, GAsyncResult *result, gpointer data);

/* What the commit thread needs: the file when one was opened, the bytes
 * not yet in it, and the transaction to hand to the application. */
typedef struct {
	MdLmtpTransaction *tx;
	MdSpoolWriter *writer;
	GString *pending;
	MdSpool *spool;
	gint64 max_size;
} BodyCommit;

static void
body_commit_free (gpointer data)
{
	BodyCommit *c = data;
	md_spool_writer_abort (c->writer);
	if (c->pending)
		g_string_free (c->pending, TRUE);
	g_free (c);
}

static void
commit_in_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
	BodyCommit *c = data;
	GError *error = NULL;
	char *sha256 = NULL;

	if (!c->writer)
		c->writer = md_spool_writer_new (c->spool, MD_SPOOL_RAW, c->max_size, &error);
	if (c->writer && c->pending->len > 0 &&
	    !md_spool_writer_write (c->writer, c->pending->str, c->pending->len, &error))
		g_clear_pointer (&c->writer, md_spool_writer_abort);
	if (!c->writer || !md_spool_writer_commit (g_steal_pointer (&c->writer), &sha256, &error)) {
		g_task_return_error (task, error);
		return;
	}
	/* Straight from this thread to the application: a trip through the
	 * main loop would cost two thread switches per message.  The main
	 * loop leaves the transaction alone while it is delivering. */
	MdLmtpTransaction *tx = c->tx;
	tx->sha256 = sha256;
	tx->server->cb.deliver (tx->server->app, tx, tx->sender, transaction_rcpts (tx), tx->sha256, tx->size);
	g_task_return_boolean (task, TRUE);
}

/* End of data: make the file durable off the main loop (fsync), then hand
 * the transaction to the application, from the same worker thread.
 * Commands wait until it is done. */
static void
body_end (MdLmtpSession *s)
{
	MdLmtpTransaction *tx = s->tx;

	/* Nothing to keep, as `deliver` and the IMAP poller also say. */
	if (!body_failed (tx) && tx->stored == 0)
		g_set_error (&tx->error, MD_ERROR, MD_ERROR_EMPTY, "empty message");
	if (body_failed (tx)) {
		body_refuse (s, tx);
		session_reset (s);
		return;
	}
	enter_state (s, STATE_DELIVERING);
	s->server->active_transactions++;
	GTask *task = g_task_new (NULL, NULL, deliver_committed, tx);
	BodyCommit *c = g_new0 (BodyCommit, 1);
	c->tx = tx;
	c->writer = g_steal_pointer (&tx->writer);
	c->pending = g_steal_pointer (&tx->pending);
	c->spool = s->server->spool;
	c->max_size = s->server->cfg.max_message_size;
	g_task_set_task_data (task, c, body_commit_free);
	g_task_run_in_thread (task, commit_in_thread);
	g_object_unref (task);
}

static void
transaction_retire (MdLmtpTransaction *tx)
{
	MdLmtpServer *server = tx->server;
	MdLmtpSession *s = tx->session;

	server->active_transactions--;
	if (!s) {
		transaction_free (&tx);
		return;
	}
	g_assert (s->tx == tx);
	session_reset (s);
	session_process (s);
	if (s->wake)
		s->wake (s->owner);
}

static void
deliver_committed (GObject *source, GAsyncResult *result, gpointer data)
{
	MdLmtpTransaction *tx = data;
	g_autoptr (GError) error = NULL;

	/* Once delivered, the transaction belongs to the application until
	 * md_lmtp_transaction_done, and may be gone already: don't touch it. */
	if (g_task_propagate_boolean (G_TASK (result), &error))
		return;
	if (!tx->session) {
		/* The client left before a reply: it will send again. */
		transaction_retire (tx);
		return;
	}
	tx->error = g_steal_pointer (&error);
	body_refuse (tx->session, tx);
	transaction_retire (tx);
}

static gboolean
transaction_finish (gpointer data)
{
	MdLmtpTransaction *tx = data;
	MdLmtpSession *s = tx->session;
	g_autoptr (GString) result = g_string_new (NULL);
	guint delivered = 0;

	for (guint i = 0; i < transaction_n_rcpts (tx); i++) {
		const char *rcpt = transaction_rcpts (tx)[i];
		const GError *error = tx->results ? tx->results[i] : NULL;
		const char *info = tx->info ? tx->info[i] : NULL;

		if (result->len)
			g_string_append_c (result, ',');
		if (!error) {
			delivered++;
			g_string_append_printf (result, "250%s%s", info ? ":" : "", info ? info : "");
			if (s)
				reply (s, "250 2.0.0 <%s> Delivered%s%s", rcpt, info ? " " : "", info ? info : "");
			continue;
		}
		MdLmtpReply r = reply_for_error (error);
		g_string_append_printf (result, "%u:%s", r.code, r.enhanced);
		g_message ("%s lmtp failed rcpt=<%s> reply=%u:%s error=\"%s\"", tx->session_id, rcpt, r.code,
		           r.enhanced, error->message);
		if (s)
			reply (s, "%u %s <%s> %s", r.code, r.enhanced, rcpt, r.text);
	}
	/* "not-delivered" when no recipient got it, so a count of
	 * "delivered" lines counts messages kept. */
	log_outcome (tx, delivered ? (s ? "delivered" : "delivered-unanswered") : (s ? "not-delivered" : "not-delivered-unanswered"),
	             result->str);
	transaction_retire (tx);
	return G_SOURCE_REMOVE;
}

void
md_lmtp_transaction_done (MdLmtpTransaction *tx, GError **errors, const char *const *info)
{
	g_return_if_fail (tx != NULL && tx->sha256 != NULL && tx->results == NULL);
	guint n = transaction_n_rcpts (tx);

	tx->results = errors ? errors : g_new0 (GError *, n);
	if (info) {
		tx->info = g_new0 (char *, n);
		for (guint i = 0; i < n; i++)
			tx->info[i] = g_strdup (info[i]);
	}
	/* Always through an idle source, never inline: deliver() may call us
	 * on the main loop while the session is in the middle of its work. */
	GSource *idle = g_idle_source_new ();
	g_source_set_callback (idle, transaction_finish, tx, NULL);
	g_source_attach (idle, tx->server->context);
	g_source_unref (idle);
}

const char *
md_lmtp_transaction_id (const MdLmtpTransaction *tx)
{
	return tx->session_id;
}

/* ---- address and parameter parsing (RFC 5321 4.1.2) ---- */

typedef enum {
	PATH_REVERSE,  /* MAIL FROM: Reverse-path = Path / "<>" */
	PATH_FORWARD,  /* RCPT TO: Forward-path = Path, or "<Postmaster>" */
} MdLmtpPath;

/* What may stand unquoted in a local part or a domain: printable, no
 * blank, none of the path's own delimiters.  Liberal on purpose: whether
 * "a..b" or "[IPv6:::1]" names a mailbox is for the application to say. */
static gboolean
is_path_char (char c)
{
	return c > 0x20 && c < 0x7f && !strchr ("<>\"@", c);
}

static gboolean
is_atext (char c)
{
	return g_ascii_isalnum (c) || (c && strchr ("!#$%&'*+-/=?^_`{|}~", c));
}

/* Dot-string = Atom *("." Atom), Atom = 1*atext */
static gboolean
is_dot_string (const char *s, gsize len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return FALSE;
	for (gsize i = 0; i < len; i++) {
		if (s[i] == '.' ? s[i + 1] == '.' : !is_atext (s[i]))
			return FALSE;
	}
	return TRUE;
}

/* Path = "<" [ A-d-l ":" ] Mailbox ">"; Mailbox = Local-part "@" Domain;
 * Local-part = Dot-string / Quoted-string; Reverse-path = Path / "<>".
 * Returns the mailbox without its source route, "" for <>, "Postmaster"
 * as written for <Postmaster>, or NULL; *end_r is set past the '>'.
 * A quoted local part that could be a dot-string is returned unquoted
 * ("sup\port"@x is support@x): RFC 5321 4.1.2 says the two forms are the
 * same mailbox.  One that needs its quotes ("a b"@x) is kept as written. */
static char *
parse_path (const char *p, MdLmtpPath kind, const char **end_r)
{
	const char *start = p;
	gboolean routed = FALSE;
	g_autoptr (GString) unquoted = NULL;

	if (*p++ != '<')
		return NULL;
	/* A-d-l = At-domain *( "," At-domain ): an obsolete source route,
	 * accepted and ignored (RFC 5321 4.1.2, appendix C); a mailbox must
	 * follow it, so <@relay:> is no null sender. */
	if (*p == '@') {
		for (;;) {
			const char *domain = ++p;
			while (is_path_char (*p) && *p != ',' && *p != ':')
				p++;
			if (p == domain)
				return NULL;
			if (*p == ':')
				break;
			if (*p != ',' || p[1] != '@')
				return NULL;
			p++;
		}
		p++;
		routed = TRUE;
	}
	const char *local = p;
	if (*p == '"') {
		/* qtextSMTP = %d32-33 / %d35-91 / %d93-126;
		 * quoted-pairSMTP = "\" %d32-126 */
		unquoted = g_string_new (NULL);
		for (p++; *p != '"'; p++) {
			char c = *p == '\\' ? *++p : *p;
			if (c < 0x20 || c >= 0x7f)
				return NULL;
			g_string_append_c (unquoted, c);
		}
		p++;
	} else {
		while (is_path_char (*p))
			p++;
	}
	gsize local_len = (gsize) (p - local);
	if (*p == '>' && !routed) {
		gboolean ok = kind == PATH_REVERSE
		              ? local_len == 0
		              : !unquoted && local_len == 10 && g_ascii_strncasecmp (local, "Postmaster", 10) == 0;
		if (!ok)
			return NULL;
		*end_r = p + 1;
		return g_strndup (local, local_len);
	}
	/* The first '@' outside the quotes ends the local part: a@b@c is
	 * not an address. */
	if (*p++ != '@' || local_len == 0 || local_len > MAX_LOCAL_LENGTH)
		return NULL;
	const char *domain = p;
	while (is_path_char (*p))
		p++;
	if (p == domain || *p != '>' || p + 1 - start > MAX_PATH_LENGTH)
		return NULL;
	*end_r = p + 1;
	if (unquoted && is_dot_string (unquoted->str, unquoted->len))
		return g_strdup_printf ("%s@%.*s", unquoted->str, (int) (p - domain), domain);
	return g_strndup (local, (gsize) (p - local));
}

/* "FROM:" / "TO:" then the path; one space after the colon is a tolerated quirk. */
static char *
parse_path_argument (const char *args, const char *keyword, MdLmtpPath kind, const char **params_r)
{
	gsize klen = strlen (keyword);

	if (g_ascii_strncasecmp (args, keyword, klen) != 0)
		return NULL;
	args += klen;
	if (*args == ' ')
		args++;
	char *path = parse_path (args, kind, params_r);
	if (path && **params_r != '\0' && **params_r != ' ') {
		g_free (path);
		return NULL;
	}
	return path;
}

/* ---- the commands ---- */

typedef struct {
	const char *verb;
	/* Validates and parses into s->cmd; replies and returns FALSE on
	 * failure, with no other effect.  NULL = always fine. */
	gboolean (*check) (MdLmtpSession *s, const char *args);
	/* Does the work and replies. */
	void (*proceed) (MdLmtpSession *s, const char *args);
} MdLmtpCommand;

static gboolean
check_no_args (MdLmtpSession *s, const char *args)
{
	if (*args == '\0')
		return TRUE;
	reply (s, "501 5.5.4 No parameters allowed");
	return FALSE;
}

static gboolean
check_transaction_open (MdLmtpSession *s)
{
	switch (s->state) {
	case STATE_GREETED:
		reply (s, "503 5.5.1 Send LHLO first");
		return FALSE;
	case STATE_READY:
		reply (s, "503 5.5.1 Send MAIL first");
		return FALSE;
	default:
		return TRUE;
	}
}

/* lhlo = "LHLO" SP Domain CRLF  (RFC 2033 4.1; like EHLO, it resets) */
static gboolean
check_lhlo (MdLmtpSession *s, const char *args)
{
	if (*args && !strchr (args, ' '))
		return TRUE;
	reply (s, "501 5.5.4 Syntax: LHLO hostname");
	return FALSE;
}

static void
proceed_lhlo (MdLmtpSession *s, const char *args)
{
	const MdLmtpConfig *cfg = &s->server->cfg;

	g_free (s->lhlo_name);
	s->lhlo_name = g_strdup (args);
	transaction_free (&s->tx);
	enter_state (s, STATE_READY);
	reply (s, "250-%s", cfg->hostname);
	reply (s, "250-PIPELINING");
	reply (s, "250-ENHANCEDSTATUSCODES");
	reply (s, "250-8BITMIME");
	reply (s, "250-CHUNKING");
	reply (s, "250 SIZE %" G_GINT64_FORMAT, cfg->max_message_size);
}

/* RFC 2033 4.1: "the LHLO command ... is used instead of HELO and EHLO" */
static gboolean
check_helo (MdLmtpSession *s, const char *args)
{
	reply (s, "500 5.5.1 This is LMTP: LMTP requires LHLO, not HELO/EHLO");
	return FALSE;
}

/* mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
 * Mail-parameters: SIZE=<digits> (RFC 1870), BODY=7BIT/8BITMIME (RFC 6152) */
static gboolean
check_mail (MdLmtpSession *s, const char *args)
{
	const char *params = NULL;
	gboolean seen_size = FALSE, seen_body = FALSE;

	if (s->state == STATE_GREETED) {
		reply (s, "503 5.5.1 Send LHLO first");
		return FALSE;
	}
	/* Stopping: what is in flight finishes, nothing new starts.  The
	 * MTA keeps the message and tries again (RFC 5321 3.8). */
	if (s->server->draining) {
		g_autofree char *text = g_strdup_printf ("421 4.3.2 %s Service shutting down, closing connection",
		                                         s->server->cfg.hostname);
		session_abandon (s, text);
		return FALSE;
	}
	if (s->state != STATE_READY) {
		reply (s, "503 5.5.1 Nested MAIL command");
		return FALSE;
	}
	g_autofree char *path = parse_path_argument (args, "FROM:", PATH_REVERSE, &params);
	if (!path) {
		reply (s, "501 5.1.7 Syntax: MAIL FROM:<address>");
		return FALSE;
	}
	s->cmd.size = 0;
	g_auto (GStrv) words = g_strsplit (params, " ", 0);
	for (char **w = words; *w; w++) {
		const char *eq = strchr (*w, '=');
		gsize klen = eq ? (gsize) (eq - *w) : strlen (*w);
		guint64 size;

		if (**w == '\0')
			continue;
		if (klen == 4 && g_ascii_strncasecmp (*w, "SIZE", 4) == 0 && eq && !seen_size) {
			if (!g_ascii_string_to_unsigned (eq + 1, 10, 0, G_MAXINT64, &size, NULL)) {
				reply (s, "501 5.5.4 Bad SIZE parameter");
				return FALSE;
			}
			gint64 max = s->server->cfg.max_message_size;
			if (max > 0 && (gint64) size > max) {
				reply (s, "552 5.3.4 Message size exceeds the limit of %" G_GINT64_FORMAT " bytes", max);
				return FALSE;
			}
			s->cmd.size = (gint64) size;
			seen_size = TRUE;
		} else if (klen == 4 && g_ascii_strncasecmp (*w, "BODY", 4) == 0 && eq && !seen_body) {
			if (g_ascii_strcasecmp (eq + 1, "7BIT") != 0 && g_ascii_strcasecmp (eq + 1, "8BITMIME") != 0) {
				reply (s, "555 5.5.4 Unsupported BODY type");
				return FALSE;
			}
			seen_body = TRUE;
		} else {
			reply (s, "555 5.5.4 Unsupported MAIL parameter");
			return FALSE;
		}
	}
	g_free (s->cmd.path);
	s->cmd.path = g_steal_pointer (&path);
	return TRUE;
}

static void
proceed_mail (MdLmtpSession *s, const char *args)
{
	s->tx = transaction_new (s, s->cmd.path);
	enter_state (s, STATE_MAIL);
	reply (s, "250 2.1.0 Ok");
}

/* rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
 *        Forward-path ) [SP Rcpt-parameters] CRLF
 * No Rcpt-parameters are supported (no DSN).  RFC 2033 4.2: each RCPT is
 * checked now and gets its own reply after the data.  The postmaster is
 * answered for by the engine (is_postmaster). */
static gboolean
check_rcpt (MdLmtpSession *s, const char *args)
{
	const char *params = NULL;

	if (!check_transaction_open (s))
		return FALSE;
	g_autofree char *path = parse_path_argument (args, "TO:", PATH_FORWARD, &params);
	if (!path) {
		reply (s, "501 5.1.3 Syntax: RCPT TO:<address>");
		return FALSE;
	}
	if (*params) {
		reply (s, "555 5.5.4 Unsupported RCPT parameter");
		return FALSE;
	}
	if (s->tx->body != BODY_NONE) {
		reply (s, "503 5.5.1 RCPT after BDAT");
		return FALSE;
	}
	if (transaction_n_rcpts (s->tx) >= s->server->cfg.max_recipients) {
		reply (s, "452 4.5.3 Too many recipients");
		return FALSE;
	}
	g_free (s->cmd.path);
	s->cmd.path = g_steal_pointer (&path);
	return TRUE;
}

/* RFC 5321 4.5.1: a server MUST take mail for "Postmaster" (no domain,
 * any case) and for Postmaster@ each domain it serves.  The engine knows
 * neither domains nor mailboxes, so it answers for the postmaster
 * itself: <Postmaster> is accepted without asking the application, and
 * Postmaster@domain when all the application has against it is that no
 * such mailbox exists (NO_USER: the domain is served here); any other
 * refusal (another domain, a temporary failure) stands.
 *
 * Where it goes: the application gets the address as written among the
 * recipients.  For the desk (md_ingest_check_recipient, md_address_classify)
 * that is mail without a reply token, filed exactly as mail to the
 * intake address: a new ticket, or a comment on the ticket its headers
 * thread to.  A support desk has no other mailbox to give its
 * postmaster, and people read the intake. */
static gboolean
is_postmaster (const char *path)
{
	const char *at = strchr (path, '@');
	gsize len = at ? (gsize) (at - path) : strlen (path);
	return len == 10 && g_ascii_strncasecmp (path, "Postmaster", 10) == 0;
}

static void
proceed_rcpt (MdLmtpSession *s, const char *args)
{
	g_autoptr (GError) error = NULL;
	gboolean postmaster = is_postmaster (s->cmd.path);

	/* Only <Postmaster> comes without a domain (parse_path). */
	if (strchr (s->cmd.path, '@') &&
	    !s->server->cb.check_recipient (s->server->app, s->cmd.path, (const char *const *) s->tx->rcpts->pdata,
	                                    &error) &&
	    !(postmaster && g_error_matches (error, MD_ERROR, MD_ERROR_NO_USER))) {
		g_return_if_fail (error != NULL);
		MdLmtpReply r = reply_for_error (error);
		g_info ("%s lmtp refused rcpt=<%s> reply=%u:%s error=\"%s\"", s->id, s->cmd.path, r.code,
		        r.enhanced, error->message);
		reply (s, "%u %s <%s> %s", r.code, r.enhanced, s->cmd.path, r.text);
		return;
	}
	g_ptr_array_insert (s->tx->rcpts, (gint) transaction_n_rcpts (s->tx), g_steal_pointer (&s->cmd.path));
	enter_state (s, STATE_RCPT);
	reply (s, "250 2.1.5 Ok");
}

/* data = "DATA" CRLF  (RFC 2033 4.2: 503 without a successful RCPT) */
static gboolean
check_data (MdLmtpSession *s, const char *args)
{
	if (!check_no_args (s, args) || !check_transaction_open (s))
		return FALSE;
	if (s->state != STATE_RCPT) {
		reply (s, "503 5.5.1 No valid recipients");
		return FALSE;
	}
	if (s->tx->body == BODY_BDAT) {
		reply (s, "503 5.5.1 DATA after BDAT");
		return FALSE;
	}
	return TRUE;
}

static void
proceed_data (MdLmtpSession *s, const char *args)
{
	g_autoptr (GError) error = NULL;

	if (!body_begin (s, BODY_DATA, &error)) {
		MdLmtpReply r = reply_for_error (error);
		g_warning ("%s lmtp spool error: %s", s->id, error->message);
		reply (s, "%u %s %s", r.code, r.enhanced, r.text);
		return;
	}
	enter_state (s, STATE_DATA);
	reply (s, "354 End data with <CR><LF>.<CR><LF>");
}

/* bdat = "BDAT" SP chunk-size [ SP end-marker ] CRLF; end-marker = "LAST"
 * (RFC 3030 2).  Refusals come after the chunk is read and dropped, since
 * the client sends it anyway.  A size we cannot read leaves us no way to
 * find the next command: that closes the session. */
static gboolean
check_bdat (MdLmtpSession *s, const char *args)
{
	g_auto (GStrv) words = g_strsplit (args, " ", 3);
	guint64 size = 0;
	guint n = g_strv_length (words);

	if (n >= 1 && n <= 2 && g_ascii_string_to_unsigned (words[0], 10, 0, G_MAXINT64, &size, NULL)
	    && (n == 1 || g_ascii_strcasecmp (words[1], "LAST") == 0)) {
		s->cmd.size = (gint64) size;
		s->cmd.last = n == 2;
		return TRUE;
	}
	reply (s, "501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
	enter_state (s, STATE_CLOSING);
	return FALSE;
}

static void bdat_chunk_end (MdLmtpSession *s);

static void
proceed_bdat (MdLmtpSession *s, const char *args)
{
	g_autoptr (GError) error = NULL;
	gint64 max = s->server->cfg.max_message_size;

	s->chunk.left = (guint64) s->cmd.size;
	s->chunk.last = s->cmd.last;
	s->chunk.refusal = NULL;
	s->chunk.resume = s->state;
	if (s->state == STATE_GREETED)
		s->chunk.refusal = "503 5.5.1 Send LHLO first";
	else if (s->state == STATE_READY)
		s->chunk.refusal = "503 5.5.1 Send MAIL first";
	else if (s->state == STATE_MAIL)
		s->chunk.refusal = "503 5.5.1 No valid recipients";
	else if (s->tx->body == BODY_DATA)
		s->chunk.refusal = "503 5.5.1 BDAT after DATA";
	else if (!body_begin (s, BODY_BDAT, &error))
		body_fail (s->tx, g_steal_pointer (&error));
	else if (max > 0 && s->tx->stored + s->cmd.size > max)
		body_fail (s->tx, g_error_new (MD_ERROR, MD_ERROR_TOO_BIG, "BDAT beyond %" G_GINT64_FORMAT, max));
	enter_state (s, STATE_BDAT);
	if (s->chunk.left == 0)
		bdat_chunk_end (s);
}

static void
bdat_chunk_end (MdLmtpSession *s)
{
	MdLmtpTransaction *tx = s->tx;

	if (s->chunk.refusal) {
		enter_state (s, s->chunk.resume);
		reply (s, "%s", s->chunk.refusal);
		return;
	}
	enter_state (s, STATE_RCPT);
	if (s->chunk.last) {
		body_end (s);
		return;
	}
	body_flush (tx);
	if (body_failed (tx)) {
		/* Not the last chunk: one reply, and the transaction is over. */
		MdLmtpReply r = reply_for_error (tx->error);
		if (md_error_is_temporary (tx->error))
			g_warning ("%s lmtp spool error: %s", s->id, tx->error->message);
		reply (s, "%u %s %s", r.code, r.enhanced, r.text);
		session_reset (s);
		return;
	}
	reply (s, "250 2.0.0 %" G_GINT64_FORMAT " octets received", tx->stored);
}

/* rset = "RSET" CRLF */
static void
proceed_rset (MdLmtpSession *s, const char *args)
{
	session_reset (s);
	reply (s, "250 2.0.0 Ok");
}

/* noop = "NOOP" [ SP String ] CRLF */
static void
proceed_noop (MdLmtpSession *s, const char *args)
{
	reply (s, "250 2.0.0 Ok");
}

/* vrfy = "VRFY" SP String CRLF; RFC 5321 3.5.3: 252 when we will not say */
static gboolean
check_vrfy (MdLmtpSession *s, const char *args)
{
	if (*args)
		return TRUE;
	reply (s, "501 5.5.4 Syntax: VRFY address");
	return FALSE;
}

static void
proceed_vrfy (MdLmtpSession *s, const char *args)
{
	reply (s, "252 2.5.2 Cannot VRFY; send the mail and RCPT will tell");
}

/* quit = "QUIT" CRLF */
static void
proceed_quit (MdLmtpSession *s, const char *args)
{
	reply (s, "221 2.0.0 %s Bye", s->server->cfg.hostname);
	enter_state (s, STATE_CLOSING);
}

static const MdLmtpCommand commands[] = {
	{ "LHLO", check_lhlo, proceed_lhlo },
	{ "HELO", check_helo, NULL },
	{ "EHLO", check_helo, NULL },
	{ "MAIL", check_mail, proceed_mail },
	{ "RCPT", check_rcpt, proceed_rcpt },
	{ "DATA", check_data, proceed_data },
	{ "BDAT", check_bdat, proceed_bdat },
	{ "RSET", check_no_args, proceed_rset },
	{ "NOOP", NULL, proceed_noop },
	{ "VRFY", check_vrfy, proceed_vrfy },
	{ "QUIT", check_no_args, proceed_quit },
};

static void
session_command (MdLmtpSession *s, char *line, gsize len)
{
	if (s->server->cfg.trace)
		g_debug ("%s lmtp < %.*s", s->id, (int) len, line);
	if (memchr (line, '\0', len) || len == 0) {
		reply (s, "500 5.5.2 Syntax error");
		return;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	char *args = strchr (line, ' ');
	gsize verb_len = args ? (gsize) (args - line) : len;
	args = args ? args + 1 : line + len;

	for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
		const MdLmtpCommand *c = &commands[i];
		if (verb_len != 4 || g_ascii_strncasecmp (line, c->verb, 4) != 0)
			continue;
		gsize before = s->out->len;
		if (c->check && !c->check (s, args)) {
			/* Dovecot's contract: a refusal always carries its reply. */
			g_assert (s->out->len > before);
			return;
		}
		c->proceed (s, args);
		return;
	}
	reply (s, "500 5.5.2 Command not recognized");
}

/* ---- input ---- */

/* Commands end with LF (CRLF, or bare LF as a quirk).  An overlong line
 * is dropped as it comes and answered 500 5.5.2 once its end arrives. */
static gsize
consume_command (MdLmtpSession *s, const char *p, gsize avail)
{
	guint max = s->server->cfg.max_line_length;
	const char *lf = memchr (p, '\n', avail);

	if (!lf) {
		if (avail < max)
			return 0;
		s->skipping_line = TRUE;
		return avail;
	}
	gsize n = (gsize) (lf - p) + 1;
	if (s->skipping_line || n > max) {
		s->skipping_line = FALSE;
		reply (s, "%u %s %s", line_too_long_reply.code, line_too_long_reply.enhanced, line_too_long_reply.text);
		return n;
	}
	gsize len = n - 1;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	g_autofree char *line = g_strndup (p, len);
	session_command (s, line, len);
	return n;
}

/* DATA lines (RFC 5321 4.5.2): a leading dot is removed, a line of one
 * dot ends the data; a text line may hold max_line_length octets with
 * its CRLF, not counting the stuffed dot (4.5.3.1.6).  Past that the
 * body has failed, but is read to its end so the session stays in step. */
static gsize
consume_data (MdLmtpSession *s, const char *p, gsize avail)
{
	MdLmtpTransaction *tx = s->tx;
	gsize max = s->server->cfg.max_line_length;
	const char *lf = memchr (p, '\n', avail);

	if (!lf) {
		if (avail <= max + 1)
			return 0;
		tx->line_too_long = TRUE;
		tx->mid_line = TRUE;
		return avail;
	}
	gsize n = (gsize) (lf - p) + 1;
	gboolean after_bare_lf = tx->after_bare_lf;
	tx->after_bare_lf = n < 2 || p[n - 2] != '\r';
	if (tx->mid_line) {
		tx->mid_line = FALSE;
		return n;
	}
	const char *line = p;
	gsize len = n;
	if (p[0] == '.') {
		/* A dot line next to a bare LF is content, unstuffed like any. */
		if (n == 3 && p[1] == '\r' && !after_bare_lf) {
			body_end (s);
			return n;
		}
		line++;
		len--;
	}
	if (len > max)
		tx->line_too_long = TRUE;
	else
		body_append (tx, line, len);
	return n;
}

static gsize
consume_chunk (MdLmtpSession *s, const char *p, gsize avail)
{
	gsize take = (gsize) MIN ((guint64) avail, s->chunk.left);

	if (take == 0)
		return 0;
	if (!s->chunk.refusal)
		body_append (s->tx, p, take);
	s->chunk.left -= take;
	if (s->chunk.left == 0)
		bdat_chunk_end (s);
	return take;
}

static gboolean
session_can_process (const MdLmtpSession *s)
{
	return s->state != STATE_DELIVERING && s->state != STATE_CLOSING && s->out->len < OUTPUT_HIGH_WATER;
}

static void
session_process (MdLmtpSession *s)
{
	while (session_can_process (s)) {
		gsize avail = s->in->len - s->in_pos;
		const char *p = avail ? (const char *) s->in->data + s->in_pos : "";
		gsize used;

		if (s->state == STATE_DATA)
			used = consume_data (s, p, avail);
		else if (s->state == STATE_BDAT)
			used = consume_chunk (s, p, avail);
		else
			used = avail ? consume_command (s, p, avail) : 0;
		if (used == 0)
			break;
		s->in_pos += used;
	}
	if (s->in_pos == s->in->len) {
		g_byte_array_set_size (s->in, 0);
		s->in_pos = 0;
	}
}

/* ---- the session's interface to its transport ---- */

MdLmtpSession *
md_lmtp_session_new (MdLmtpServer *server, const char *peer, MdLmtpSessionWake wake, gpointer owner)
{
	MdLmtpSession *s = g_new0 (MdLmtpSession, 1);

	s->server = md_lmtp_server_ref (server);
	g_snprintf (s->id, sizeof s->id, "%08x%08x", g_random_int (), g_random_int ());
	s->peer = g_strdup (peer ? peer : "local");
	s->wake = wake;
	s->owner = owner;
	s->in = g_byte_array_new ();
	s->in_max = MAX (64 * 1024, 2 * (gsize) server->cfg.max_line_length + 2);
	s->out = g_string_new (NULL);
	s->state = STATE_GREETED;
	g_info ("%s lmtp connected address=%s", s->id, s->peer);
	reply (s, "220 %s LMTP maildesk ready", server->cfg.hostname);
	return s;
}

const char *
md_lmtp_session_id (const MdLmtpSession *s)
{
	return s->id;
}

gsize
md_lmtp_session_input_room (const MdLmtpSession *s)
{
	if (!session_can_process (s))
		return 0;
	return s->in_max - (s->in->len - s->in_pos);
}

void
md_lmtp_session_input (MdLmtpSession *s, const void *buf, gsize len)
{
	if (s->in_pos > 0) {
		g_byte_array_remove_range (s->in, 0, (guint) s->in_pos);
		s->in_pos = 0;
	}
	g_byte_array_append (s->in, buf, (guint) len);
	session_process (s);
}

GString *
md_lmtp_session_output (MdLmtpSession *s)
{
	return s->out;
}

gboolean
md_lmtp_session_closing (const MdLmtpSession *s)
{
	return s->state == STATE_CLOSING;
}

gboolean
md_lmtp_session_in_transaction (const MdLmtpSession *s)
{
	return s->state == STATE_MAIL || s->state == STATE_RCPT || s->state == STATE_DATA || s->state == STATE_BDAT;
}

gboolean
md_lmtp_session_waiting (const MdLmtpSession *s)
{
	return s->state == STATE_DELIVERING;
}

static void
session_abandon (MdLmtpSession *s, const char *text)
{
	if (s->state == STATE_DELIVERING)
		return;  /* the reply owed for the data comes first */
	session_reset (s);
	reply (s, "%s", text);
	enter_state (s, STATE_CLOSING);
}

void
md_lmtp_session_timeout (MdLmtpSession *s)
{
	g_autofree char *text = g_strdup_printf ("421 4.4.2 %s Idle timeout, closing connection",
	                                         s->server->cfg.hostname);
	session_abandon (s, text);
}

void
md_lmtp_session_shutdown (MdLmtpSession *s)
{
	g_autofree char *text = g_strdup_printf ("421 4.3.2 %s Service shutting down, closing connection",
	                                         s->server->cfg.hostname);
	session_abandon (s, text);
}

void
md_lmtp_session_free (MdLmtpSession **sp, const char *reason)
{
	MdLmtpSession *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	g_info ("%s lmtp disconnected reason=%s state=%s", s->id, reason, state_name (s->state));
	if (s->state == STATE_DELIVERING)
		g_steal_pointer (&s->tx)->session = NULL;  /* the commit or the application holds it */
	else
		transaction_free (&s->tx);
	g_free (s->cmd.path);
	g_free (s->lhlo_name);
	g_free (s->peer);
	g_byte_array_unref (s->in);
	g_string_free (s->out, TRUE);
	md_lmtp_server_unref (s->server);
	g_free (s);
}
