/* smtp.h - handing one spooled message to the configured SMTP server
 * for one recipient, with libcurl (DESIGN 8).
 *
 * [smtp] url is smtp://HOST[:PORT] (STARTTLS when the server offers it,
 * required when a user is configured so a password never travels in the
 * clear) or smtps://HOST[:PORT] (TLS from the first byte).  Certificates
 * are verified against the system store or [smtp] ca_file.  AUTH uses
 * [smtp] user with the password read from [smtp] password_file.
 *
 * One MdSmtp keeps one curl handle, so consecutive sends reuse one
 * connection; free it to say QUIT.  Used by one thread at a time. */
#ifndef MD_SMTP_H
#define MD_SMTP_H

#include <glib.h>

#include "conf.h"

typedef struct _MdSmtp MdSmtp;

typedef enum {
	MD_SMTP_SENT,      /* the server accepted the end of DATA */
	MD_SMTP_TEMPORARY, /* 4xx to MAIL, RCPT or DATA, a timeout mid-message, an unreadable file: retry later */
	MD_SMTP_PERMANENT, /* 5xx to RCPT or DATA (not 530): never goes to this recipient */
	MD_SMTP_UNREACHABLE, /* temporary, and before the message: no connection, TLS,
	                      * greeting, EHLO or AUTH trouble; other messages would fail alike */
} MdSmtpOutcome;

const char *md_smtp_outcome_name (MdSmtpOutcome outcome);

/* [smtp] url is smtp:// or smtps:// with a host; else MD_ERROR_CONFIG. */
gboolean md_smtp_url_check (const char *url, GError **error);
/* check-config: what outbox flush and serve would refuse in [smtp] (url,
 * a user without password_file, a from without an address); each
 * problem goes to REPORT with its key.  Reads no password file. */
void md_smtp_conf_check (const MdConf *conf, MdConfProblemFunc report, gpointer data);

/* Reads the password file when a user is configured; fails with
 * MD_ERROR_CONFIG.  Free with md_smtp_free. */
MdSmtp *md_smtp_new (const MdConf *conf, GError **error);
void md_smtp_free (MdSmtp *smtp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdSmtp, md_smtp_free)

/* While *cancel (read atomically) is non-zero, a send in progress is
 * aborted within about a second and reported as temporary.  The flag
 * must outlive the MdSmtp. */
void md_smtp_set_cancel (MdSmtp *smtp, const gint *cancel);

/* Sends the file at PATH, streamed (never loaded whole), from MAIL_FROM
 * ("" is the null reverse-path <>) to RCPT.  Bare LF line ends go out as
 * CRLF (RFC 5321 2.3.8); a file already in CRLF goes out byte for byte.
 * *reply_r (free with g_free) is the server's reply that decided the
 * outcome, or curl's error text when there was none. */
MdSmtpOutcome md_smtp_send (MdSmtp *smtp, const char *mail_from, const char *rcpt, const char *path,
                            char **reply_r);

/* The same for a message held in memory (the outbox keeps small ones in
 * its database). */
MdSmtpOutcome md_smtp_send_bytes (MdSmtp *smtp, const char *mail_from, const char *rcpt, GBytes *message,
                                  char **reply_r);

#endif
