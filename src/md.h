/* md.h - what every maildesk module shares: the error domain and its codes.
 *
 * One convention for failures: a GError in MD_ERROR.  Whether a failure
 * is temporary (LMTP 4xx, EX_TEMPFAIL) or permanent (5xx, EX_DATAERR) is
 * decided in one place, md_error_is_temporary(); unknown internal
 * trouble is temporary, so a sender keeps its mail and retries.
 */
#ifndef MD_H
#define MD_H

#include <glib.h>

#define MD_ERROR (md_error_quark ())
GQuark md_error_quark (void);

typedef enum {
	MD_ERROR_INTERNAL,      /* unexpected; temporary */
	MD_ERROR_DB_BUSY,       /* database locked past the timeout; temporary */
	MD_ERROR_DISK_FULL,     /* no space for spool or database; temporary */
	MD_ERROR_IO,            /* other I/O failure; temporary */
	MD_ERROR_EMPTY,         /* empty message; permanent */
	MD_ERROR_TOO_BIG,       /* over max_message_size; permanent */
	MD_ERROR_NO_USER,       /* unknown recipient local part; permanent */
	MD_ERROR_BAD_DOMAIN,    /* recipient outside the desk's domain; permanent */
	MD_ERROR_BAD_TOKEN,     /* sub-address with a wrong reply token; permanent */
	MD_ERROR_CONFIG,        /* bad configuration, rules or templates */
	MD_ERROR_INVALID,       /* bad argument or value from a user */
	MD_ERROR_NOT_FOUND,     /* no such ticket, person, ... */
	MD_ERROR_DENIED,        /* not allowed */
	MD_ERROR_SPLIT,         /* recipient for another ticket: send it on its own; temporary */
} MdErrorCode;

gboolean md_error_is_temporary (const GError *error);

/* sysexits(3) values used by the command line contract (DESIGN 3) */
#define MD_EX_OK        0
#define MD_EX_USAGE     64
#define MD_EX_DATAERR   65
#define MD_EX_NOINPUT   66  /* no such ticket: what a command was to act on does not exist */
#define MD_EX_NOUSER    67
#define MD_EX_SOFTWARE  70
#define MD_EX_TEMPFAIL  75
#define MD_EX_CONFIG    78

/* Map an error to the exit code of `maildesk deliver`. */
int md_error_to_exit_code (const GError *error);

/* Current time as Unix seconds; MAILDESK_NOW overrides it (DESIGN 3). */
gint64 md_now (void);
/* Whether MAILDESK_NOW, when set, is a time md_now can use; checked once
 * at start-up, so that a what-if run never quietly runs on the real
 * clock instead. */
gboolean md_now_check (GError **error);

/* Format Unix seconds as ISO 8601 UTC ("2026-12-01T07:30:00Z").
 * Free with g_free. */
char *md_time_iso_utc (gint64 t);

/* Lowers the calling thread's CPU priority (nice 10): for background
 * work (sending the desk's mail) that must not slow the sessions an MTA
 * is waiting on when the machine is busy.  Linux gives each thread its
 * own nice value; elsewhere this does nothing.  WHAT names the thread in
 * the warning if it fails. */
void md_thread_lower_priority (const char *what);

/* TEXT as one line of at most MAX_CHARS characters, for a header or a
 * subject: invalid UTF-8 repaired, control characters (line breaks
 * above all) and line separators made spaces, runs of white space one
 * space, the ends trimmed; "" for NULL.  Free with g_free. */
char *md_text_one_line (const char *text, gsize max_chars);

/* The SHA-256 of LEN bytes at DATA in lowercase hex, the same string as
 * g_compute_checksum_for_data (G_CHECKSUM_SHA256, ...) gives, by
 * GnuTLS, whose nettle uses the CPU's SHA instructions where it has
 * them (about five times faster than GLib's portable code: the writer
 * hashes every queued mail).  Free with g_free. */
char *md_sha256_hex (const void *data, gsize len);

/* Whether S is one bare address a person or a config could mean
 * (local@domain, one '@', no blanks, brackets, separators or quotes):
 * agents, members, assignees, escalate_to. */
gboolean md_address_looks_valid (const char *s);

/* Removes a directory and everything in it, not following symbolic
 * links; for throw-away trees (classify's scratch spool, tests). */
void md_remove_tree (const char *path);

/* The first line of a password file, at most 4 KiB, never empty.  A file
 * that others than its owner may read is refused: the password would
 * not be a secret.  MD_ERROR_CONFIG errors name the file.  Free with
 * md_password_free. */
char *md_password_read (const char *path, GError **error);
void md_password_free (char *password);

#endif
