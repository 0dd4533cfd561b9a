/* message.h - one received message, read from its spool file into plain
 * C data: addresses, subject, date, a UTF-8 body, the attachments (their
 * bytes streamed into the spool's blob/ store) and what was malformed.
 *
 * Memory stays flat whatever arrives: parts are decoded straight from the
 * file into the spool; only the body text is held, up to a bound. */
#ifndef MD_MESSAGE_H
#define MD_MESSAGE_H

#include <glib.h>

#include "authres.h"
#include "spool.h"

typedef struct {
	char *filename;      /* UTF-8, safe as a file name; synthesized
	                      * ("part-3.bin", "message.eml", "body.html")
	                      * when the part has none */
	char *content_type;  /* "type/subtype", lowercase */
	char *charset;       /* text/ only: the charset parameter as
	                      * declared; else "utf-8" for UTF-8 with 8-bit
	                      * characters; else NULL */
	gint64 size;         /* decoded bytes */
	char *sha256;        /* hex; the bytes are in the spool's blob/ */
	gboolean is_inline;  /* Content-Disposition: inline (or none, for
	                      * images inside multipart/related) */
	gboolean is_body;    /* the HTML the body text was derived from */
	int depth;           /* 0: part of the message itself; n: inside n
	                      * nested message/rfc822 parts */
} MdAttachment;

typedef struct {
	char *name;
	char *value;         /* decoded to UTF-8, unfolded, controls removed */
} MdHeader;

typedef struct {
	char *message_id;         /* without <>, NULL when absent */
	char *in_reply_to;        /* first msg-id, without <>, or NULL */
	GPtrArray *references;    /* char*, without <>, oldest first */
	char *from_addr;          /* bare address, NULL when missing/unparseable */
	char *from_name;          /* UTF-8 display name or NULL */
	gboolean from_ambiguous;  /* From names no one for sure (see problems):
	                           * the sender is unknown, not the envelope's */
	GPtrArray *to, *cc;       /* char* bare addresses */
	char *subject;            /* UTF-8 on one line, "" when none */
	gint64 date;              /* Unix seconds, 0 when absent/invalid */
	char *body;               /* valid UTF-8, never NULL */
	gboolean body_from_html;
	GPtrArray *attachments;   /* MdAttachment*, in message order */
	GPtrArray *headers;       /* MdHeader* of the top level, bounded */
	gboolean is_report;       /* multipart/report (a DSN or MDN) */
	char *report_original_message_id; /* the bounced message's Message-ID,
	                                   * from its returned headers */
	GPtrArray *report_failed_recipients; /* char*: for a DSN, the addresses
	                                   * whose delivery failed for good */
	GPtrArray *problems;      /* char*: what was malformed or cut off;
	                           * non-empty = flag for a human */
	char *envelope_sender;    /* not parsed: set by ingest from the entry
	                           * point; "" for <>, NULL when unknown */
	MdSenderAuth from_auth;   /* not parsed: ingest's reading of the
	                           * trusted Authentication-Results */
	GPtrArray *auth_results;  /* the Authentication-Results values as
	                           * written (no RFC 2047 decoding: an
	                           * encoded word is no authserv-id),
	                           * unfolded, topmost first, NULL-terminated */
	GHashTable *header_index; /* private, see md_message_header_values */
} MdMessage;

typedef struct {
	int max_depth;            /* MIME nesting */
	int max_parts;            /* MIME parts visited */
	gsize max_header_len;     /* bytes kept of one header value */
	int max_headers;          /* top-level headers kept */
	gsize max_text_len;       /* bytes of body text (plain or HTML) decoded
	                           * into memory; longer parts are cut in the
	                           * body and kept whole as attachments */
	gint64 max_tnef_len;      /* winmail.dat files unpacked (libytnef reads
	                           * them whole, and copies what they hold);
	                           * bigger ones are kept whole, not unpacked */
} MdMessageLimits;

/* 50 levels, 1000 parts, 64 KiB per header, 500 headers, 4 MiB of text,
 * 4 MiB of TNEF. */
MdMessageLimits md_message_limits_default (void);

/* Initializes GMime once; idempotent, thread-safe. */
void md_message_init (void);

/* Parses the message in the file at path, storing every attachment in
 * spool (blob/).  limits NULL = defaults.  Fails only on I/O (MD_ERROR_IO,
 * MD_ERROR_DISK_FULL); junk input yields a message with problems and
 * whatever text could be decoded.  Free with md_message_free. */
MdMessage *md_message_parse_file (const char *path, MdSpool *spool, const MdMessageLimits *limits, GError **error);

/* NULL-terminated values of the top-level header name (case-insensitive),
 * in order, or NULL when absent; owned by msg. */
const char *const *md_message_header_values (MdMessage *msg, const char *name);

void md_message_free (MdMessage *msg);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdMessage, md_message_free)

#endif
