/* imap.c - IMAP ingest with libetpan: connecting (TLS, STARTTLS) and
 * verifying the server's certificate ourselves, finding new mail by UID,
 * spooling and ingesting it, then moving or flagging it; and the threads
 * that keep doing so for `serve`.
 *
 * Exactly once: a message is moved (or flagged \Seen) only after its
 * ingest committed, and the mailbox's last UID advances only after the
 * move.  A crash in between fetches the message again next time; ingest
 * dedupes it (Message-ID, else raw hash) and it is moved then.  Without
 * MOVE such a duplicate may have been copied already: processed_folder
 * is searched for it first (already_filed), so it ends there once; a
 * refused message, which leaves no trace to know it by, is always
 * looked for in failed_folder first.  A new UIDVALIDITY restarts from
 * UID 0 for the same reason.
 *
 * libetpan does not verify certificates (NOTES.md): after the handshake
 * and before LOGIN we check the peer's chain against the system store or
 * ca_file, and the host name, with GnuTLS. */
#include "config.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/libetpan.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "imap.h"
#include "ingest.h"
#include "md.h"

#define NETWORK_TIMEOUT_S   60      /* every read, write and connect */
#define IDLE_MAX_S          (25 * 60)   /* re-IDLE before servers' 29 min cut-off (RFC 2177) */
#define IDLE_SLICE_S        60
#define BACKOFF_MIN_S       1
#define BACKOFF_MAX_S       300
#define STEADY_SESSION_S    60      /* a session this long earns a fresh back-off */
#define BATCH_MAX           500     /* messages named per listing FETCH */
#define FETCH_CHUNK         (1024 * 1024)  /* bytes of a message per UID FETCH */
#define READ_BUDGET         (16 * 1024 * 1024)  /* bytes any other exchange may read */
#define READ_SLACK          (64 * 1024)  /* besides a chunk: its FETCH line, other responses */
#define CHAIN_MAX           16
#define COPIES_MAX          4       /* lookalikes of a duplicate fetched from processed_folder */
#define KEEPALIVE_MAX_S     7200    /* the kernel's own default; TCP_KEEPIDLE allows 32767 */
#define KEEPALIVE_PROBES    4       /* unanswered probes before the connection is dead */

typedef struct {
	guint32 uid;
	guint32 size;
	gboolean deleted;
} Pending;

typedef struct {
	MdDesk *desk;
	const MdImapConf *conf;
	char *label;            /* "imap.NAME", prefix of every log line and error */
	char *host;
	guint16 port;
	gboolean tls;           /* imaps:// */
	char *mailbox;
	char *state_key;        /* imap_state row: imap://user@host:port/mailbox */
	guint poll_interval_s;
	guint keepalive_s;      /* TCP keepalive: quiet seconds before the first probe */

	mailimap *imap;
	MdStore *store;
	gboolean has_idle, has_move, has_uidplus;
	guint32 overflowed_uid; /* its body came larger than announced: not fetched again */

	/* shared with md_imap_stop */
	GThread *thread;
	GMutex lock;
	GCond wake;
	gboolean stop;
	int fd;                 /* the connected socket, -1 when none */
} Mailbox;

struct _MdImapPoller {
	GPtrArray *mailboxes;   /* Mailbox* */
};

/* ---- configuration ---- */

static gboolean
parse_interval (const char *text, guint *seconds_r)
{
	char *end = NULL;
	guint64 n;

	if (!text || !g_ascii_isdigit (*text))
		return FALSE;
	n = g_ascii_strtoull (text, &end, 10);
	guint64 unit = 1;
	if (!strcmp (end, "") || !strcmp (end, "s"))
		unit = 1;
	else if (!strcmp (end, "m"))
		unit = 60;
	else if (!strcmp (end, "h"))
		unit = 3600;
	else
		return FALSE;
	if (n == 0 || n > 24 * 3600 / unit)
		return FALSE;
	*seconds_r = (guint) (n * unit);
	return TRUE;
}

/* poll_interval and keepalive in seconds; each one that cannot be used
 * goes to REPORT with its key. */
static void
read_intervals (const MdImapConf *conf, guint *poll_r, guint *keepalive_r, MdConfProblemFunc report, gpointer data)
{
	if (!parse_interval (conf->poll_interval ? conf->poll_interval : "60s", poll_r)) {
		g_autofree char *msg = g_strdup_printf ("poll_interval must be a number of seconds, or end in s, m or h "
		                                        "(got \"%s\")", conf->poll_interval);
		report ("poll_interval", msg, data);
	}
	if (!parse_interval (conf->keepalive ? conf->keepalive : "60s", keepalive_r) || *keepalive_r > KEEPALIVE_MAX_S) {
		g_autofree char *msg = g_strdup_printf ("keepalive must be a number of seconds up to 2h, or end in s, "
		                                        "m or h (got \"%s\")", conf->keepalive);
		report ("keepalive", msg, data);
	}
}

void
md_imap_conf_check (const MdImapConf *conf, MdConfProblemFunc report, gpointer data)
{
	guint poll, keepalive;

	/* the url is the loader's (md_imap_url_parse), for every command */
	read_intervals (conf, &poll, &keepalive, report, data);
}

static void
mailbox_free (Mailbox *mb)
{
	if (!mb)
		return;
	g_free (mb->label);
	g_free (mb->host);
	g_free (mb->mailbox);
	g_free (mb->state_key);
	g_mutex_clear (&mb->lock);
	g_cond_clear (&mb->wake);
	g_free (mb);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Mailbox, mailbox_free)

typedef struct {
	const char *label;
	GError *error;
} Refusal;

/* read_intervals' report for mailbox_new: the first problem, as its error. */
static void
refuse_interval (const char *key, const char *message, gpointer data)
{
	Refusal *r = data;
	(void) key;
	if (!r->error)
		g_set_error (&r->error, MD_ERROR, MD_ERROR_CONFIG, "%s: %s", r->label, message);
}

static Mailbox *
mailbox_new (MdDesk *desk, const MdImapConf *conf, GError **error)
{
	g_autoptr (Mailbox) mb = g_new0 (Mailbox, 1);

	mb->desk = desk;
	mb->conf = conf;
	mb->fd = -1;
	g_mutex_init (&mb->lock);
	g_cond_init (&mb->wake);
	mb->label = g_strdup_printf ("imap.%s", conf->name);

	g_autoptr (GError) url_error = NULL;
	if (!md_imap_url_parse (conf->url, &mb->tls, &mb->host, &mb->port, &mb->mailbox, &url_error)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: %s", mb->label, url_error->message);
		return NULL;
	}
	if (!conf->user || !conf->password_file) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: needs a user and a password_file", mb->label);
		return NULL;
	}
	mb->state_key = g_strdup_printf ("imap%s://%s@%s:%u/%s", mb->tls ? "s" : "", conf->user, mb->host,
	                                 mb->port, mb->mailbox);
	Refusal refusal = { mb->label, NULL };
	read_intervals (conf, &mb->poll_interval_s, &mb->keepalive_s, refuse_interval, &refusal);
	if (refusal.error) {
		g_propagate_error (error, refusal.error);
		return NULL;
	}
	return g_steal_pointer (&mb);
}

/* The password file's first line; never logged.  Free with md_password_free. */
static char *
read_password (Mailbox *mb, GError **error)
{
	GError *local = NULL;
	char *password = md_password_read (mb->conf->password_file, &local);
	if (!password) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: %s", mb->label, local->message);
		g_error_free (local);
	}
	return password;
}

/* ---- stopping ---- */

static gboolean
mailbox_stopping (Mailbox *mb)
{
	g_mutex_lock (&mb->lock);
	gboolean stop = mb->stop;
	g_mutex_unlock (&mb->lock);
	return stop;
}

/* Sleeps up to SECONDS; TRUE unless told to stop. */
static gboolean
mailbox_sleep (Mailbox *mb, guint seconds)
{
	gint64 until = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;
	g_mutex_lock (&mb->lock);
	while (!mb->stop && g_cond_wait_until (&mb->wake, &mb->lock, until))
		;
	gboolean go_on = !mb->stop;
	g_mutex_unlock (&mb->lock);
	return go_on;
}

static void
publish_fd (Mailbox *mb, int fd)
{
	g_mutex_lock (&mb->lock);
	mb->fd = fd;
	if (mb->stop && fd >= 0)
		shutdown (fd, SHUT_RDWR);
	g_mutex_unlock (&mb->lock);
}

/* ---- errors ---- */

static const char *
etpan_error_text (int r)
{
	switch (r) {
	case MAILIMAP_ERROR_STREAM:
		return "connection lost or timed out";
	case MAILIMAP_ERROR_CONNECTION_REFUSED:
		return "cannot connect";
	case MAILIMAP_ERROR_SSL:
		return "TLS handshake failed";
	case MAILIMAP_ERROR_PARSE:
		return "unparsable server response";
	case MAILIMAP_ERROR_MEMORY:
		return "out of memory";
	case MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION:
		return "server refuses connections";
	default:
		return "refused by the server";
	}
}

/* Sets an MD_ERROR_IO (temporary) error for a failed libetpan call R,
 * with what the server said, and returns FALSE. */
/* What the current exchange may still read, per thread (each mailbox has
 * its own): libetpan holds a whole response in memory, and a server that
 * ignores the range of a partial FETCH (or just streams) would have it
 * hold gigabytes.  Past the budget a read fails, as if the peer had gone. */
static _Thread_local gint64 read_budget = -1;   /* -1: no limit */
static _Thread_local gint64 read_budget_set_to;

static void
budget_reads (gint64 bytes)
{
	read_budget = read_budget_set_to = bytes;
}

static gboolean
imap_failed (Mailbox *mb, int r, const char *what, GError **error)
{
	const char *said = mb->imap ? mb->imap->imap_response : NULL;
	if (read_budget == 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: %s: the server sent more than the %" G_GINT64_FORMAT
		             " bytes allowed for the answer (a partial FETCH answered whole?); connection dropped",
		             mb->label, what, read_budget_set_to);
		return FALSE;
	}
	g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: %s: %s%s%s", mb->label, what, etpan_error_text (r),
	             said && *said ? ": " : "", said && *said ? said : "");
	return FALSE;
}

static gboolean
imap_ok (int r)
{
	return r == MAILIMAP_NO_ERROR || r == MAILIMAP_NO_ERROR_AUTHENTICATED ||
	       r == MAILIMAP_NO_ERROR_NON_AUTHENTICATED;
}

/* ---- TLS ---- */

static void
set_server_name (struct mailstream_ssl_context *ctx, void *data)
{
	Mailbox *mb = data;
	/* SNI carries host names only (RFC 6066, 3) */
	if (!g_hostname_is_ip_address (mb->host))
		mailstream_ssl_set_server_name (ctx, mb->host);
}

static void
crts_free (gnutls_x509_crt_t *crts, guint n)
{
	for (guint i = 0; i < n; i++)
		gnutls_x509_crt_deinit (crts[i]);
}

/* Imports the peer's chain (leaf first) into CRTS; the count, 0 on failure. */
static guint
peer_chain (Mailbox *mb, gnutls_x509_crt_t *crts)
{
	carray *chain = mailstream_get_certificate_chain (mb->imap->imap_stream);
	guint n = 0;

	for (unsigned i = 0; chain && i < carray_count (chain) && n < CHAIN_MAX; i++) {
		MMAPString *der = carray_get (chain, i);
		gnutls_datum_t datum = { (unsigned char *) der->str, (unsigned) der->len };
		if (gnutls_x509_crt_init (&crts[n]) < 0)
			break;
		if (gnutls_x509_crt_import (crts[n], &datum, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit (crts[n]);
			break;
		}
		n++;
	}
	if (chain)
		mailstream_certificate_chain_free (chain);
	return n;
}

static gboolean
load_trust (Mailbox *mb, gnutls_x509_trust_list_t trust, GError **error)
{
	int r;
	if (mb->conf->ca_file) {
		r = gnutls_x509_trust_list_add_trust_file (trust, mb->conf->ca_file, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
		if (r <= 0) {
			g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: ca_file %s holds no usable certificate%s%s",
			             mb->label, mb->conf->ca_file, r < 0 ? ": " : "", r < 0 ? gnutls_strerror (r) : "");
			return FALSE;
		}
	} else {
		r = gnutls_x509_trust_list_add_system_trust (trust, 0, 0);
		if (r <= 0) {
			g_set_error (error, MD_ERROR, MD_ERROR_CONFIG,
			             "%s: no system CA certificates to verify %s against (set ca_file)", mb->label,
			             mb->host);
			return FALSE;
		}
	}
	return TRUE;
}

/* Verifies the server's certificate chain and host name: MD_ERROR_DENIED
 * naming what failed. */
static gboolean
verify_peer (Mailbox *mb, GError **error)
{
	if (!mb->conf->tls_verify) {
		g_warning ("%s: tls_verify = false: NOT verifying the certificate of %s; whoever sits on the path "
		           "can read the password and the mail", mb->label, mb->host);
		return TRUE;
	}
	gnutls_x509_crt_t crts[CHAIN_MAX];
	guint n = peer_chain (mb, crts);
	if (n == 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_DENIED, "%s: %s sent no usable TLS certificate", mb->label,
		             mb->host);
		return FALSE;
	}
	gnutls_x509_trust_list_t trust = NULL;
	gboolean ok = FALSE;
	unsigned status = 0;
	int r;

	if (gnutls_x509_trust_list_init (&trust, 0) < 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_INTERNAL, "%s: cannot set up certificate checks", mb->label);
		goto out;
	}
	if (!load_trust (mb, trust, error))
		goto out;
	r = gnutls_x509_trust_list_verify_crt (trust, crts, n, 0, &status, NULL);
	if (r < 0 || status != 0) {
		gnutls_datum_t text = { NULL, 0 };
		if (r >= 0)
			gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509, &text, 0);
		g_autofree char *why = g_strdup (r < 0 ? gnutls_strerror (r) : text.data ? (char *) text.data : "not trusted");
		gnutls_free (text.data);
		g_set_error (error, MD_ERROR, MD_ERROR_DENIED, "%s: certificate verification failed for %s: %s%s",
		             mb->label, mb->host, g_strstrip (why), mb->conf->ca_file ? "" : " (a private CA needs ca_file)");
		goto out;
	}
	if (!gnutls_x509_crt_check_hostname (crts[0], mb->host)) {
		g_set_error (error, MD_ERROR, MD_ERROR_DENIED,
		             "%s: certificate verification failed: the certificate of %s is not for that host name",
		             mb->label, mb->host);
		goto out;
	}
	ok = TRUE;
out:
	if (trust)
		gnutls_x509_trust_list_deinit (trust, 1);
	crts_free (crts, n);
	return ok;
}

/* ---- the session ---- */

/* TCP keepalive (RFC 1122 4.2.3.6) on the connection's socket.  In IDLE
 * neither side says anything for up to IDLE_MAX_S, and a NAT or firewall
 * that forgets the connection in the meantime drops it without a word:
 * no RST ever comes, and the thread would sit in IDLE until it ends it.
 * Probes after keepalive_s of quiet keep such a middlebox's mapping
 * fresh, and KEEPALIVE_PROBES unanswered ones (one every quarter of
 * keepalive_s) make the socket fail with ETIMEDOUT, which wakes the IDLE
 * wait: a dead peer is noticed about 2 x keepalive_s after it went
 * silent.  Failing to set it is logged, not fatal: the re-IDLE after
 * IDLE_MAX_S and the network timeout still bound the wait. */
static void
set_keepalive (Mailbox *mb, int fd)
{
	int on = 1, idle = (int) mb->keepalive_s, count = KEEPALIVE_PROBES;
	int interval = MAX ((idle + KEEPALIVE_PROBES - 1) / KEEPALIVE_PROBES, 1);

	if (fd < 0)
		return;
	if (setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0 ||
	    setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
	    setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) < 0 ||
	    setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) < 0) {
		g_warning ("%s: cannot turn on TCP keepalive: %s; a silently dropped connection is noticed only "
		           "when IDLE is renewed", mb->label, g_strerror (errno));
		return;
	}
	/* what the socket holds now, read back: the tests check this line */
	socklen_t len = sizeof on;
	on = idle = interval = count = 0;
	getsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len);
	len = sizeof idle;
	getsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
	len = sizeof interval;
	getsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, &len);
	len = sizeof count;
	getsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &count, &len);
	g_debug ("%s: connected to %s port %u keepalive=%s idle=%ds interval=%ds probes=%d", mb->label, mb->host,
	         mb->port, on ? "on" : "off", idle, interval, count);
}

static gboolean
refresh_capabilities (Mailbox *mb, GError **error)
{
	struct mailimap_capability_data *caps = NULL;
	int r = mailimap_capability (mb->imap, &caps);
	if (!imap_ok (r))
		return imap_failed (mb, r, "CAPABILITY", error);
	mailimap_capability_data_free (caps);
	return TRUE;
}

static gboolean
open_connection (Mailbox *mb, GError **error)
{
	int r;

	mb->imap = mailimap_new (0, NULL);
	if (!mb->imap) {
		g_set_error (error, MD_ERROR, MD_ERROR_INTERNAL, "%s: out of memory", mb->label);
		return FALSE;
	}
	mailimap_set_timeout (mb->imap, NETWORK_TIMEOUT_S);
	if (mb->tls)
		r = mailimap_ssl_connect_with_callback (mb->imap, mb->host, mb->port, set_server_name, mb);
	else
		r = mailimap_socket_connect (mb->imap, mb->host, mb->port);
	if (!imap_ok (r)) {
		g_autofree char *what = g_strdup_printf ("connect to %s port %u", mb->host, mb->port);
		return imap_failed (mb, r, what, error);
	}
	int fd = mailstream_low_get_fd (mailstream_get_low (mb->imap->imap_stream));
	set_keepalive (mb, fd);
	publish_fd (mb, fd);
	if (!refresh_capabilities (mb, error))
		return FALSE;
	if (!mb->tls) {
		if (mailimap_has_extension (mb->imap, "STARTTLS")) {
			r = mailimap_socket_starttls_with_callback (mb->imap, set_server_name, mb);
			if (!imap_ok (r))
				return imap_failed (mb, r, "STARTTLS", error);
			if (!refresh_capabilities (mb, error))
				return FALSE;
		} else if (!mb->conf->allow_plaintext) {
			g_set_error (error, MD_ERROR, MD_ERROR_DENIED,
			             "%s: %s offers no STARTTLS; not sending the password in clear "
			             "(allow_plaintext = true permits it)", mb->label, mb->host);
			return FALSE;
		} else {
			g_warning ("%s: allow_plaintext = true: logging in to %s without TLS", mb->label, mb->host);
			return TRUE;
		}
	}
	return verify_peer (mb, error);
}

/* libetpan 1.9 reads a literal (a message body) in a loop that takes a
 * read of 0 bytes, the peer's end of stream, for "try again": a server
 * that closes mid-message leaves it spinning on a core for ever, deaf to
 * our shutdown().  Each stream's driver is wrapped so that 0 bytes read
 * is an error.  One wrapper per libetpan driver (plain, TLS). */
typedef struct {
	mailstream_low_driver guarded;  /* first: the stream points here */
	mailstream_low_driver *original;
} GuardedDriver;

static GuardedDriver guarded_drivers[4];
static guint n_guarded_drivers;
static GMutex guarded_drivers_lock;

static ssize_t
guarded_read (mailstream_low *low, void *buf, size_t count)
{
	const GuardedDriver *g = (const GuardedDriver *) low->driver;
	if (read_budget == 0)
		return -1;
	if (read_budget > 0 && count > (size_t) read_budget)
		count = (size_t) read_budget;
	ssize_t n = g->original->mailstream_read (low, buf, count);
	if (n > 0 && read_budget > 0)
		read_budget -= n;
	return n == 0 && count > 0 ? -1 : n;
}

static void
guard_end_of_stream (mailstream *stream)
{
	mailstream_low *low = stream ? mailstream_get_low (stream) : NULL;
	if (!low || low->driver->mailstream_read == guarded_read)
		return;
	GuardedDriver *g = NULL;
	g_mutex_lock (&guarded_drivers_lock);
	for (guint i = 0; i < n_guarded_drivers && !g; i++)
		if (guarded_drivers[i].original == low->driver)
			g = &guarded_drivers[i];
	if (!g && n_guarded_drivers < G_N_ELEMENTS (guarded_drivers)) {
		g = &guarded_drivers[n_guarded_drivers++];
		g->original = low->driver;
		g->guarded = *low->driver;
		g->guarded.mailstream_read = guarded_read;
	}
	g_mutex_unlock (&guarded_drivers_lock);
	if (g)
		low->driver = &g->guarded;
}

static gboolean
log_in (Mailbox *mb, GError **error)
{
	char *password = read_password (mb, error);
	int r;

	if (!password)
		return FALSE;
	/* after STARTTLS, which replaces the stream's driver */
	guard_end_of_stream (mb->imap->imap_stream);
	if (mb->conf->auth && !g_ascii_strcasecmp (mb->conf->auth, "plain"))
		r = mailimap_authenticate (mb->imap, "PLAIN", mb->host, NULL, NULL, mb->conf->user, mb->conf->user,
		                           password, NULL);
	else if (mb->conf->auth && !g_ascii_strcasecmp (mb->conf->auth, "xoauth2"))
		/* the file holds an access token, read again at every login so
		 * that whatever refreshes it need not restart the desk */
		r = mailimap_oauth2_authenticate (mb->imap, mb->conf->user, password);
	else
		r = mailimap_login (mb->imap, mb->conf->user, password);
	md_password_free (password);
	if (r == MAILIMAP_ERROR_LOGIN || r == MAILIMAP_ERROR_SASL) {
		const char *said = mb->imap->imap_response;
		g_set_error (error, MD_ERROR, MD_ERROR_DENIED, "%s: login as %s refused by %s%s%s", mb->label,
		             mb->conf->user, mb->host, said && *said ? ": " : "", said && *said ? said : "");
		return FALSE;
	}
	if (!imap_ok (r))
		return imap_failed (mb, r, "login", error);
	return refresh_capabilities (mb, error);
}

/* A mailbox name as IMAP spells it on the wire: modified UTF-7
 * (RFC 3501 5.1.3), which glibc's iconv has as UTF-7-IMAP (2.36 on).
 * Without it the name goes as written, and a server that refuses it
 * leaves the message flagged where it is (file_to).  Free with g_free. */
static char *
mailbox_wire_name (const char *utf8)
{
	char *wire = g_convert (utf8, -1, "UTF-7-IMAP", "UTF-8", NULL, NULL, NULL);
	return wire ? wire : g_strdup (utf8);
}

static gboolean
select_mailbox (Mailbox *mb, GError **error)
{
	g_autofree char *wire = mailbox_wire_name (mb->mailbox);
	int r = mailimap_select (mb->imap, wire);
	if (r == MAILIMAP_ERROR_SELECT) {
		const char *said = mb->imap->imap_response;
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: cannot select mailbox %s%s%s", mb->label,
		             mb->mailbox, said && *said ? ": " : "", said && *said ? said : "");
		return FALSE;
	}
	if (!imap_ok (r))
		return imap_failed (mb, r, "SELECT", error);
	return TRUE;
}

/* The folders we file into; "already exists" is the usual answer. */
static void
create_folders (Mailbox *mb)
{
	const char *folders[] = { mb->conf->processed_folder, mb->conf->failed_folder };
	for (gsize i = 0; i < G_N_ELEMENTS (folders); i++)
		if (folders[i] && *folders[i]) {
			g_autofree char *folder = mailbox_wire_name (folders[i]);
			mailimap_create (mb->imap, folder);
		}
}

/* LOGOUT only on a healthy connection: on a broken one it would wait
 * for the network timeout. */
static void
mailbox_disconnect (Mailbox *mb, gboolean log_out)
{
	if (mb->imap) {
		if (log_out && mb->imap->imap_stream && !mailbox_stopping (mb))
			mailimap_logout (mb->imap);
		publish_fd (mb, -1);
		mailimap_free (mb->imap);
		mb->imap = NULL;
	}
	g_clear_pointer (&mb->store, md_store_close);
}

static gboolean
mailbox_connect (Mailbox *mb, GError **error)
{
	budget_reads (READ_BUDGET);
	if (!open_connection (mb, error) || !log_in (mb, error) || !select_mailbox (mb, error))
		return FALSE;
	create_folders (mb);
	mb->has_idle = mailimap_has_idle (mb->imap);
	mb->has_move = mailimap_has_extension (mb->imap, "MOVE");
	mb->has_uidplus = mailimap_has_extension (mb->imap, "UIDPLUS");
	if (!mb->store && !(mb->store = md_desk_open_store (mb->desk, FALSE, error)))
		return FALSE;
	return TRUE;
}

/* ---- finding new mail ---- */

static gboolean
flags_have_deleted (struct mailimap_msg_att_dynamic *dyn)
{
	for (clistiter *it = dyn && dyn->att_list ? clist_begin (dyn->att_list) : NULL; it; it = clist_next (it)) {
		struct mailimap_flag_fetch *f = clist_content (it);
		if (f->fl_type == MAILIMAP_FLAG_FETCH_OTHER && f->fl_flag && f->fl_flag->fl_type == MAILIMAP_FLAG_DELETED)
			return TRUE;
	}
	return FALSE;
}

static gint
pending_cmp (gconstpointer a, gconstpointer b)
{
	guint32 ua = ((const Pending *) a)->uid, ub = ((const Pending *) b)->uid;
	return ua < ub ? -1 : ua > ub;
}

/* The messages above LAST_UID are the last ones by message number:
 * UIDs rise with message numbers (RFC 3501 2.3.1.1).  Listing them as
 * "UID FETCH last+1:*" would have the server name every one at once, and
 * libetpan hold the whole answer: on a first run over a mailbox of
 * millions (or after a UIDVALIDITY change) that is hundreds of bytes a
 * message.  So the first new message's number is found with small
 * "FETCH n (UID)" probes, and the listing names at most BATCH_MAX
 * messages from there.  Message numbers hold still meanwhile: a server
 * sends no EXPUNGE while no command runs, nor during FETCH (unlike
 * UID FETCH; RFC 3501 7.4.1). */

/* FETCH, or UID FETCH when BY_UID, of TYPE for SET (both freed here);
 * *RESULT_R the responses, for mailimap_fetch_list_free.  FALSE with
 * ERROR set, naming WHAT, when the command failed. */
static gboolean
fetch_items (Mailbox *mb, gboolean by_uid, struct mailimap_set *set, struct mailimap_fetch_type *type,
             const char *what, clist **result_r, GError **error)
{
	int r = by_uid ? mailimap_uid_fetch (mb->imap, set, type, result_r)
	               : mailimap_fetch (mb->imap, set, type, result_r);
	mailimap_fetch_type_free (type);
	mailimap_set_free (set);
	if (!imap_ok (r))
		return imap_failed (mb, r, what, error);
	return TRUE;
}

/* FETCH SEQ (UID): the UID of message SEQ. */
static gboolean
uid_at (Mailbox *mb, guint32 seq, guint32 *uid_r, GError **error)
{
	struct mailimap_set *set = mailimap_set_new_single (seq);
	struct mailimap_fetch_type *type = mailimap_fetch_type_new_fetch_att (mailimap_fetch_att_new_uid ());
	clist *result = NULL;
	g_autofree char *what = g_strdup_printf ("FETCH %u (UID)", seq);
	if (!fetch_items (mb, FALSE, set, type, what, &result, error))
		return FALSE;
	*uid_r = 0;
	/* unsolicited FETCH responses for other messages may come along */
	for (clistiter *it = clist_begin (result); it && !*uid_r; it = clist_next (it)) {
		struct mailimap_msg_att *att = clist_content (it);
		if (att->att_number != seq)
			continue;
		for (clistiter *i = clist_begin (att->att_list); i; i = clist_next (i)) {
			struct mailimap_msg_att_item *item = clist_content (i);
			if (item->att_type == MAILIMAP_MSG_ATT_ITEM_STATIC &&
			    item->att_data.att_static->att_type == MAILIMAP_MSG_ATT_UID)
				*uid_r = item->att_data.att_static->att_data.att_uid;
		}
	}
	mailimap_fetch_list_free (result);
	if (!*uid_r) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: the server named no UID for message %u", mb->label, seq);
		return FALSE;
	}
	return TRUE;
}

/* *SEQ_R: the number of the first of the N messages whose UID is above
 * LAST_UID, N + 1 when none is.  New mail sits at the end, so the search
 * gallops back from the last message (n, n-1, n-3, n-7 ...) and then
 * halves the gap: a handful of probes when a few messages are new, about
 * 2 log2(N) when all of them are. */
static gboolean
first_new (Mailbox *mb, guint32 n, guint32 last_uid, guint32 *seq_r, GError **error)
{
	guint32 uid = 0;

	if (last_uid == 0 || n == 0) {
		*seq_r = 1;
		return TRUE;
	}
	if (!uid_at (mb, n, &uid, error))
		return FALSE;
	if (uid <= last_uid) {
		*seq_r = n + 1;
		return TRUE;
	}
	guint32 hi = n, lo = 0;  /* UID(hi) > last_uid; UID(lo) <= last_uid, 0 before the first */
	for (guint64 step = 1; hi > 1; step *= 2) {
		guint32 probe = step < hi ? hi - (guint32) step : 1;
		if (!uid_at (mb, probe, &uid, error))
			return FALSE;
		if (uid <= last_uid) {
			lo = probe;
			break;
		}
		hi = probe;
	}
	while (hi - lo > 1) {
		guint32 mid = lo + (hi - lo) / 2;
		if (!uid_at (mb, mid, &uid, error))
			return FALSE;
		if (uid > last_uid)
			hi = mid;
		else
			lo = mid;
	}
	*seq_r = hi;
	return TRUE;
}

/* The messages above LAST_UID, lowest first, at most BATCH_MAX. */
static GArray *
list_new (Mailbox *mb, guint32 last_uid, GError **error)
{
	/* EXISTS as libetpan keeps it: set by SELECT and every EXISTS since,
	 * one less for every EXPUNGE */
	guint32 n = mb->imap->imap_selection_info ? mb->imap->imap_selection_info->sel_exists : 0;
	GArray *pending = g_array_new (FALSE, TRUE, sizeof (Pending));
	guint32 first = 0;

	if (n == 0)
		return pending;
	if (!first_new (mb, n, last_uid, &first, error)) {
		g_array_free (pending, TRUE);
		return NULL;
	}
	if (first > n)
		return pending;
	/* from the message before the first new one: a check that none was missed */
	guint32 from = first > 1 ? first - 1 : 1;
	guint32 to = (guint32) MIN ((guint64) first + BATCH_MAX - 1, (guint64) n);
	struct mailimap_set *set = mailimap_set_new_interval (from, to);
	struct mailimap_fetch_type *type = mailimap_fetch_type_new_fetch_att_list_empty ();
	clist *result = NULL;

	mailimap_fetch_type_new_fetch_att_list_add (type, mailimap_fetch_att_new_uid ());
	mailimap_fetch_type_new_fetch_att_list_add (type, mailimap_fetch_att_new_rfc822_size ());
	mailimap_fetch_type_new_fetch_att_list_add (type, mailimap_fetch_att_new_flags ());
	g_autofree char *what = g_strdup_printf ("FETCH %u:%u of new messages", from, to);
	if (!fetch_items (mb, FALSE, set, type, what, &result, error)) {
		g_array_free (pending, TRUE);
		return NULL;
	}

	gboolean missed = FALSE;
	for (clistiter *it = clist_begin (result); it; it = clist_next (it)) {
		struct mailimap_msg_att *att = clist_content (it);
		Pending p = { 0 };
		if (att->att_number < from || att->att_number > to)
			continue;  /* unsolicited, for another message */
		for (clistiter *i = clist_begin (att->att_list); i; i = clist_next (i)) {
			struct mailimap_msg_att_item *item = clist_content (i);
			if (item->att_type == MAILIMAP_MSG_ATT_ITEM_DYNAMIC) {
				p.deleted = flags_have_deleted (item->att_data.att_dyn);
			} else if (item->att_type == MAILIMAP_MSG_ATT_ITEM_STATIC) {
				struct mailimap_msg_att_static *st = item->att_data.att_static;
				if (st->att_type == MAILIMAP_MSG_ATT_UID)
					p.uid = st->att_data.att_uid;
				else if (st->att_type == MAILIMAP_MSG_ATT_RFC822_SIZE)
					p.size = st->att_data.att_rfc822_size;
			}
		}
		if (att->att_number < first && p.uid > last_uid)
			missed = TRUE;
		if (p.uid > last_uid)
			g_array_append_val (pending, p);
	}
	mailimap_fetch_list_free (result);
	if (missed) {
		/* the numbers moved under us (a server that breaks 7.4.1):
		 * taking these would skip the ones before them for good */
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: the mailbox changed while it was listed", mb->label);
		g_array_free (pending, TRUE);
		return NULL;
	}
	g_array_sort (pending, pending_cmp);
	/* one message answered twice (a solicited and an unsolicited FETCH) */
	guint kept = 0;
	for (guint i = 0; i < pending->len; i++)
		if (kept == 0 || g_array_index (pending, Pending, kept - 1).uid != g_array_index (pending, Pending, i).uid)
			g_array_index (pending, Pending, kept++) = g_array_index (pending, Pending, i);
	g_array_set_size (pending, kept);
	return pending;
}

/* ---- one message ---- */

/* Where the pieces of a fetched message go (the spool, a checksum):
 * FALSE with ERROR set stops the fetch. */
typedef gboolean (*PieceSink) (gpointer sink, const char *data, gsize len, GError **error);

/* UID FETCH P->uid BODY.PEEK[]<OFFSET.FETCH_CHUNK> into PUT; *GOT_R:
 * bytes the server sent (fewer than asked at the end of the message).
 * libetpan hands over the literal in memory; the read budget bounds it
 * by P->size, checked against max_message_size before. */
static gboolean
fetch_chunk (Mailbox *mb, const Pending *p, guint32 offset, PieceSink put, gpointer sink, gsize *got_r,
             GError **error)
{
	guint32 uid = p->uid;
	struct mailimap_set *set = mailimap_set_new_single (uid);
	struct mailimap_fetch_type *type = mailimap_fetch_type_new_fetch_att_list_empty ();
	clist *result = NULL;

	mailimap_fetch_type_new_fetch_att_list_add (type, mailimap_fetch_att_new_uid ());
	mailimap_fetch_type_new_fetch_att_list_add (
		type, mailimap_fetch_att_new_body_peek_section_partial (mailimap_section_new (NULL), offset, FETCH_CHUNK));
	/* A server that ignores the range sends the whole message: as much
	 * as its RFC822.SIZE said (checked against max_message_size), not more. */
	budget_reads ((gint64) MAX (FETCH_CHUNK, offset == 0 ? p->size : 0) + READ_SLACK);
	g_autofree char *what = g_strdup_printf ("UID FETCH %u BODY.PEEK[]<%u.%u>", uid, offset, FETCH_CHUNK);
	if (!fetch_items (mb, TRUE, set, type, what, &result, error))
		return FALSE;
	budget_reads (READ_BUDGET);

	const char *body = NULL;
	size_t body_len = 0;
	for (clistiter *it = clist_begin (result); it && !body; it = clist_next (it)) {
		struct mailimap_msg_att *att = clist_content (it);
		guint32 got_uid = 0;
		const char *got_body = NULL;
		size_t got_len = 0;
		for (clistiter *i = clist_begin (att->att_list); i; i = clist_next (i)) {
			struct mailimap_msg_att_item *item = clist_content (i);
			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
				continue;
			struct mailimap_msg_att_static *st = item->att_data.att_static;
			if (st->att_type == MAILIMAP_MSG_ATT_UID)
				got_uid = st->att_data.att_uid;
			else if (st->att_type == MAILIMAP_MSG_ATT_BODY_SECTION && st->att_data.att_body_section) {
				got_body = st->att_data.att_body_section->sec_body_part;
				got_len = st->att_data.att_body_section->sec_length;
			}
		}
		/* unsolicited FETCH responses for other messages may come along */
		if (got_uid == uid && got_body) {
			body = got_body;
			body_len = got_len;
		}
	}

	gboolean ok = FALSE;
	if (!body && offset == 0)
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: the server returned no body for UID %u", mb->label, uid);
	else
		ok = !body_len || put (sink, body, body_len, error);
	*got_r = body ? body_len : 0;
	mailimap_fetch_list_free (result);
	return ok;
}

/* The whole of message P into PUT, in pieces of FETCH_CHUNK: libetpan
 * holds a whole literal in memory, and a message may be tens of
 * megabytes (or claim to be smaller than it is). */
static gboolean
fetch_whole (Mailbox *mb, const Pending *p, PieceSink put, gpointer sink, GError **error)
{
	for (guint32 offset = 0;; offset += FETCH_CHUNK) {
		gsize got = 0;
		if (!fetch_chunk (mb, p, offset, put, sink, &got, error))
			return FALSE;
		/* more than asked for: the range was ignored, that was all of it */
		if (got > FETCH_CHUNK && offset > 0) {
			g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: uid %u: the server answered a partial FETCH at "
			             "offset %u with %zu bytes", mb->label, p->uid, offset, got);
			return FALSE;
		}
		if (got != FETCH_CHUNK)
			return TRUE;
	}
}

static gboolean
put_spool (gpointer sink, const char *data, gsize len, GError **error)
{
	return md_spool_writer_write (sink, data, len, error);
}

/* Fetches message P with BODY.PEEK[] into the spool, which refuses what
 * passes max_message_size as it arrives. */
static gboolean
fetch_to_spool (Mailbox *mb, const Pending *p, char **sha_r, gint64 *size_r, GError **error)
{
	MdSpoolWriter *w = md_spool_writer_new (mb->desk->spool, MD_SPOOL_RAW, mb->desk->conf->max_message_size, error);
	if (!w)
		return FALSE;
	if (!fetch_whole (mb, p, put_spool, w, error)) {
		if (read_budget == 0)
			mb->overflowed_uid = p->uid;
		md_spool_writer_abort (w);
		return FALSE;
	}
	*size_r = md_spool_writer_size (w);
	if (*size_r == 0) {
		md_spool_writer_abort (w);
		g_set_error (error, MD_ERROR, MD_ERROR_EMPTY, "empty message refused");
		return FALSE;
	}
	return md_spool_writer_commit (w, sha_r, error);
}

/* Test-only fault hook: MAILDESK_IMAP_CRASH_AFTER=POINT makes the
 * process die there, so the tests can prove a rerun files a message
 * exactly once: "commit" right after an ingest committed (before the
 * message is filed), "copy" once the server answered a UID COPY (before
 * the \Deleted flag), "move" once it answered a UID MOVE (before the
 * mailbox's last UID advances). */
static void
crash_hook (const char *point)
{
	const char *v = g_getenv ("MAILDESK_IMAP_CRASH_AFTER");
	if (v && !strcmp (v, point))
		_exit (MD_EX_SOFTWARE);
}

static struct mailimap_set *
uid_set (guint32 uid)
{
	return mailimap_set_new_single (uid);
}

static gboolean
add_flag (Mailbox *mb, guint32 uid, struct mailimap_flag *flag, GError **error)
{
	struct mailimap_set *set = uid_set (uid);
	struct mailimap_flag_list *flags = mailimap_flag_list_new_empty ();
	mailimap_flag_list_add (flags, flag);
	struct mailimap_store_att_flags *store = mailimap_store_att_flags_new_add_flags_silent (flags);
	int r = mailimap_uid_store (mb->imap, set, store);
	mailimap_store_att_flags_free (store);
	mailimap_set_free (set);
	if (!imap_ok (r)) {
		g_autofree char *what = g_strdup_printf ("UID STORE %u +FLAGS", uid);
		return imap_failed (mb, r, what, error);
	}
	return TRUE;
}

/* Whether R is the server's NO or BAD rather than trouble on the way. */
static gboolean
server_refused (int r)
{
	return r != MAILIMAP_ERROR_STREAM && r != MAILIMAP_ERROR_CONNECTION_REFUSED && r != MAILIMAP_ERROR_SSL &&
	       r != MAILIMAP_ERROR_PARSE && r != MAILIMAP_ERROR_MEMORY && r != MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION;
}

/* A command the server refused (a MOVE or COPY to a folder it will not
 * make, a quota, a SEARCH it does not take): an MD_ERROR_DENIED error,
 * which the caller can work around. */
static gboolean
move_refused (Mailbox *mb, int r, const char *what, GError **error)
{
	imap_failed (mb, r, what, error);
	if (server_refused (r) && error && *error)
		(*error)->code = MD_ERROR_DENIED;
	return FALSE;
}

/* \Deleted, then UID EXPUNGE when the server has UIDPLUS: the end of a
 * move without MOVE, once the copy is made. */
static gboolean
delete_copied (Mailbox *mb, guint32 uid, GError **error)
{
	if (!add_flag (mb, uid, mailimap_flag_new_deleted (), error))
		return FALSE;
	/* Without UIDPLUS a plain EXPUNGE would also remove what others
	 * flagged \Deleted; leave ours flagged (it is skipped from now on). */
	if (!mb->has_uidplus)
		return TRUE;
	struct mailimap_set *set = uid_set (uid);
	int r = mailimap_uid_expunge (mb->imap, set);
	mailimap_set_free (set);
	if (!imap_ok (r)) {
		g_autofree char *what = g_strdup_printf ("UID EXPUNGE %u", uid);
		return imap_failed (mb, r, what, error);
	}
	return TRUE;
}

/* MOVE when the server has it, else COPY + \Deleted + UID EXPUNGE. */
static gboolean
move_to (Mailbox *mb, guint32 uid, const char *folder, GError **error)
{
	g_autofree char *wire = mailbox_wire_name (folder);
	struct mailimap_set *set = uid_set (uid);
	int r = mb->has_move ? mailimap_uid_move (mb->imap, set, wire) : mailimap_uid_copy (mb->imap, set, wire);

	mailimap_set_free (set);
	if (!imap_ok (r)) {
		g_autofree char *what = g_strdup_printf ("UID %s %u to %s", mb->has_move ? "MOVE" : "COPY", uid, folder);
		return move_refused (mb, r, what, error);
	}
	crash_hook (mb->has_move ? "move" : "copy");
	return mb->has_move || delete_copied (mb, uid, error);
}

/* ---- a copy an earlier session left ---- */

/* Without MOVE, filing is UID COPY, then \Deleted, then UID EXPUNGE: a
 * crash or a dropped connection after the COPY leaves the message in
 * both places, and the next session finds it in the mailbox again.
 * Ingest knows it (a duplicate: no second ticket), but copying it again
 * would put a second copy in processed_folder, each time this happens.
 * So for a duplicate, and only then, processed_folder is looked at
 * first: EXAMINE it; UID SEARCH it for messages of exactly the same
 * size and, when the message has one, the same Message-ID (from its
 * ENVELOPE); fetch the newest COPIES_MAX of those and compare their
 * SHA-256 with the spooled message's; SELECT the mailbox again.  The
 * same bytes there mean our COPY went through: only \Deleted (and UID
 * EXPUNGE) are left to do.  No copy, only lookalikes (the same
 * Message-ID, other bytes: a second delivery), or a folder or search the
 * server refuses: the message is copied, as before; a second copy is the
 * lesser harm beside none.  The same holds with and without UIDPLUS.
 * A refused message is looked for in failed_folder the same way, every
 * time (ingest keeps nothing of it to tell a second try by): refusals
 * are rare, and one of its size alone (over max_message_size, never
 * fetched) is fetched through a checksum only when a lookalike is there.
 *
 * Cost: four commands and a download of each lookalike (usually one,
 * the copy itself), on the rare path only (a duplicate: after an
 * interruption, or mail that also came another way); a message seen
 * for the first time is filed as before.  What was not
 * chosen: a keyword set before the COPY only moves the window (a crash
 * between the mark and the COPY would then expunge the message with no
 * copy anywhere); UIDPLUS's COPYUID answer is lost with the connection
 * in just the case that matters (a crash between the COPY and its
 * answer), and not every server has it; a STATUS UIDNEXT of the folder
 * before each COPY costs a round trip for every message.  With MOVE
 * there is nothing to look for: it is one command, and RFC 6851 asks the
 * server to leave each message moved or untouched, never in both
 * mailboxes; a session that ends before the answer finds the message
 * gone, or still there to move. */

/* What can go in a SEARCH without a CHARSET: US-ASCII, one line. */
static gboolean
searchable (const char *text)
{
	gsize n = strlen (text);
	if (n == 0 || n > 998)
		return FALSE;
	for (const char *c = text; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return FALSE;
	return TRUE;
}

/* *ID_R: the Message-ID of UID as the server's ENVELOPE has it, NULL
 * when it has none a SEARCH can name.  Free with g_free. */
static gboolean
envelope_message_id (Mailbox *mb, guint32 uid, char **id_r, GError **error)
{
	struct mailimap_set *set = uid_set (uid);
	struct mailimap_fetch_type *type = mailimap_fetch_type_new_fetch_att_list_empty ();
	clist *result = NULL;

	mailimap_fetch_type_new_fetch_att_list_add (type, mailimap_fetch_att_new_uid ());
	mailimap_fetch_type_new_fetch_att_list_add (type, mailimap_fetch_att_new_envelope ());
	g_autofree char *what = g_strdup_printf ("UID FETCH %u (ENVELOPE)", uid);
	if (!fetch_items (mb, TRUE, set, type, what, &result, error))
		return FALSE;
	*id_r = NULL;
	for (clistiter *it = clist_begin (result); it && !*id_r; it = clist_next (it)) {
		struct mailimap_msg_att *att = clist_content (it);
		guint32 got_uid = 0;
		const char *id = NULL;
		for (clistiter *i = clist_begin (att->att_list); i; i = clist_next (i)) {
			struct mailimap_msg_att_item *item = clist_content (i);
			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
				continue;
			struct mailimap_msg_att_static *st = item->att_data.att_static;
			if (st->att_type == MAILIMAP_MSG_ATT_UID)
				got_uid = st->att_data.att_uid;
			else if (st->att_type == MAILIMAP_MSG_ATT_ENVELOPE && st->att_data.att_env)
				id = st->att_data.att_env->env_message_id;
		}
		/* unsolicited FETCH responses for other messages may come along */
		if (got_uid == uid && id && searchable (id))
			*id_r = g_strdup (id);
	}
	mailimap_fetch_list_free (result);
	return TRUE;
}

static gint
uid_cmp_newest_first (gconstpointer a, gconstpointer b)
{
	guint32 ua = *(const guint32 *) a, ub = *(const guint32 *) b;
	return ua > ub ? -1 : ua < ub;
}

/* The UIDs in the selected folder of messages of P's size and, unless
 * ID is NULL, Message-ID ID: the newest COPIES_MAX. */
static GArray *
search_lookalikes (Mailbox *mb, const Pending *p, const char *id, GError **error)
{
	struct mailimap_search_key *key = mailimap_search_key_new_multiple_empty ();
	clist *result = NULL;

	/* LARGER and SMALLER are strict (RFC 3501 6.4.4): exactly p->size */
	mailimap_search_key_multiple_add (key, mailimap_search_key_new_larger (p->size - 1));
	mailimap_search_key_multiple_add (key, mailimap_search_key_new_smaller (p->size + 1));
	if (id)  /* libetpan frees both strings with free() */
		mailimap_search_key_multiple_add (key, mailimap_search_key_new_header (strdup ("Message-ID"), strdup (id)));
	int r = mailimap_uid_search (mb->imap, NULL, key, &result);
	mailimap_search_key_free (key);
	if (!imap_ok (r)) {
		g_autofree char *what = g_strdup_printf ("UID SEARCH for uid %u's copy", p->uid);
		move_refused (mb, r, what, error);
		return NULL;
	}
	GArray *uids = g_array_new (FALSE, FALSE, sizeof (guint32));
	for (clistiter *it = clist_begin (result); it; it = clist_next (it)) {
		guint32 uid = *(const uint32_t *) clist_content (it);
		g_array_append_val (uids, uid);
	}
	mailimap_search_result_free (result);
	g_array_sort (uids, uid_cmp_newest_first);
	if (uids->len > COPIES_MAX)
		g_array_set_size (uids, COPIES_MAX);
	return uids;
}

static gboolean
put_checksum (gpointer sink, const char *data, gsize len, GError **error)
{
	(void) error;
	g_checksum_update (sink, (const guchar *) data, len);
	return TRUE;
}

/* *SHA_R: the SHA-256 (hex) of message UID of the selected folder, of
 * P's size, streamed from the server.  Free with g_free. */
static gboolean
fetched_sha (Mailbox *mb, const Pending *p, guint32 uid, char **sha_r, GError **error)
{
	g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
	Pending copy = { .uid = uid, .size = p->size };

	if (!fetch_whole (mb, &copy, put_checksum, sum, error))
		return FALSE;
	*sha_r = g_strdup (g_checksum_get_string (sum));
	return TRUE;
}

/* EXAMINEs FOLDER (read-only); *SHAS_R the SHA-256 of each message
 * there that looks like P (its size; Message-ID ID, may be NULL), up to
 * the first that is SHA when it is known. */
static gboolean
look_in (Mailbox *mb, const char *folder, const Pending *p, const char *id, const char *sha, GPtrArray **shas_r,
         GError **error)
{
	g_autofree char *wire = mailbox_wire_name (folder);
	int r = mailimap_examine (mb->imap, wire);
	if (!imap_ok (r)) {
		g_autofree char *what = g_strdup_printf ("EXAMINE %s", folder);
		return move_refused (mb, r, what, error);
	}
	g_autoptr (GArray) uids = search_lookalikes (mb, p, id, error);
	if (!uids)
		return FALSE;
	g_autoptr (GPtrArray) shas = g_ptr_array_new_with_free_func (g_free);
	gboolean found = FALSE;
	for (guint i = 0; i < uids->len && !found; i++) {
		char *copy_sha = NULL;
		if (!fetched_sha (mb, p, g_array_index (uids, guint32, i), &copy_sha, error))
			return FALSE;
		g_ptr_array_add (shas, copy_sha);
		found = sha && !g_ascii_strcasecmp (copy_sha, sha);
	}
	*shas_r = g_steal_pointer (&shas);
	return TRUE;
}

/* SELECT the polled mailbox again after looking elsewhere: its UIDs must
 * still name the messages they named (UIDVALIDITY VALIDITY). */
static gboolean
reselect (Mailbox *mb, guint32 validity, GError **error)
{
	g_autofree char *wire = mailbox_wire_name (mb->mailbox);
	int r = mailimap_select (mb->imap, wire);
	if (!imap_ok (r)) {
		g_autofree char *what = g_strdup_printf ("SELECT %s again", mb->mailbox);
		return imap_failed (mb, r, what, error);
	}
	guint32 now = mb->imap->imap_selection_info ? mb->imap->imap_selection_info->sel_uidvalidity : 0;
	if (now != validity) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: UIDVALIDITY of %s changed from %u to %u during the "
		             "session", mb->label, mb->mailbox, validity, now);
		return FALSE;
	}
	return TRUE;
}

/* *FOUND_R: whether FOLDER holds message P (SHA-256 SHA) already, copied
 * there by a session that ended before its \Deleted (see above).  SHA
 * NULL: P was refused unread (for its size); its bytes are fetched, a
 * stream through a checksum, only when FOLDER has a lookalike.  The
 * polled mailbox is selected again afterwards: a failed EXAMINE leaves
 * none selected (RFC 3501 6.3.1). */
static gboolean
already_filed (Mailbox *mb, const Pending *p, const char *folder, const char *sha, gboolean *found_r,
               GError **error)
{
	guint32 validity = mb->imap->imap_selection_info ? mb->imap->imap_selection_info->sel_uidvalidity : 0;
	g_autofree char *id = NULL, *fetched = NULL;
	g_autoptr (GPtrArray) copies = NULL;
	g_autoptr (GError) local = NULL;

	*found_r = FALSE;
	if (p->size == 0 || p->size == G_MAXUINT32)
		return TRUE;  /* no SEARCH names exactly that size */
	if (!envelope_message_id (mb, p->uid, &id, error))
		return FALSE;
	if (!look_in (mb, folder, p, id, sha, &copies, &local)) {
		if (!g_error_matches (local, MD_ERROR, MD_ERROR_DENIED)) {
			g_propagate_error (error, g_steal_pointer (&local));
			return FALSE;
		}
		g_warning ("%s; copying uid %u to %s without knowing whether a copy is there already", local->message,
		           p->uid, folder);
	}
	if (!reselect (mb, validity, error))
		return FALSE;
	if (!copies || copies->len == 0)
		return TRUE;
	if (!sha && !fetched_sha (mb, p, p->uid, &fetched, error)) {
		if (read_budget == 0)
			mb->overflowed_uid = p->uid;  /* as fetch_to_spool: copied unlooked next time */
		return FALSE;
	}
	for (guint i = 0; i < copies->len && !*found_r; i++)
		*found_r = !g_ascii_strcasecmp (copies->pdata[i], sha ? sha : fetched);
	return TRUE;
}

/* To FOLDER; when the server refuses that (the folder cannot be made,
 * a quota), the message stays, \Flagged for a human, and the mailbox
 * goes on: one message must not hold up every one behind it. */
static gboolean
file_to (Mailbox *mb, guint32 uid, const char *folder, GError **error)
{
	GError *local = NULL;
	if (move_to (mb, uid, folder, &local))
		return TRUE;
	if (!g_error_matches (local, MD_ERROR, MD_ERROR_DENIED)) {
		g_propagate_error (error, local);
		return FALSE;
	}
	g_warning ("%s; uid %u stays in %s, flagged", local->message, uid, mb->mailbox);
	g_error_free (local);
	return add_flag (mb, uid, mailimap_flag_new_flagged (), error);
}

/* To FOLDER, unless (without MOVE) a session that ended before its
 * \Deleted copied it there already: then only deleted (see
 * already_filed; SHA as there). */
static gboolean
file_once (Mailbox *mb, const Pending *p, const char *folder, const char *sha, GError **error)
{
	gboolean filed = FALSE;

	if (!mb->has_move && !already_filed (mb, p, folder, sha, &filed, error))
		return FALSE;
	if (!filed)
		return file_to (mb, p->uid, folder, error);
	g_message ("%s: uid %u: already in %s (copied by a session that ended before deleting it); deleting it "
	           "from %s", mb->label, p->uid, folder, mb->mailbox);
	return delete_copied (mb, p->uid, error);
}

/* Ingested: to processed_folder, or \Seen where it is.  KNOWN_SHA: the
 * message's SHA-256 when ingest had seen it before, else NULL: one seen
 * for the first time cannot have been copied already. */
static gboolean
file_processed (Mailbox *mb, const Pending *p, const char *known_sha, GError **error)
{
	const char *folder = mb->conf->processed_folder;

	if (!folder || !*folder)
		return add_flag (mb, p->uid, mailimap_flag_new_seen (), error);
	if (!known_sha)
		return file_to (mb, p->uid, folder, error);
	return file_once (mb, p, folder, known_sha, error);
}

/* Refused: to failed_folder, or \Flagged where it is; never deleted.
 * A refusal leaves no trace in the desk, so failed_folder is always
 * looked at first (without MOVE; SHA as in already_filed): else every
 * session ended between the COPY and the \Deleted would add one more
 * copy.  Not for a message that overflowed its announced size: fetched
 * again, it would end the session again. */
static gboolean
file_failed (Mailbox *mb, const Pending *p, const char *sha, GError **error)
{
	const char *folder = mb->conf->failed_folder;
	if (!folder || !*folder)
		return add_flag (mb, p->uid, mailimap_flag_new_flagged (), error);
	if (p->uid == mb->overflowed_uid)
		return file_to (mb, p->uid, folder, error);
	return file_once (mb, p, folder, sha, error);
}

/* Ingests one message and files it.  FALSE on trouble that must stop
 * the batch (temporary ingest failures, IMAP errors). */
static gboolean
handle_message (Mailbox *mb, const Pending *p, GError **error)
{
	g_autoptr (GError) refusal = NULL;
	g_autofree char *sha = NULL;
	gint64 size = 0;
	gint64 max = mb->desk->conf->max_message_size;

	if (max > 0 && (gint64) p->size > max) {
		g_set_error (&refusal, MD_ERROR, MD_ERROR_TOO_BIG, "message of %u bytes is over max_message_size (%"
		             G_GINT64_FORMAT ")", p->size, max);
	} else if (p->uid == mb->overflowed_uid) {
		/* Fetched again, it would end the session again: set aside,
		 * so the mail behind it goes on. */
		g_set_error (&refusal, MD_ERROR, MD_ERROR_TOO_BIG, "the server sent more of it than the %u bytes "
		             "it announced; fetch it by hand", p->size);
	} else if (fetch_to_spool (mb, p, &sha, &size, &refusal)) {
		MdIngestResult result = { 0 };
		MdEnvelope env = { NULL, NULL };
		if (md_ingest_one (mb->desk, mb->store, sha, size, &env, &result, &refusal)) {
			crash_hook ("commit");
			g_message ("%s: uid %u: %s", mb->label, p->uid,
			           result.duplicate ? "duplicate, already ingested" :
			           result.key ? result.key : "stored");
			g_free (result.key);
			/* \Deleted and seen before: ours, left by a crash before
			 * EXPUNGE or by a server without UIDPLUS; filed already.  A
			 * user's \Deleted mail that is new is ingested like any. */
			if (p->deleted && result.duplicate)
				return TRUE;
			return file_processed (mb, p, result.duplicate ? sha : NULL, error);
		}
	}
	if (md_error_is_temporary (refusal)) {
		g_propagate_error (error, g_steal_pointer (&refusal));
		return FALSE;
	}
	const char *folder = mb->conf->failed_folder;
	g_warning ("%s: uid %u refused: %s; %s %s", mb->label, p->uid, refusal->message,
	           folder && *folder ? "moving it to" : "flagging it", folder && *folder ? folder : "\\Flagged");
	return file_failed (mb, p, sha, error);
}

/* In a transaction of its own: in serve it then waits its turn behind
 * the LMTP writer's batch (turn.h) instead of polling for the lock. */
static gboolean
save_state (Mailbox *mb, guint32 uidvalidity, guint32 last_uid, GError **error)
{
	if (!md_store_begin (mb->store, error))
		return FALSE;
	if (!md_store_imap_state_set (mb->store, mb->state_key, uidvalidity, last_uid, error)) {
		md_store_rollback (mb->store);
		return FALSE;
	}
	return md_store_commit (mb->store, error);
}

/* Ingests everything new in the selected mailbox. */
static gboolean
fetch_new (Mailbox *mb, GError **error)
{
	guint32 uidvalidity = mb->imap->imap_selection_info ? mb->imap->imap_selection_info->sel_uidvalidity : 0;
	guint32 stored_validity = 0, last_uid = 0;

	if (!md_store_imap_state_get (mb->store, mb->state_key, &stored_validity, &last_uid, error))
		return FALSE;
	if (stored_validity != uidvalidity) {
		if (stored_validity)
			g_message ("%s: UIDVALIDITY changed from %u to %u: scanning %s again from the start", mb->label,
			           stored_validity, uidvalidity, mb->mailbox);
		last_uid = 0;
		if (!save_state (mb, uidvalidity, 0, error))
			return FALSE;
	}
	for (;;) {
		budget_reads (READ_BUDGET);
		g_autoptr (GArray) pending = list_new (mb, last_uid, error);
		if (!pending)
			return FALSE;
		if (pending->len == 0)
			return TRUE;
		for (guint i = 0; i < pending->len; i++) {
			const Pending *p = &g_array_index (pending, Pending, i);
			if (mailbox_stopping (mb))
				return TRUE;
			if (!handle_message (mb, p, error))
				return FALSE;
			last_uid = p->uid;
			if (!save_state (mb, uidvalidity, last_uid, error))
				return FALSE;
		}
	}
}

/* ---- waiting for mail ---- */

/* IDLE until the server says something, IDLE_MAX_S pass, or we stop. */
static gboolean
idle_wait (Mailbox *mb, GError **error)
{
	budget_reads (READ_BUDGET);
	int r = mailimap_idle (mb->imap);
	if (!imap_ok (r))
		return imap_failed (mb, r, "IDLE", error);
	if (mailstream_setup_idle (mb->imap->imap_stream) < 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_INTERNAL, "%s: cannot wait for IDLE", mb->label);
		return FALSE;
	}
	gint64 deadline = g_get_monotonic_time () + (gint64) IDLE_MAX_S * G_USEC_PER_SEC;
	gboolean broken = FALSE;
	/* data may already sit in libetpan's buffer, where poll() cannot see it */
	while (mb->imap->imap_stream->read_buffer_len == 0 && !mailbox_stopping (mb) &&
	       g_get_monotonic_time () < deadline) {
		r = mailstream_wait_idle (mb->imap->imap_stream, IDLE_SLICE_S);
		if (r == MAILSTREAM_IDLE_HASDATA || r == MAILSTREAM_IDLE_INTERRUPTED)
			break;
		if (r == MAILSTREAM_IDLE_ERROR || r == MAILSTREAM_IDLE_CANCELLED) {
			broken = TRUE;
			break;
		}
	}
	mailstream_unsetup_idle (mb->imap->imap_stream);
	if (broken) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "%s: connection lost while idling", mb->label);
		return FALSE;
	}
	r = mailimap_idle_done (mb->imap);
	if (!imap_ok (r))
		return imap_failed (mb, r, "IDLE DONE", error);
	return TRUE;
}

/* ---- fetch once ---- */

static gboolean
mailbox_fetch_once (Mailbox *mb, GError **error)
{
	gboolean ok = mailbox_connect (mb, error) && fetch_new (mb, error);
	mailbox_disconnect (mb, ok);
	if (ok || !mb->overflowed_uid)
		return ok;
	/* the message that ended the session is set aside on a second one */
	g_warning ("%s", (*error)->message);
	g_clear_error (error);
	ok = mailbox_connect (mb, error) && fetch_new (mb, error);
	mailbox_disconnect (mb, ok);
	return ok;
}

static void
imap_global_init (void)
{
	static gsize done = 0;
	if (g_once_init_enter (&done)) {
		mailstream_network_delay.tv_sec = NETWORK_TIMEOUT_S;
		mailstream_network_delay.tv_usec = 0;
		/* a server closing on us must be an error from write(), not death */
		signal (SIGPIPE, SIG_IGN);
		g_once_init_leave (&done, 1);
	}
}

static gboolean
needs_human (const GError *e)
{
	return e->domain == MD_ERROR && (e->code == MD_ERROR_CONFIG || e->code == MD_ERROR_DENIED);
}

gboolean
md_imap_fetch_once (MdDesk *desk, const char *name, GError **error)
{
	g_autoptr (GString) failures = g_string_new (NULL);
	int code = -1;
	gboolean found = FALSE;

	imap_global_init ();
	for (guint i = 0; i < desk->conf->imap->len; i++) {
		const MdImapConf *conf = desk->conf->imap->pdata[i];
		g_autoptr (GError) e = NULL;
		if (name && strcmp (name, conf->name))
			continue;
		found = TRUE;
		g_autoptr (Mailbox) mb = mailbox_new (desk, conf, &e);
		if (mb && mailbox_fetch_once (mb, &e))
			continue;
		g_string_append_printf (failures, "%s%s", failures->len ? "\n" : "", e->message);
		if (code < 0 || needs_human (e))
			code = needs_human (e) ? MD_ERROR_CONFIG : e->code;
	}
	if (name && !found) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "no [imap.%s] section in the configuration", name);
		return FALSE;
	}
	if (code >= 0) {
		g_set_error_literal (error, MD_ERROR, code, failures->str);
		return FALSE;
	}
	return TRUE;
}

/* ---- the poller threads ---- */

/* One connection's life: connect, then ingest and wait (IDLE) until an
 * error or stop; without IDLE, one pass.  TRUE when a pass completed. */
static gboolean
mailbox_session (Mailbox *mb, gboolean *served_r, GError **error)
{
	if (!mailbox_connect (mb, error))
		return FALSE;
	for (;;) {
		if (!fetch_new (mb, error))
			return FALSE;
		*served_r = TRUE;
		if (!mb->has_idle || mailbox_stopping (mb))
			return TRUE;
		if (!idle_wait (mb, error))
			return FALSE;
	}
}

static gpointer
mailbox_thread (gpointer data)
{
	Mailbox *mb = data;
	guint backoff = 0;

	while (!mailbox_stopping (mb)) {
		g_autoptr (GError) error = NULL;
		gboolean served = FALSE;
		gint64 started = g_get_monotonic_time ();
		gboolean ok = mailbox_session (mb, &served, &error);
		/* A session that got work done but fails again at once (a server
		 * that refuses IDLE, a proxy that drops idle connections) is
		 * trouble like any other: no fresh start at a second's wait. */
		gboolean lasted = g_get_monotonic_time () - started >= (gint64) STEADY_SESSION_S * G_USEC_PER_SEC;
		gboolean idled = mb->has_idle;
		mailbox_disconnect (mb, ok);
		if (mailbox_stopping (mb))
			break;
		if (ok) {
			backoff = 0;
			if (!idled && !mailbox_sleep (mb, mb->poll_interval_s))
				break;
			continue;
		}
		backoff = served && lasted ? BACKOFF_MIN_S : MIN (MAX (backoff * 2, BACKOFF_MIN_S), BACKOFF_MAX_S);
		g_warning ("%s; retrying in %us", error->message, backoff);
		if (!mailbox_sleep (mb, backoff))
			break;
	}
	return NULL;
}

MdImapPoller *
md_imap_start (MdDesk *desk, GError **error)
{
	MdImapPoller *poller = g_new0 (MdImapPoller, 1);
	poller->mailboxes = g_ptr_array_new_with_free_func ((GDestroyNotify) mailbox_free);

	imap_global_init ();
	for (guint i = 0; i < desk->conf->imap->len; i++) {
		Mailbox *mb = mailbox_new (desk, desk->conf->imap->pdata[i], error);
		if (!mb) {
			md_imap_stop (poller);
			return NULL;
		}
		g_ptr_array_add (poller->mailboxes, mb);
	}
	for (guint i = 0; i < poller->mailboxes->len; i++) {
		Mailbox *mb = poller->mailboxes->pdata[i];
		mb->thread = g_thread_new (mb->label, mailbox_thread, mb);
		g_message ("%s: polling %s on %s", mb->label, mb->mailbox, mb->host);
	}
	return poller;
}

void
md_imap_stop (MdImapPoller *poller)
{
	if (!poller)
		return;
	for (guint i = 0; i < poller->mailboxes->len; i++) {
		Mailbox *mb = poller->mailboxes->pdata[i];
		g_mutex_lock (&mb->lock);
		mb->stop = TRUE;
		if (mb->fd >= 0)
			shutdown (mb->fd, SHUT_RDWR);  /* wakes reads blocked in libetpan */
		g_cond_broadcast (&mb->wake);
		g_mutex_unlock (&mb->lock);
	}
	for (guint i = 0; i < poller->mailboxes->len; i++) {
		Mailbox *mb = poller->mailboxes->pdata[i];
		if (mb->thread)
			g_thread_join (mb->thread);
	}
	g_ptr_array_free (poller->mailboxes, TRUE);
	g_free (poller);
}
