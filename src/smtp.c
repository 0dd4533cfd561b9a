/* smtp.c - the SMTP client of the outbox: libcurl's SMTP engine driven
 * for one recipient at a time, the message streamed from the spool, and
 * the one place that decides whether a failure is temporary or permanent.
 *
 * curl tells a caller little about *which* reply failed a transfer, so
 * the protocol is watched through the debug callback: the verb of every
 * command sent (only the verb, so AUTH secrets are never kept) and the
 * latest reply of 400 or above with the command it answered.  A 5xx is
 * permanent only when it concerns the message: its recipient (RCPT) or
 * its content (DATA).  A 5xx to EHLO, AUTH or STARTTLS is the desk's
 * configuration or the relay's trouble, and so is one to MAIL, which
 * names nothing but the desk's own address: the mail is kept and
 * retried. */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "md.h"
#include "smtp.h"

#define CONNECT_TIMEOUT_S 10
/* Whole transfer: 5 minutes plus 1 s per 32 KiB, at most an hour (the
 * outbox's claim on a row outlasts this). */
#define TRANSFER_BASE_S 300
#define TRANSFER_BYTES_PER_S 32768
#define TRANSFER_MAX_S 3600
#define REPLY_MAX 1000
/* Stopping after the final "." waits this long for the server's answer:
 * it may have taken the message already, and an abort then sends it twice. */
#define STOP_REPLY_GRACE_S 5

typedef struct {
	FILE *file;
	gboolean last_was_cr;
	gboolean eof;       /* the whole message handed to curl */
	char in[16384];
	int errsv;
} Upload;

struct _MdSmtp {
	CURL *curl;
	char *url;
	char *user;
	char *password;      /* or the OAuth 2.0 access token */
	char *password_file;
	gboolean xoauth2;    /* PASSWORD is a bearer token, read again for every transfer */
	char *ca_file;
	const gint *cancel;
	char errbuf[CURL_ERROR_SIZE];

	/* protocol watch of the current transfer */
	char last_verb[16];
	gboolean in_auth;   /* between AUTH and its final reply: lines sent are secrets */
	GString *reply;     /* reply being read, lines joined by a space */
	int reply_code;
	char *failed_reply; /* latest complete reply >= 400 */
	char failed_verb[16];
	char *final_reply;  /* last complete reply */
	const Upload *upload;   /* of the current transfer */
	gint64 stop_seen_us;    /* when on_progress first saw *cancel */
};

const char *
md_smtp_outcome_name (MdSmtpOutcome outcome)
{
	switch (outcome) {
	case MD_SMTP_SENT:
		return "sent";
	case MD_SMTP_TEMPORARY:
		return "temporary";
	case MD_SMTP_PERMANENT:
		return "permanent";
	case MD_SMTP_UNREACHABLE:
		return "unreachable";
	}
	return "unknown";
}

static gsize
curl_init_once (void)
{
	static gsize done = 0;
	if (g_once_init_enter (&done))
		g_once_init_leave (&done, curl_global_init (CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : 2);
	return done;
}

static char *
read_password (const char *path, GError **error)
{
	GError *local = NULL;
	char *password = md_password_read (path, &local);
	if (!password) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "[smtp] %s", local->message);
		g_error_free (local);
	}
	return password;
}

static void
finish_reply (MdSmtp *s)
{
	char *text = g_strndup (s->reply->str, REPLY_MAX);
	/* the latest refusal: an EHLO refused and followed by a good HELO
	 * is not what failed the message */
	if (s->reply_code >= 400) {
		g_free (s->failed_reply);
		s->failed_reply = g_strdup (text);
		g_strlcpy (s->failed_verb, s->last_verb, sizeof s->failed_verb);
	}
	g_free (s->final_reply);
	s->final_reply = text;
	if (s->reply_code != 334)  /* RFC 4954: 334 asks for more */
		s->in_auth = FALSE;
	g_string_truncate (s->reply, 0);
	s->reply_code = 0;
}

/* One reply line "250-text" or "250 text" (RFC 5321 4.2.1). */
static void
watch_reply_line (MdSmtp *s, const char *line, gsize len)
{
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len < 3 || !g_ascii_isdigit (line[0]) || !g_ascii_isdigit (line[1]) || !g_ascii_isdigit (line[2]))
		return;
	s->reply_code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (s->reply->len)
		g_string_append_c (s->reply, ' ');
	if (s->reply->len < REPLY_MAX)
		g_string_append_len (s->reply, s->reply->len ? line + MIN (len, 4) : line,
		                     s->reply->len ? len - MIN (len, 4) : len);
	if (len == 3 || line[3] == ' ')
		finish_reply (s);
}

/* Remembers the verb of a command sent.  Only known verbs count: an
 * AUTH continuation line is credentials in base64 and is never kept,
 * not even in part. */
static void
watch_command (MdSmtp *s, const char *line, gsize len)
{
	if (s->in_auth)
		return;
	static const char *const verbs[] = { "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA",
	                                     "RSET", "NOOP", "QUIT" };
	for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++) {
		gsize n = strlen (verbs[i]);
		if (len >= n && !g_ascii_strncasecmp (line, verbs[i], n) &&
		    (len == n || line[n] == ' ' || line[n] == '\r' || line[n] == '\n')) {
			g_strlcpy (s->last_verb, verbs[i], sizeof s->last_verb);
			s->in_auth = !strcmp (verbs[i], "AUTH");
			return;
		}
	}
}

static int
on_debug (CURL *curl, curl_infotype type, char *data, size_t size, void *user)
{
	MdSmtp *s = user;
	(void) curl;
	if (type == CURLINFO_HEADER_IN) {
		const char *p = data, *end = data + size;
		while (p < end) {
			const char *nl = memchr (p, '\n', end - p);
			const char *stop = nl ? nl + 1 : end;
			watch_reply_line (s, p, stop - p);
			p = stop;
		}
	} else if (type == CURLINFO_HEADER_OUT) {
		watch_command (s, data, size);
	}
	return 0;
}

static int
on_progress (void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	MdSmtp *s = user;
	(void) dltotal, (void) dlnow, (void) ultotal, (void) ulnow;
	if (!s->cancel || !g_atomic_int_get (s->cancel))
		return 0;
	if (!s->upload || !s->upload->eof)
		return 1;
	gint64 now = g_get_monotonic_time ();
	if (!s->stop_seen_us)
		s->stop_seen_us = now;
	return now - s->stop_seen_us > STOP_REPLY_GRACE_S * G_USEC_PER_SEC;
}

/* Streams the file, turning a bare LF into CRLF; curl adds the dot
 * stuffing and the final ".".  curl's upload buffer is at least 16 KiB,
 * so half of it always holds a byte. */
static size_t
on_read (char *buf, size_t size, size_t nitems, void *user)
{
	Upload *u = user;
	size_t out = 0;
	size_t n = fread (u->in, 1, MIN (sizeof u->in, size * nitems / 2), u->file);

	if (n == 0 && ferror (u->file)) {
		u->errsv = errno ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	u->eof |= n == 0;
	for (size_t i = 0; i < n; i++) {
		char c = u->in[i];
		if (c == '\n' && !u->last_was_cr)
			buf[out++] = '\r';
		buf[out++] = c;
		u->last_was_cr = c == '\r';
	}
	return out;
}

gboolean
md_smtp_url_check (const char *url, GError **error)
{
	const char *rest = g_str_has_prefix (url, "smtp://") ? url + 7 : g_str_has_prefix (url, "smtps://") ? url + 8 : NULL;
	if (!rest) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "[smtp] url \"%s\" is not smtp:// or smtps://", url);
		return FALSE;
	}
	if (!*rest || *rest == '/' || *rest == ':') {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "[smtp] url \"%s\" names no host", url);
		return FALSE;
	}
	/* libcurl refuses such a url on every message; most often it is a
	 * trailing "# note", which GKeyFile keeps in the value. */
	for (const char *p = url; *p; p++) {
		if (g_ascii_isspace (*p) || g_ascii_iscntrl (*p)) {
			g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "[smtp] url \"%s\" has a blank in it (a comment goes "
			             "on a line of its own)", url);
			return FALSE;
		}
	}
	return TRUE;
}

static gboolean
is_xoauth2 (const MdConf *conf)
{
	return conf->smtp_auth && !g_ascii_strcasecmp (conf->smtp_auth, "xoauth2");
}

void
md_smtp_conf_check (const MdConf *conf, MdConfProblemFunc report, gpointer data)
{
	g_autoptr (GError) error = NULL;
	if (!md_smtp_url_check (conf->smtp_url ? conf->smtp_url : "", &error))
		report ("url", error->message, data);
	if (conf->smtp_user && *conf->smtp_user && !conf->smtp_password_file)
		report ("user", "[smtp] user is set but password_file is not", data);
	if (conf->smtp_auth && g_ascii_strcasecmp (conf->smtp_auth, "password") &&
	    g_ascii_strcasecmp (conf->smtp_auth, "xoauth2"))
		report ("auth", "[smtp] auth must be password or xoauth2", data);
	else if (is_xoauth2 (conf) && !(conf->smtp_user && *conf->smtp_user))
		report ("auth", "[smtp] auth = xoauth2 needs a user (the mailbox the token is for)", data);
	if (conf->smtp_from) {
		/* "Name <local@domain>" or a bare local@domain */
		const char *lt = strchr (conf->smtp_from, '<');
		const char *gt = lt ? strchr (lt, '>') : NULL;
		g_autofree char *addr = lt && gt ? g_strndup (lt + 1, (gsize) (gt - lt - 1)) : g_strstrip (g_strdup (conf->smtp_from));
		if ((lt && !gt) || !md_address_looks_valid (addr)) {
			g_autofree char *msg = g_strdup_printf ("[smtp] from \"%s\" is not Name <local@domain> or local@domain",
			                                        conf->smtp_from);
			report ("from", msg, data);
		}
	}
}

MdSmtp *
md_smtp_new (const MdConf *conf, GError **error)
{
	if (curl_init_once () != 1) {
		g_set_error (error, MD_ERROR, MD_ERROR_INTERNAL, "libcurl failed to initialise");
		return NULL;
	}
	const char *url = conf->smtp_url ? conf->smtp_url : "";
	if (!md_smtp_url_check (url, error))
		return NULL;
	g_autoptr (MdSmtp) s = g_new0 (MdSmtp, 1);
	s->url = g_strdup (url);
	s->user = g_strdup (conf->smtp_user);
	s->ca_file = g_strdup (conf->smtp_ca_file);
	s->reply = g_string_new (NULL);
	if (s->user && *s->user) {
		if (!conf->smtp_password_file) {
			g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "[smtp] user is set but password_file is not");
			return NULL;
		}
		s->password = read_password (conf->smtp_password_file, error);
		if (!s->password)
			return NULL;
		s->password_file = g_strdup (conf->smtp_password_file);
		s->xoauth2 = is_xoauth2 (conf);
	} else if (is_xoauth2 (conf)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "[smtp] auth = xoauth2 needs a user");
		return NULL;
	}
	s->curl = curl_easy_init ();
	if (!s->curl) {
		g_set_error (error, MD_ERROR, MD_ERROR_INTERNAL, "libcurl: cannot create a handle");
		return NULL;
	}
	return g_steal_pointer (&s);
}

void
md_smtp_free (MdSmtp *smtp)
{
	if (!smtp)
		return;
	if (smtp->curl)
		curl_easy_cleanup (smtp->curl);
	md_password_free (smtp->password);
	g_free (smtp->password_file);
	g_free (smtp->url);
	g_free (smtp->user);
	g_free (smtp->ca_file);
	if (smtp->reply)
		g_string_free (smtp->reply, TRUE);
	g_free (smtp->failed_reply);
	g_free (smtp->final_reply);
	g_free (smtp);
}

void
md_smtp_set_cancel (MdSmtp *smtp, const gint *cancel)
{
	smtp->cancel = cancel;
}

static void
watch_reset (MdSmtp *s)
{
	s->last_verb[0] = '\0';
	s->in_auth = FALSE;
	s->failed_verb[0] = '\0';
	g_string_truncate (s->reply, 0);
	s->reply_code = 0;
	g_clear_pointer (&s->failed_reply, g_free);
	g_clear_pointer (&s->final_reply, g_free);
	s->errbuf[0] = '\0';
	s->upload = NULL;
	s->stop_seen_us = 0;
}

static void
set_options (MdSmtp *s, const char *from, struct curl_slist *rcpts, Upload *u, gint64 size)
{
	CURL *c = s->curl;
	gint64 timeout = MIN (TRANSFER_BASE_S + size / TRANSFER_BYTES_PER_S, TRANSFER_MAX_S);

	curl_easy_reset (c);
	curl_easy_setopt (c, CURLOPT_URL, s->url);
	curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	/* STARTTLS when offered; with credentials, TLS or nothing */
	curl_easy_setopt (c, CURLOPT_USE_SSL, (long) (s->password ? CURLUSESSL_ALL : CURLUSESSL_TRY));
	if (s->ca_file)
		curl_easy_setopt (c, CURLOPT_CAINFO, s->ca_file);
	if (s->password && s->xoauth2) {
		curl_easy_setopt (c, CURLOPT_USERNAME, s->user);
		curl_easy_setopt (c, CURLOPT_XOAUTH2_BEARER, s->password);
		curl_easy_setopt (c, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
	} else if (s->password) {
		curl_easy_setopt (c, CURLOPT_USERNAME, s->user);
		curl_easy_setopt (c, CURLOPT_PASSWORD, s->password);
	}
	curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, (long) CONNECT_TIMEOUT_S);
	curl_easy_setopt (c, CURLOPT_TIMEOUT, (long) timeout);
	curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt (c, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt (c, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt (c, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt (c, CURLOPT_DEBUGDATA, s);
	curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt (c, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt (c, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt (c, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt (c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt (c, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt (c, CURLOPT_READDATA, u);
}

/* Up to three digits at *P, moved past them. */
static gboolean
take_number (const char **p, int *value_r)
{
	int n = 0, digits = 0;
	for (; g_ascii_isdigit (**p) && digits < 4; (*p)++, digits++)
		n = n * 10 + (**p - '0');
	*value_r = n;
	return digits >= 1 && digits <= 3;
}

/* The subject and detail of the enhanced status code that follows the
 * reply code, "550 5.7.1 ..." (RFC 3463, RFC 2034); FALSE when the reply
 * has none.  Its class must be the reply's own. */
static gboolean
enhanced_code (const char *reply, int *subject_r, int *detail_r)
{
	if (strlen (reply) < 9 || reply[3] != ' ' || reply[4] != reply[0] || reply[5] != '.')
		return FALSE;
	const char *p = reply + 6;
	return take_number (&p, subject_r) && *p++ == '.' && take_number (&p, detail_r) && (*p == ' ' || *p == '\0');
}

/* A 5xx that says the desk must authenticate or encrypt before it may
 * send at all: 530 (RFC 4954 6, at any command), or at MAIL the security
 * codes X.7.0, X.7.8, X.7.9 and X.7.11 (RFC 3463, RFC 4954, RFC 5248).
 * Those codes are only read at MAIL: after DATA, 554 5.7.0 is also how
 * content filters refuse a message. */
static gboolean
refuses_the_desk (const char *verb, const char *reply)
{
	int subject = 0, detail = 0;
	if (!strncmp (reply, "530", 3))
		return TRUE;
	/* A relay without the desk's credentials refuses at RCPT, naming
	 * relaying (Postfix "554 5.7.1 <x>: Relay access denied", Exim
	 * "550 relay not permitted", Exchange "5.7.54 ... Unable to relay"):
	 * about the desk, not the recipient, whose own refusals say else. */
	if (!strcmp (verb, "RCPT")) {
		g_autofree char *lower = g_ascii_strdown (reply, -1);
		if (strstr (lower, "relay access denied") || strstr (lower, "relay not permitted") ||
		    strstr (lower, "relaying denied") || strstr (lower, "unable to relay") || strstr (lower, "relaying not allowed"))
			return TRUE;
	}
	if (strcmp (verb, "MAIL") || !enhanced_code (reply, &subject, &detail) || subject != 7)
		return FALSE;
	return detail == 0 || detail == 8 || detail == 9 || detail == 11;
}

/* A login refused by a challenge rather than a 535: XOAUTH2 servers
 * (Google's, Microsoft's) answer a bad token with "334 " and a base64
 * JSON error, which curl takes for the end.  Their words, decoded: the
 * challenge is the server's, never the desk's secret. */
static char *
auth_challenge_refusal (const char *last_reply)
{
	if (!last_reply || strncmp (last_reply, "334 ", 4) != 0)
		return g_strdup_printf ("AUTH refused%s%s", last_reply ? ": " : "", last_reply ? last_reply : "");
	gsize len = 0;
	g_autofree guchar *said = g_base64_decode (last_reply + 4, &len);
	g_autofree char *text = said ? g_strndup ((const char *) said, MIN (len, 300)) : NULL;
	if (!text || !g_utf8_validate (text, -1, NULL))
		return g_strdup_printf ("AUTH refused: %s", last_reply);
	for (char *p = text; *p; p++)
		if ((guchar) *p < 0x20)
			*p = ' ';
	return g_strdup_printf ("AUTH refused: 334 %s", text);
}

static MdSmtpOutcome
classify (MdSmtp *s, CURLcode rc, const Upload *u, const char *path, char **reply_r)
{
	if (rc == CURLE_OK) {
		*reply_r = g_strdup (s->final_reply ? s->final_reply : "accepted");
		return MD_SMTP_SENT;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		*reply_r = g_strdup ("interrupted: maildesk is stopping");
		return MD_SMTP_TEMPORARY;
	}
	if (u->errsv) {
		*reply_r = g_strdup_printf ("cannot read %s: %s", path, g_strerror (u->errsv));
		return MD_SMTP_TEMPORARY;
	}
	gboolean at_message = !strcmp (s->last_verb, "MAIL") || !strcmp (s->last_verb, "RCPT") ||
	                      !strcmp (s->last_verb, "DATA");
	if (rc == CURLE_LOGIN_DENIED && !s->failed_reply) {
		*reply_r = auth_challenge_refusal (s->final_reply);
		return MD_SMTP_UNREACHABLE;
	}
	if (s->failed_reply) {
		gboolean answers_message = !strcmp (s->failed_verb, "MAIL") || !strcmp (s->failed_verb, "RCPT") ||
		                           !strcmp (s->failed_verb, "DATA");
		if (answers_message && s->failed_reply[0] != '5') {
			*reply_r = g_strdup (s->failed_reply);
			return MD_SMTP_TEMPORARY;
		}
		if (answers_message && refuses_the_desk (s->failed_verb, s->failed_reply)) {
			/* Missing or refused credentials, or TLS the relay wants:
			 * every message would be refused alike, and the fix is in
			 * maildesk.conf, not in the mail. */
			g_message ("smtp refused-desk verb=%s reply=\"%s\" hint=\"the server wants AUTH or TLS: "
			           "check [smtp] url, user and password_file; mail stays queued\"",
			           s->failed_verb, s->failed_reply);
			*reply_r = g_strdup_printf ("%s refused: %s", s->failed_verb, s->failed_reply);
			return MD_SMTP_UNREACHABLE;
		}
		if (answers_message && !strcmp (s->failed_verb, "MAIL")) {
			/* MAIL names only the sender, the desk's own address (or <>):
			 * "relay access denied", "sender rejected" are about the desk's
			 * setup or the relay's policy for it, never this recipient. */
			*reply_r = g_strdup_printf ("MAIL refused: %s", s->failed_reply);
			return MD_SMTP_TEMPORARY;
		}
		if (answers_message) {
			*reply_r = g_strdup (s->failed_reply);
			return MD_SMTP_PERMANENT;
		}
		*reply_r = g_strdup_printf ("%s refused: %s", s->failed_verb[0] ? s->failed_verb : "greeting",
		                            s->failed_reply);
		return MD_SMTP_UNREACHABLE;
	}
	*reply_r = g_strdup_printf ("%s: %s", s->url, s->errbuf[0] ? s->errbuf : curl_easy_strerror (rc));
	g_strchomp (*reply_r);
	return at_message ? MD_SMTP_TEMPORARY : MD_SMTP_UNREACHABLE;
}

static MdSmtpOutcome
send_stream (MdSmtp *smtp, const char *mail_from, const char *rcpt, FILE *file, gint64 size, const char *what,
             char **reply_r)
{
	Upload u = { 0 };
	u.file = file;
	g_autofree char *from = g_strdup_printf ("<%s>", mail_from ? mail_from : "");
	g_autofree char *to = g_strdup_printf ("<%s>", rcpt);
	struct curl_slist *rcpts = curl_slist_append (NULL, to);

	/* An access token lives an hour or so; whatever refreshes the file
	 * is heeded at the next transfer (a live connection stays logged in). */
	if (smtp->xoauth2) {
		GError *error = NULL;
		char *token = read_password (smtp->password_file, &error);
		if (!token) {
			*reply_r = g_strdup (error->message);
			g_error_free (error);
			curl_slist_free_all (rcpts);
			return MD_SMTP_UNREACHABLE;
		}
		md_password_free (smtp->password);
		smtp->password = token;
	}
	watch_reset (smtp);
	set_options (smtp, from, rcpts, &u, size);
	smtp->upload = &u;
	CURLcode rc = curl_easy_perform (smtp->curl);
	smtp->upload = NULL;
	MdSmtpOutcome outcome = classify (smtp, rc, &u, what, reply_r);
	/* the handle keeps pointers to these until the next reset */
	curl_easy_setopt (smtp->curl, CURLOPT_MAIL_RCPT, NULL);
	curl_easy_setopt (smtp->curl, CURLOPT_READDATA, NULL);
	curl_slist_free_all (rcpts);
	return outcome;
}

MdSmtpOutcome
md_smtp_send (MdSmtp *smtp, const char *mail_from, const char *rcpt, const char *path, char **reply_r)
{
	struct stat st;

	*reply_r = NULL;
	FILE *file = fopen (path, "rb");
	if (!file || fstat (fileno (file), &st) < 0) {
		*reply_r = g_strdup_printf ("cannot open %s: %s", path, g_strerror (errno));
		if (file)
			fclose (file);
		return MD_SMTP_TEMPORARY;
	}
	MdSmtpOutcome outcome = send_stream (smtp, mail_from, rcpt, file, st.st_size, path, reply_r);
	fclose (file);
	return outcome;
}

MdSmtpOutcome
md_smtp_send_bytes (MdSmtp *smtp, const char *mail_from, const char *rcpt, GBytes *message, char **reply_r)
{
	gsize len = 0;
	const void *data = g_bytes_get_data (message, &len);

	*reply_r = NULL;
	FILE *file = len ? fmemopen ((void *) data, len, "rb") : NULL;
	if (!file) {
		*reply_r = g_strdup_printf ("cannot read the queued message: %s", len ? g_strerror (errno) : "empty");
		return MD_SMTP_TEMPORARY;
	}
	MdSmtpOutcome outcome = send_stream (smtp, mail_from, rcpt, file, (gint64) len, "queued message", reply_r);
	fclose (file);
	return outcome;
}
