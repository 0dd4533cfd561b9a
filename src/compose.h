/* compose.h - builds one outgoing message with GMime (DESIGN 8): From,
 * To/Cc, Reply-To the ticket's token address, the subject tag, encoded
 * words, a UTF-8 text/plain body, Message-ID under the desk's domain,
 * In-Reply-To/References, Date, Auto-Submitted (RFC 3834), the loop
 * header, and attachments streamed from files.
 *
 * Everything that reaches a header is cleaned first: control characters
 * (CR, LF, NUL, ...) in subjects, names and file names become spaces;
 * addresses must be plain local@domain (RFC 5321 dot-atom, an LDH
 * domain) or the message is refused (MD_ERROR_INVALID); message ids that
 * are not msg-id shaped are left out of threading headers.  Subjects
 * and display names holding "=?" are sent as encoded words, so that no
 * client decodes look-alikes the sender wrote.  The output has CRLF line
 * ends, as on the wire.
 */
#ifndef MD_COMPOSE_H
#define MD_COMPOSE_H

#include <glib.h>

#define MD_LOOP_HEADER "X-Maildesk-Loop"
#define MD_COMPOSE_MAX_RECIPIENTS 100
#define MD_COMPOSE_MAX_REFERENCES 20
#define MD_COMPOSE_MAX_ATTACHMENTS 100
#define MD_COMPOSE_MAX_SUBJECT 250   /* characters, tag included */
#define MD_COMPOSE_MAX_NAME 200      /* characters of a display name */

typedef enum {
	MD_AUTO_SUBMITTED_NONE,       /* a human's reply relayed */
	MD_AUTO_SUBMITTED_REPLIED,    /* "auto-replied": answers a message (ack, command errors) */
	MD_AUTO_SUBMITTED_GENERATED,  /* "auto-generated": no message prompted it (scheduler) */
} MdAutoSubmitted;

typedef struct {
	const char *name;   /* display name or NULL */
	const char *email;  /* local@domain */
} MdMailbox;

typedef struct {
	const char *filename;      /* as the recipient sees it; directories ('/' and '\\')
	                            * are dropped, ':' becomes '_', no name or "..":
	                            * "attachment"; NULL: the path's last part */
	const char *content_type;  /* "application/pdf"; NULL or invalid: application/octet-stream */
	const char *path;          /* the bytes, read while writing */
	const char *charset;       /* the charset parameter of a text/ type
	                            * ("utf-8"); NULL or invalid: none */
} MdAttachmentFile;

typedef struct {
	const char *desk_name;          /* "Example Support" */
	const char *desk_address;       /* support@support.example.com; its domain names
	                                 * the Message-ID and the loop header */
	const char *agent_name;         /* agent replies: From "Agent via Desk"; else NULL */
	const MdMailbox *to;            /* n_to of them, at least one */
	gsize n_to;
	const MdMailbox *cc;
	gsize n_cc;
	const char *reply_to;           /* the ticket's token address, or NULL */
	const char *ticket_key;         /* "SUP-123": the subject tag; NULL for none */
	const char *subject;
	const char *body;               /* UTF-8 text */
	const char *in_reply_to;        /* message id answered (with or without <>), or NULL */
	const char *const *references;  /* the thread's ids, oldest first, NULL-terminated, or NULL;
	                                 * those after in_reply_to are not its ancestors and
	                                 * are left out, and each id goes out once */
	const char *message_id;         /* reuse this id (a retried outbox row); NULL: new one */
	gint64 date;                    /* Unix seconds; 0: md_now () */
	int date_offset;                /* seconds east of UTC the Date is written at
	                                 * (the desk's zone at date), under a day; 0: UTC */
	MdAutoSubmitted auto_submitted;
	const char *const *headers;     /* Importance / Content-Language from
	                                 * md_template_headers (); other names refused */
	const MdAttachmentFile *attachments;
	gsize n_attachments;
} MdOutgoing;

/* Writes the message to `fd` (not closed).  *message_id_r, when given,
 * receives the Message-ID without angle brackets; free with g_free. */
gboolean md_compose_write_fd (const MdOutgoing *o, int fd, char **message_id_r, GError **error);

/* Writes the message to a new file at `path` (mode 0600, fsync'd). */
gboolean md_compose_write_file (const MdOutgoing *o, const char *path,
                                char **message_id_r, GError **error);

/* Whether O would compose: every check md_compose_to_bytes makes before
 * it reads attachment files. */
gboolean md_compose_check (const MdOutgoing *o, GError **error);
/* A new Message-ID (no angle brackets) at DESK_ADDRESS's domain. */
char *md_compose_new_message_id (const char *desk_address);

/* The whole message in memory, for messages without large attachments.
 * Free with g_bytes_unref. */
GBytes *md_compose_to_bytes (const MdOutgoing *o, char **message_id_r, GError **error);

/* The subject cleaned to one line, with the ticket's tag "[KEY]" put in
 * front, after any "Re: "/"Fwd: " markers, unless the subject already
 * carries it (any case).  Free with g_free. */
char *md_compose_tagged_subject (const char *subject, const char *ticket_key);

/* Whether `email` is an address compose accepts. */
gboolean md_compose_address_is_valid (const char *email);

#endif
