/* message.c - reading one received message from its spool file with
 * GMime: envelope headers, the body text, the attachments (streamed into
 * the spool, never held whole), uuencoded blocks in text, TNEF
 * (winmail.dat) contents, DSN originals, and a list of what was wrong.
 *
 * Which part is what (close to JMAP, RFC 8621 4.1.4):
 *  - text/plain and text/html parts that are neither named nor marked
 *    "attachment" are body text; several such plain parts (text, image,
 *    text from Apple Mail) are joined.  Plain text wins; HTML becomes the
 *    body only when there is no plain text, and is then kept as an
 *    attachment too ("body.html", is_body set).
 *  - multipart/alternative: one child gives the body (plain preferred);
 *    the others contribute only their non-text parts (images of an HTML
 *    alternative's multipart/related).
 *  - everything else is an attachment, including a nested message/rfc822
 *    (kept whole as .eml), whose own attachments follow at depth + 1.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gmime/gmime.h>
#include <ytnef.h>

#include "charset.h"
#include "html.h"
#include "md.h"
#include "message.h"

#define MAX_PROBLEMS 100
#define MAX_ADDRESSES 1000
#define MAX_REFERENCES 200
#define MAX_FILENAME_BYTES 200
#define MAX_REPORT_HEADERS (64 * 1024)
/* Bytes of the top-level header section given to GMime, which holds the
 * whole section in memory, at about nine times its size. */
#define MAX_HEADER_SECTION (1024 * 1024)
/* Lines that look like MIME boundaries given to GMime: it builds the
 * whole tree of parts (about 2 KiB each) before we can count them. */
#define MAX_BOUNDARY_LINES 10000
/* Header fields given to GMime, which keeps an object of about 700 bytes
 * for each: in the top-level section, in one part's or embedded
 * message's header block, and in all such blocks together. */
#define MAX_HEADER_FIELDS 10000
#define MAX_PART_HEADER_FIELDS 2000
#define MAX_PART_HEADER_FIELDS_TOTAL 40000

/* ---- a GMimeStream that writes into a spool writer and/or memory ---- */

typedef struct {
	GMimeStream parent;
	MdSpoolWriter *writer;  /* not owned; NULL = none */
	GByteArray *capture;    /* not owned; NULL = none */
	gsize capture_max;
	gboolean capture_cut;
	MdUtf8Scan *scan;       /* not owned; NULL = none */
	GError *error;          /* first spool error */
} MdMessageSink;

typedef struct {
	GMimeStreamClass parent_class;
} MdMessageSinkClass;

GType md_message_sink_get_type (void);
G_DEFINE_TYPE (MdMessageSink, md_message_sink, GMIME_TYPE_STREAM)

static ssize_t
sink_write (GMimeStream *stream, const char *buf, size_t len)
{
	MdMessageSink *sink = (MdMessageSink *) stream;

	if (sink->error)
		return -1;
	if (sink->writer && !md_spool_writer_write (sink->writer, buf, len, &sink->error))
		return -1;
	if (sink->capture) {
		gsize room = sink->capture_max - MIN (sink->capture_max, sink->capture->len);
		g_byte_array_append (sink->capture, (const guint8 *) buf, (guint) MIN (room, len));
		sink->capture_cut |= len > room;
	}
	if (sink->scan)
		md_utf8_scan_feed (sink->scan, buf, len);
	stream->position += (gint64) len;
	return (ssize_t) len;
}

static ssize_t
sink_read (GMimeStream *stream, char *buf, size_t len)
{
	return -1;
}

static int
sink_noop (GMimeStream *stream)
{
	return 0;
}

static gboolean
sink_eos (GMimeStream *stream)
{
	return TRUE;
}

static gint64
sink_seek (GMimeStream *stream, gint64 offset, GMimeSeekWhence whence)
{
	return -1;
}

static gint64
sink_tell (GMimeStream *stream)
{
	return stream->position;
}

static gint64
sink_length (GMimeStream *stream)
{
	return -1;
}

static GMimeStream *
sink_substream (GMimeStream *stream, gint64 start, gint64 end)
{
	return NULL;
}

static void
md_message_sink_finalize (GObject *object)
{
	g_clear_error (&((MdMessageSink *) object)->error);
	G_OBJECT_CLASS (md_message_sink_parent_class)->finalize (object);
}

static void
md_message_sink_class_init (MdMessageSinkClass *klass)
{
	GMimeStreamClass *stream_class = GMIME_STREAM_CLASS (klass);

	G_OBJECT_CLASS (klass)->finalize = md_message_sink_finalize;
	stream_class->write = sink_write;
	stream_class->read = sink_read;
	stream_class->flush = sink_noop;
	stream_class->close = sink_noop;
	stream_class->reset = sink_noop;
	stream_class->eos = sink_eos;
	stream_class->seek = sink_seek;
	stream_class->tell = sink_tell;
	stream_class->length = sink_length;
	stream_class->substream = sink_substream;
}

static void
md_message_sink_init (MdMessageSink *sink)
{
}

static MdMessageSink *
sink_new (MdSpoolWriter *writer, GByteArray *capture, gsize capture_max)
{
	MdMessageSink *sink = g_object_new (md_message_sink_get_type (), NULL);
	g_mime_stream_construct (GMIME_STREAM (sink), 0, -1);
	sink->writer = writer;
	sink->capture = capture;
	sink->capture_max = capture_max;
	return sink;
}

/* ---- the walk over the MIME tree ---- */

typedef struct {
	MdAttachment *att;      /* owned by msg->attachments */
	GByteArray *html;       /* the first max_text_len bytes */
	char *charset;
} PendingHtml;

typedef struct {
	MdMessage *msg;
	MdSpool *spool;
	MdMessageLimits lim;
	GError *error;          /* first I/O error: ends the walk */
	int parts_seen;
	gboolean depth_noted, parts_noted, files_noted;
	GString *plain;
	gboolean have_plain;
	GArray *html;           /* PendingHtml */
} Walk;

/* What GMime's parser reported: the first occurrence of each kind, so a
 * message with a thousand bad headers yields one line. */
typedef struct {
	MdMessage *msg;
	guint32 seen;           /* bit per GMimeParserWarning */
} Warnings;

static void
add_problem (MdMessage *msg, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
add_problem (MdMessage *msg, const char *fmt, ...)
{
	va_list args;
	va_start (args, fmt);
	g_autofree char *text = g_strdup_vprintf (fmt, args);
	va_end (args);
	if (msg->problems->len >= MAX_PROBLEMS)
		return;
	for (guint i = 0; i < msg->problems->len; i++)
		if (strcmp (msg->problems->pdata[i], text) == 0)
			return;
	g_ptr_array_add (msg->problems, g_steal_pointer (&text));
}

/* UTF-8, one line, at most max bytes: for values quoted in problems. */
static char *
printable (const char *value, gsize max)
{
	gsize len = strlen (value);
	char *text = md_charset_to_utf8 (value, MIN (len, max), NULL, NULL);
	md_charset_strip_controls (text);
	return text;
}

static void
attachment_free (gpointer data)
{
	MdAttachment *att = data;
	g_free (att->filename);
	g_free (att->content_type);
	g_free (att->charset);
	g_free (att->sha256);
	g_free (att);
}

static char *
mime_type_of (GMimeObject *obj)
{
	GMimeContentType *type = g_mime_object_get_content_type (obj);
	g_autofree char *mime = type ? g_mime_content_type_get_mime_type (type) : NULL;
	return g_ascii_strdown (mime ? mime : "application/octet-stream", -1);
}

static gboolean
has_type (GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type (obj);
	return ct && g_mime_content_type_is_type (ct, type, subtype);
}

static gboolean
is_reserved_windows_name (const char *name)
{
	static const char *const reserved[] = { "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5",
		                                "com6", "com7", "com8", "com9", "lpt1", "lpt2", "lpt3", "lpt4",
		                                "lpt5", "lpt6", "lpt7", "lpt8", "lpt9", NULL };
	gsize stem = strcspn (name, ".");
	for (int i = 0; reserved[i]; i++)
		if (strlen (reserved[i]) == stem && g_ascii_strncasecmp (name, reserved[i], stem) == 0)
			return TRUE;
	return FALSE;
}

/* Cuts the stem so the name fits in max bytes, keeping a short extension. */
static char *
bound_length (char *name, gsize max)
{
	gsize len = strlen (name);
	if (len <= max)
		return name;
	const char *dot = strrchr (name, '.');
	gsize ext_len = dot && strlen (dot) <= 16 ? strlen (dot) : 0;
	g_autofree char *ext = g_strdup (name + len - ext_len);
	gsize keep = max - ext_len;
	while (keep > 0 && (name[keep] & 0xc0) == 0x80)
		keep--;
	name[keep] = 0;
	char *bounded = g_strconcat (name, ext, NULL);
	g_free (name);
	return bounded;
}

/* A name from a message made safe to show and to save: the last path
 * component (senders' clients send "C:\dir\file.doc"), no control
 * characters or characters Windows forbids, no leading dots, not a
 * Windows device name, bounded.  NULL when nothing is left. */
static char *
safe_filename (const char *raw)
{
	if (!raw)
		return NULL;
	char *name = md_charset_to_utf8 (raw, strlen (raw), NULL, NULL);
	const char *base = name;
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	GString *safe = g_string_new (NULL);
	for (const char *p = base; *p; p = g_utf8_next_char (p)) {
		gunichar c = g_utf8_get_char (p);
		if (c < 0x20 || (c >= 0x7f && c < 0xa0))
			continue;
		if (strchr ("<>:\"|?*", (int) c) && c < 0x80)
			g_string_append_c (safe, '_');
		else
			g_string_append_unichar (safe, c);
	}
	g_free (name);
	char *start = safe->str;
	while (*start == '.' || *start == ' ')
		start++;
	char *trimmed = g_strdup (start);
	g_string_free (safe, TRUE);
	gsize len = strlen (trimmed);
	while (len > 0 && (trimmed[len - 1] == '.' || trimmed[len - 1] == ' '))
		trimmed[--len] = 0;
	if (len == 0) {
		g_free (trimmed);
		return NULL;
	}
	if (is_reserved_windows_name (trimmed)) {
		char *prefixed = g_strconcat ("_", trimmed, NULL);
		g_free (trimmed);
		trimmed = prefixed;
	}
	return bound_length (trimmed, MAX_FILENAME_BYTES);
}

static const char *
extension_for (const char *mime)
{
	static const struct { const char *mime, *ext; } table[] = {
		{ "text/plain", ".txt" }, { "text/html", ".html" }, { "text/calendar", ".ics" },
		{ "text/rfc822-headers", ".txt" }, { "message/delivery-status", ".txt" },
		{ "message/disposition-notification", ".txt" }, { "text/csv", ".csv" },
		{ "text/enriched", ".txt" }, { "text/richtext", ".txt" }, { "text/x-vcard", ".vcf" },
		{ "text/vcard", ".vcf" }, { "image/png", ".png" }, { "image/jpeg", ".jpg" },
		{ "image/gif", ".gif" }, { "image/bmp", ".bmp" }, { "image/webp", ".webp" },
		{ "image/svg+xml", ".svg" }, { "application/pdf", ".pdf" }, { "application/zip", ".zip" },
		{ "application/ms-tnef", ".dat" }, { "application/vnd.ms-tnef", ".dat" },
		{ "application/pgp-signature", ".asc" }, { "application/pkcs7-signature", ".p7s" },
		{ "application/x-pkcs7-signature", ".p7s" }, { "audio/mpeg", ".mp3" }, { "video/mp4", ".mp4" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (table); i++)
		if (strcmp (mime, table[i].mime) == 0)
			return table[i].ext;
	return ".bin";
}

static char *
synthesized_name (const char *mime, int index)
{
	if (g_str_has_prefix (mime, "message/rfc822") || strcmp (mime, "message/global") == 0)
		return g_strdup ("message.eml");
	return g_strdup_printf ("part-%d%s", index, extension_for (mime));
}

static const char *
raw_filename (GMimeObject *obj)
{
	if (GMIME_IS_PART (obj))
		return g_mime_part_get_filename (GMIME_PART (obj));
	const char *name = g_mime_object_get_content_disposition_parameter (obj, "filename");
	return name ? name : g_mime_object_get_content_type_parameter (obj, "name");
}

static gboolean
is_body_text (GMimeObject *obj)
{
	if (!has_type (obj, "text", "plain") && !has_type (obj, "text", "html"))
		return FALSE;
	const char *disposition = g_mime_object_get_disposition (obj);
	if (disposition && g_ascii_strcasecmp (disposition, "attachment") == 0)
		return FALSE;
	const char *name = raw_filename (obj);
	return !name || !*name;
}

static gboolean
is_inline (GMimeObject *obj)
{
	const char *disposition = g_mime_object_get_disposition (obj);
	if (disposition)
		return g_ascii_strcasecmp (disposition, "inline") == 0;
	return g_mime_object_get_content_id (obj) != NULL;
}

/* Decoded content of a leaf (or the whole of a nested message) into
 * sink.  FALSE when GMime could not write it (the sink may hold the
 * reason); a part without content writes nothing and succeeds. */
static gboolean
write_content (GMimeObject *obj, MdMessageSink *sink)
{
	ssize_t n = 0;
	if (GMIME_IS_MESSAGE_PART (obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message (GMIME_MESSAGE_PART (obj));
		if (inner)
			n = g_mime_object_write_to_stream (GMIME_OBJECT (inner), NULL, GMIME_STREAM (sink));
	} else if (GMIME_IS_PART (obj)) {
		GMimeDataWrapper *content = g_mime_part_get_content (GMIME_PART (obj));
		if (content)
			n = g_mime_data_wrapper_write_to_stream (content, GMIME_STREAM (sink));
	}
	if (n >= 0)
		g_mime_stream_flush (GMIME_STREAM (sink));
	return n >= 0;
}

static MdAttachment *
commit_attachment (Walk *w, MdSpoolWriter *writer, char *filename, char *mime, int depth)
{
	g_autofree char *sha = NULL;
	gint64 size = md_spool_writer_size (writer);
	if (!md_spool_writer_commit (writer, &sha, &w->error)) {
		g_free (filename);
		g_free (mime);
		return NULL;
	}
	MdAttachment *att = g_new0 (MdAttachment, 1);
	att->filename = filename;
	att->content_type = mime;
	att->size = size;
	att->sha256 = g_steal_pointer (&sha);
	att->depth = depth;
	g_ptr_array_add (w->msg->attachments, att);
	return att;
}

/* The charset a text attachment goes out with again: the one its sender
 * declared; else UTF-8 when its bytes say so (a client's default,
 * US-ASCII or windows-1252, would garble them), and nothing when they
 * do not.  Other types have none (RFC 2046 4.1.2). */
static char *
attachment_charset (const char *declared, const char *mime, const MdUtf8Scan *scan)
{
	if (!g_str_has_prefix (mime, "text/"))
		return NULL;
	if (md_charset_name_is_valid (declared))
		return g_strdup (declared);
	return md_utf8_scan_is_8bit_utf8 (scan) ? g_strdup ("utf-8") : NULL;
}

/* Stores obj's decoded content as an attachment; capture (may be NULL)
 * receives the first capture_max bytes too.  NULL on I/O error. */
static MdAttachment *
store_part (Walk *w, GMimeObject *obj, int depth, GByteArray *capture, gsize capture_max)
{
	MdSpoolWriter *writer = md_spool_writer_new (w->spool, MD_SPOOL_BLOB, 0, &w->error);
	if (!writer)
		return NULL;
	MdUtf8Scan scan = { 0 };
	MdMessageSink *sink = sink_new (writer, capture, capture_max);
	sink->scan = has_type (obj, "text", "*") ? &scan : NULL;
	gboolean written = write_content (obj, sink);
	if (sink->error) {
		g_propagate_error (&w->error, g_steal_pointer (&sink->error));
		g_object_unref (sink);
		md_spool_writer_abort (writer);
		return NULL;
	}
	g_object_unref (sink);
	if (!written)
		add_problem (w->msg, "cannot decode part %d", w->parts_seen);

	char *mime = mime_type_of (obj);
	char *charset = attachment_charset (g_mime_object_get_content_type_parameter (obj, "charset"), mime, &scan);
	char *name = safe_filename (raw_filename (obj));
	if (!name)
		name = synthesized_name (mime, w->parts_seen);
	MdAttachment *att = commit_attachment (w, writer, name, mime, depth);
	if (att) {
		att->is_inline = is_inline (obj);
		att->charset = charset;
	} else {
		g_free (charset);
	}
	return att;
}

static char *
guess_type_from_name (const char *name)
{
	g_autofree char *content_type = g_content_type_guess (name, NULL, 0, NULL);
	char *mime = content_type ? g_content_type_get_mime_type (content_type) : NULL;
	if (!mime || g_content_type_is_unknown (content_type)) {
		g_free (mime);
		return g_strdup ("application/octet-stream");
	}
	return mime;
}

/* Stores bytes from memory (uudecoded or TNEF contents) as an attachment
 * named name (raw, made safe here). */
static void
store_bytes (Walk *w, const char *raw_name, const void *data, gsize len, int depth)
{
	/* Files unpacked from inside a part are no MIME parts, yet a few
	 * bytes of text or TNEF make one each: without this a 50 MB message
	 * of tiny uuencoded blocks was over a million spool files and rows. */
	if (w->msg->attachments->len >= (guint) w->lim.max_parts) {
		if (!w->files_noted)
			add_problem (w->msg, "attachment limit (%d) reached: later uuencoded or TNEF files ignored",
			             w->lim.max_parts);
		w->files_noted = TRUE;
		return;
	}
	MdSpoolWriter *writer = md_spool_writer_new (w->spool, MD_SPOOL_BLOB, 0, &w->error);
	if (!writer)
		return;
	if (!md_spool_writer_write (writer, data, len, &w->error)) {
		md_spool_writer_abort (writer);
		return;
	}
	char *name = safe_filename (raw_name);
	char *mime = guess_type_from_name (name ? name : "");
	MdUtf8Scan scan = { 0 };
	md_utf8_scan_feed (&scan, data, len);
	char *charset = attachment_charset (NULL, mime, &scan);
	if (!name)
		name = synthesized_name (mime, w->parts_seen);
	MdAttachment *att = commit_attachment (w, writer, name, mime, depth);
	if (att)
		att->charset = charset;
	else
		g_free (charset);
}

/* ---- uuencoded blocks inside text ---- */

/* "begin 644 name": returns the name, or NULL when line is not a header */
static const char *
uu_begin_name (const char *line)
{
	if (!g_str_has_prefix (line, "begin "))
		return NULL;
	const char *p = line + 6;
	int digits = 0;
	while (*p >= '0' && *p <= '7') {
		p++;
		digits++;
	}
	if (digits < 3 || digits > 4 || *p != ' ' || !p[1])
		return NULL;
	return p + 1;
}

/* The line after the one at LINE (the text's end after the last). */
static const char *
next_line (const char *line)
{
	const char *nl = strchr (line, '\n');
	return nl ? nl + 1 : line + strlen (line);
}

/* Whether the line at LINE, trailing blanks aside, is "end". */
static gboolean
is_uu_end (const char *line)
{
	gsize len = (gsize) (next_line (line) - line);
	while (len > 0 && g_ascii_isspace (line[len - 1]))
		len--;
	return len == 3 && memcmp (line, "end", 3) == 0;
}

/* The first "end" line from LINE on, or NULL. */
static const char *
find_uu_end (const char *line)
{
	for (; *line; line = next_line (line))
		if (is_uu_end (line))
			return line;
	return NULL;
}

/* Decodes the uuencoded lines from FROM up to END and stores them as NAME. */
static void
store_uu_block (Walk *w, const char *name, const char *from, const char *end, int depth)
{
	GString *block = g_string_new (NULL);
	for (const char *l = from; l < end; l = next_line (l)) {
		gsize len = (gsize) (next_line (l) - l);
		while (len > 0 && g_ascii_isspace (l[len - 1]))
			len--;
		g_string_append_len (block, l, (gssize) len);
		g_string_append_c (block, '\n');
	}
	g_autofree guchar *decoded = g_malloc (block->len + 4);
	int state = GMIME_UUDECODE_STATE_BEGIN;
	guint32 save = 0;
	gsize n = g_mime_encoding_uudecode_step ((const guchar *) block->str, block->len, decoded, &state, &save);
	g_string_free (block, TRUE);
	store_bytes (w, name, decoded, n, depth);
}

/* Moves every complete uuencoded block of text into an attachment and
 * returns the remaining text.  One pass, line by line, without a copy
 * of each line: a text of many "begin" lines and no "end" looks for one
 * once, not again from each. */
static char *
extract_uuencoded (Walk *w, const char *text, int depth)
{
	GString *rest = g_string_new (NULL);
	gboolean end_below = TRUE;   /* FALSE once a search found no "end" further down */

	for (const char *line = text; *line;) {
		const char *after = next_line (line);
		g_autofree char *header = g_str_has_prefix (line, "begin ")
		                          ? g_strndup (line, (gsize) (after - line) - (after[-1] == '\n')) : NULL;
		const char *name = header ? uu_begin_name (header) : NULL;
		const char *end = name && end_below ? find_uu_end (after) : NULL;
		end_below &= !name || end != NULL;
		if (!end) {
			if (name)
				add_problem (w->msg, "uuencoded block without end in part %d", w->parts_seen);
			g_string_append_len (rest, line, after - line);
			line = after;
			continue;
		}
		store_uu_block (w, name, after, end, depth);
		line = next_line (end);
		if (w->error)
			break;
	}
	return g_string_free (rest, FALSE);
}

/* ---- TNEF ---- */

static gboolean
is_tnef (const MdAttachment *att)
{
	return strcmp (att->content_type, "application/ms-tnef") == 0
	       || strcmp (att->content_type, "application/vnd.ms-tnef") == 0
	       || g_ascii_strcasecmp (att->filename, "winmail.dat") == 0;
}

static char *
tnef_attachment_name (Attachment *a)
{
	variableLength *v = MAPIFindProperty (&a->MAPI, PROP_TAG (PT_UNICODE, PR_ATTACH_LONG_FILENAME));
	if (v != MAPI_UNDEFINED && v->size > 0)
		return g_convert ((const char *) v->data, v->size, "UTF-8", "UTF-16LE", NULL, NULL, NULL);
	v = MAPIFindProperty (&a->MAPI, PROP_TAG (PT_STRING8, PR_ATTACH_LONG_FILENAME));
	if (v == MAPI_UNDEFINED || v->size <= 0)
		v = &a->Title;
	if (v->size <= 0 || !v->data)
		return NULL;
	/* 8-bit names are in the sender's ANSI code page: windows-1252 is the
	 * usual one, and md_charset_to_utf8 keeps UTF-8 as it is */
	return md_charset_to_utf8 ((const char *) v->data, strnlen ((const char *) v->data, (gsize) v->size), NULL, NULL);
}

static void
extract_tnef (Walk *w, const MdAttachment *tnef_att)
{
	if (tnef_att->size > w->lim.max_tnef_len) {
		add_problem (w->msg, "TNEF attachment %s too large to unpack (over %" G_GINT64_FORMAT " bytes): kept as it came",
		             tnef_att->filename, w->lim.max_tnef_len);
		return;
	}
	g_autofree char *path = md_spool_path (w->spool, MD_SPOOL_BLOB, tnef_att->sha256);
	TNEFStruct tnef;
	TNEFInitialize (&tnef);
	tnef.Debug = 0;
	if (TNEFParseFile (path, &tnef) < 0) {
		add_problem (w->msg, "unreadable TNEF in %s", tnef_att->filename);
		TNEFFree (&tnef);
		return;
	}
	int depth = tnef_att->depth;
	for (Attachment *a = tnef.starting_attach.next; a && !w->error; a = a->next) {
		variableLength *data = MAPIFindProperty (&a->MAPI, PROP_TAG (PT_BINARY, PR_ATTACH_DATA_OBJ));
		if (data == MAPI_UNDEFINED)
			data = &a->FileData;
		if (data->size <= 0 || !data->data)
			continue;
		g_autofree char *name = tnef_attachment_name (a);
		store_bytes (w, name, data->data, (gsize) data->size, depth);
	}
	TNEFFree (&tnef);
}

/* ---- body text ---- */

static void
take_plain (Walk *w, GMimeObject *obj, int depth)
{
	g_autoptr (GByteArray) bytes = g_byte_array_new ();
	MdMessageSink *sink = sink_new (NULL, bytes, w->lim.max_text_len);
	if (!write_content (obj, sink))
		add_problem (w->msg, "cannot decode part %d", w->parts_seen);
	gboolean cut = sink->capture_cut;
	g_object_unref (sink);
	if (cut) {
		add_problem (w->msg, "text part %d longer than %" G_GSIZE_FORMAT " bytes: cut in the body, kept as an attachment",
		             w->parts_seen, w->lim.max_text_len);
		store_part (w, obj, depth, NULL, 0);
	}
	const char *charset = g_mime_object_get_content_type_parameter (obj, "charset");
	gboolean fell_back = FALSE;
	g_autofree char *utf8 = md_charset_to_utf8 ((const char *) bytes->data, bytes->len, charset, &fell_back);
	if (fell_back && charset) {
		g_autofree char *shown = printable (charset, 40);
		add_problem (w->msg, "text not in its declared charset %s in part %d", shown, w->parts_seen);
	}
	g_autofree char *text = extract_uuencoded (w, utf8, depth);
	if (w->plain->len > 0 && w->plain->str[w->plain->len - 1] != '\n')
		g_string_append_c (w->plain, '\n');
	g_string_append (w->plain, text);
	w->have_plain = TRUE;
}

static void
take_html (Walk *w, GMimeObject *obj, int depth)
{
	GByteArray *bytes = g_byte_array_new ();
	MdAttachment *att = store_part (w, obj, depth, bytes, w->lim.max_text_len);
	if (!att) {
		g_byte_array_unref (bytes);
		return;
	}
	if (bytes->len < att->size)
		add_problem (w->msg, "HTML part %d longer than %" G_GSIZE_FORMAT " bytes: cut in the body",
		             w->parts_seen, w->lim.max_text_len);
	PendingHtml pending = { att, bytes, g_strdup (g_mime_object_get_content_type_parameter (obj, "charset")) };
	g_array_append_val (w->html, pending);
}

static void
finish_body (Walk *w)
{
	MdMessage *msg = w->msg;

	if (w->have_plain || w->html->len == 0) {
		msg->body = md_charset_to_utf8 (w->plain->str, w->plain->len, "utf-8", NULL);
		return;
	}
	GString *body = g_string_new (NULL);
	for (guint i = 0; i < w->html->len; i++) {
		PendingHtml *p = &g_array_index (w->html, PendingHtml, i);
		g_autofree char *html = md_charset_to_utf8 ((const char *) p->html->data, p->html->len, p->charset, NULL);
		g_autofree char *text = md_html_to_text (html, strlen (html));
		if (body->len > 0 && *text)
			g_string_append (body, "\n\n");
		g_string_append (body, text);
		g_free (p->att->filename);
		p->att->filename = i == 0 ? g_strdup ("body.html") : g_strdup_printf ("body-%u.html", i + 1);
		p->att->is_body = TRUE;
	}
	msg->body = g_string_free (body, FALSE);
	msg->body_from_html = TRUE;
}

/* ---- GMime 3.2.13's adjacent encoded-words ---- */

/* GMime decodes a run of adjacent base64 encoded-words of one charset as
 * one base64 stream, so a padded word ends the text:
 * "=?UTF-8?B?YWI=?= =?UTF-8?B?Yw==?=" reads as "ab".  Thunderbird and
 * others split long non-ASCII subjects, names and file names into just
 * such runs.  Each run that would be misread is rewritten into a single
 * encoded-word of the concatenated bytes (RFC 2047 6.2: the white space
 * between adjacent encoded-words is not displayed, and a character may
 * span two words), and GMime then decodes it right. */

typedef struct {
	gsize start, end;        /* the word in the raw value */
	char *charset;
	gboolean base64;
	char *text;
} EncodedWord;

static void
encoded_word_clear (gpointer data)
{
	EncodedWord *w = data;
	g_free (w->charset);
	g_free (w->text);
}

static void
decode_word (const EncodedWord *w, GByteArray *out)
{
	gsize len = strlen (w->text);
	if (w->base64) {
		g_autofree guchar *bytes = g_malloc (len * 3 / 4 + 3);
		int state = 0;
		guint save = 0;
		gsize n = g_base64_decode_step (w->text, len, bytes, &state, &save);
		g_byte_array_append (out, bytes, (guint) n);
		return;
	}
	for (const char *p = w->text; *p; p++) {
		guint8 c = (guint8) *p;
		if (c == '_')
			c = ' ';
		else if (c == '=' && g_ascii_isxdigit (p[1]) && g_ascii_isxdigit (p[2])) {
			c = (guint8) (g_ascii_xdigit_value (p[1]) * 16 + g_ascii_xdigit_value (p[2]));
			p += 2;
		}
		g_byte_array_append (out, &c, 1);
	}
}

/* Words [first, last) share a charset and only white space separates
 * them; GMime misreads them when a base64 word but the last is padded. */
static gboolean
run_is_misread (GArray *words, guint first, guint last)
{
	for (guint i = first; i + 1 < last; i++) {
		EncodedWord *w = &g_array_index (words, EncodedWord, i);
		if (w->base64 && g_str_has_suffix (w->text, "="))
			return TRUE;
	}
	return FALSE;
}

static gboolean
only_space_between (const char *raw, gsize from, gsize to)
{
	for (gsize i = from; i < to; i++)
		if (!g_ascii_isspace (raw[i]))
			return FALSE;
	return TRUE;
}

/* RAW with every misread run merged into one word; NULL when there is
 * none (free with g_free). */
static char *
merge_encoded_words (const char *raw)
{
	static GRegex *word_re;
	if (g_once_init_enter (&word_re))
		/* RAW: header bytes are not UTF-8 yet, and GLib's PCRE2 matcher
		 * skips the UTF check (invalid bytes crashed its JIT: fuzz-ingest). */
		g_once_init_leave (&word_re, g_regex_new ("=\\?([^?*\\s]+)(?:\\*[^?\\s]*)?\\?([bBqQ])\\?([^?\\s]*)\\?=",
		                                          G_REGEX_OPTIMIZE | G_REGEX_RAW, 0, NULL));
	g_autoptr (GArray) words = g_array_new (FALSE, TRUE, sizeof (EncodedWord));
	g_array_set_clear_func (words, encoded_word_clear);
	g_autoptr (GMatchInfo) m = NULL;
	g_regex_match (word_re, raw, 0, &m);
	for (; g_match_info_matches (m); g_match_info_next (m, NULL)) {
		EncodedWord w = { 0 };
		int start = 0, end = 0;
		g_match_info_fetch_pos (m, 0, &start, &end);
		w.start = (gsize) start;
		w.end = (gsize) end;
		w.charset = g_match_info_fetch (m, 1);
		g_autofree char *encoding = g_match_info_fetch (m, 2);
		w.base64 = g_ascii_tolower (*encoding) == 'b';
		w.text = g_match_info_fetch (m, 3);
		g_array_append_val (words, w);
	}
	GString *out = NULL;
	gsize copied = 0;
	for (guint first = 0, last; first < words->len; first = last) {
		EncodedWord *head = &g_array_index (words, EncodedWord, first);
		for (last = first + 1; last < words->len; last++) {
			EncodedWord *prev = &g_array_index (words, EncodedWord, last - 1);
			EncodedWord *next = &g_array_index (words, EncodedWord, last);
			if (g_ascii_strcasecmp (next->charset, head->charset) != 0 ||
			    !only_space_between (raw, prev->end, next->start))
				break;
		}
		if (!run_is_misread (words, first, last))
			continue;
		g_autoptr (GByteArray) bytes = g_byte_array_new ();
		for (guint i = first; i < last; i++)
			decode_word (&g_array_index (words, EncodedWord, i), bytes);
		g_autofree char *b64 = g_base64_encode (bytes->data, bytes->len);
		if (!out)
			out = g_string_new (NULL);
		g_string_append_len (out, raw + copied, (gssize) (head->start - copied));
		g_string_append_printf (out, "=?%s?B?%s?=", head->charset, b64);
		copied = g_array_index (words, EncodedWord, last - 1).end;
	}
	if (!out)
		return NULL;
	g_string_append (out, raw + copied);
	return g_string_free (out, FALSE);
}

/* Rewrites the misread runs in obj's own headers; GMime re-parses a
 * header (subject, addresses, parameters) when its raw value is set. */
static void
repair_encoded_words (GMimeObject *obj)
{
	GMimeHeaderList *list = g_mime_object_get_header_list (obj);
	int count = list ? g_mime_header_list_get_count (list) : 0;
	for (int i = 0; i < count; i++) {
		GMimeHeader *header = g_mime_header_list_get_header_at (list, i);
		const char *raw = g_mime_header_get_raw_value (header);
		if (!raw || !strstr (raw, "?="))
			continue;
		g_autofree char *merged = merge_encoded_words (raw);
		if (merged)
			g_mime_header_set_raw_value (header, merged);
	}
}

/* ---- the tree ---- */

static void walk (Walk *w, GMimeObject *obj, int depth, int mime_depth, gboolean collect);

/* The child of a multipart/alternative that gives the body: plain text,
 * else a multipart (which may hold plain text), else HTML, else the
 * first. */
static int
choose_alternative (GMimeMultipart *mp)
{
	int best = 0, best_score = -1;
	for (int i = 0; i < g_mime_multipart_get_count (mp); i++) {
		GMimeObject *child = g_mime_multipart_get_part (mp, i);
		int score = 0;
		if (GMIME_IS_PART (child) && is_body_text (child))
			score = has_type (child, "text", "plain") ? 3 : 1;
		else if (GMIME_IS_MULTIPART (child))
			score = 2;
		if (score > best_score) {
			best = i;
			best_score = score;
		}
	}
	return best;
}

static void
walk_multipart (Walk *w, GMimeObject *obj, int depth, int mime_depth, gboolean collect)
{
	GMimeMultipart *mp = GMIME_MULTIPART (obj);
	int count = g_mime_multipart_get_count (mp);
	gboolean alternative = has_type (obj, "multipart", "alternative");
	/* only the root of related, signed and encrypted content is text */
	gboolean root_only = has_type (obj, "multipart", "related") || has_type (obj, "multipart", "signed")
	                     || has_type (obj, "multipart", "encrypted");
	int chosen = alternative ? choose_alternative (mp) : 0;

	if (count == 0)
		add_problem (w->msg, "empty multipart (part %d)", w->parts_seen);
	if (depth == 0 && mime_depth == 1 && has_type (obj, "multipart", "report"))
		w->msg->is_report = TRUE;
	for (int i = 0; i < count && !w->error; i++) {
		gboolean child_collect = collect && (!(alternative || root_only) || i == chosen);
		walk (w, g_mime_multipart_get_part (mp, i), depth, mime_depth + 1, child_collect);
	}
}

static void
walk (Walk *w, GMimeObject *obj, int depth, int mime_depth, gboolean collect)
{
	if (!obj || w->error)
		return;
	if (mime_depth > w->lim.max_depth) {
		if (!w->depth_noted)
			add_problem (w->msg, "MIME depth limit (%d) reached: deeper parts ignored", w->lim.max_depth);
		w->depth_noted = TRUE;
		return;
	}
	if (++w->parts_seen > w->lim.max_parts) {
		if (!w->parts_noted)
			add_problem (w->msg, "MIME part limit (%d) reached: later parts ignored", w->lim.max_parts);
		w->parts_noted = TRUE;
		return;
	}
	repair_encoded_words (obj);
	if (GMIME_IS_MULTIPART (obj)) {
		walk_multipart (w, obj, depth, mime_depth, collect);
	} else if (GMIME_IS_MESSAGE_PART (obj)) {
		store_part (w, obj, depth, NULL, 0);
		GMimeMessage *inner = g_mime_message_part_get_message (GMIME_MESSAGE_PART (obj));
		if (inner)
			walk (w, g_mime_message_get_mime_part (inner), depth + 1, mime_depth + 1, FALSE);
	} else if (GMIME_IS_PART (obj)) {
		if (!is_body_text (obj)) {
			MdAttachment *att = store_part (w, obj, depth, NULL, 0);
			if (att && is_tnef (att))
				extract_tnef (w, att);
		} else if (collect && has_type (obj, "text", "html")) {
			take_html (w, obj, depth);
		} else if (collect) {
			take_plain (w, obj, depth);
		}
	}
}

/* ---- envelope ---- */

static char *
header_text (const char *value, gsize max)
{
	if (!value)
		return NULL;
	char *text = printable (value, max);
	return text;
}

static void
add_mailboxes (GPtrArray *out, InternetAddressList *list, int nesting)
{
	for (int i = 0; list && i < internet_address_list_length (list) && out->len < MAX_ADDRESSES; i++) {
		InternetAddress *ia = internet_address_list_get_address (list, i);
		if (INTERNET_ADDRESS_IS_MAILBOX (ia)) {
			const char *addr = internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (ia));
			if (addr && *addr)
				g_ptr_array_add (out, header_text (addr, 998));
		} else if (INTERNET_ADDRESS_IS_GROUP (ia) && nesting < 2) {
			add_mailboxes (out, internet_address_group_get_members (INTERNET_ADDRESS_GROUP (ia)), nesting + 1);
		}
	}
}

/* Whether a raw From value names one mailbox without ambiguity: one
 * angle-addr holding a single '@' with nothing after it and no '@' in
 * the phrase before it, or a bare addr-spec alone; quotes and comments
 * aside.  GMime's lenient parser makes an address of anything
 * ("<carol@acme.com@evil.net>" reads as carol@acme.com), while a filter
 * upstream may read the same header differently; since a From is what
 * authorizes a customer, an odd one names no one.  A phrase may hold
 * what RFC 5322 wants quoted (Doe, John <john@...>): mail has it. */
static gboolean
from_is_unambiguous (const char *raw)
{
	gboolean quoted = FALSE, in_angle = FALSE, seen_angle = FALSE, after_angle = FALSE;
	guint comment_depth = 0, at_outside = 0, at_inside = 0, separators = 0;

	for (const char *p = raw; *p; p++) {
		char c = *p;
		if (quoted || comment_depth) {
			if (c == '\\' && p[1])
				p++;
			else if (quoted && c == '"')
				quoted = FALSE;
			else if (!quoted && c == '(')
				comment_depth++;
			else if (!quoted && c == ')')
				comment_depth--;
			continue;
		}
		if (c == '(') {
			comment_depth = 1;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (after_angle || (guchar) c < 0x20)
			return FALSE;  /* something after the address, or a control */
		switch (c) {
		case '"': quoted = TRUE; break;
		case '<':
			if (seen_angle)
				return FALSE;
			in_angle = seen_angle = TRUE;
			break;
		case '>':
			if (!in_angle)
				return FALSE;
			in_angle = FALSE;
			after_angle = TRUE;
			break;
		case '@': in_angle ? at_inside++ : at_outside++; break;
		case ',':
		case ';':
		case ':':
			separators += !in_angle;
			break;
		default:
			break;
		}
	}
	if (seen_angle)
		return after_angle && at_inside == 1 && at_outside == 0;
	return at_outside == 1 && separators == 0;
}

static guint
count_headers (GMimeObject *object, const char *name)
{
	GMimeHeaderList *list = g_mime_object_get_header_list (object);
	guint n = 0;
	for (int i = 0; i < g_mime_header_list_get_count (list); i++)
		n += g_ascii_strcasecmp (g_mime_header_get_name (g_mime_header_list_get_header_at (list, i)), name) == 0;
	return n;
}

static void
fill_from (MdMessage *msg, GMimeMessage *gm)
{
	GMimeHeader *header = g_mime_header_list_get_header (g_mime_object_get_header_list (GMIME_OBJECT (gm)), "From");
	if (!header) {
		add_problem (msg, "no From header");
		return;
	}
	const char *raw = g_mime_header_get_raw_value (header);
	if (!raw || count_headers (GMIME_OBJECT (gm), "From") > 1 || !from_is_unambiguous (raw)) {
		msg->from_ambiguous = TRUE;
		add_problem (msg, "ambiguous From header: the sender is unknown");
		return;
	}
	InternetAddressList *from = g_mime_message_get_from (gm);
	for (int i = 0; from && i < internet_address_list_length (from); i++) {
		InternetAddress *ia = internet_address_list_get_address (from, i);
		if (!INTERNET_ADDRESS_IS_MAILBOX (ia))
			continue;
		const char *addr = internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (ia));
		if (!addr || !strchr (addr, '@'))
			continue;
		msg->from_addr = header_text (addr, 998);
		const char *name = internet_address_get_name (ia);
		if (name && *name)
			msg->from_name = header_text (name, 998);
		return;
	}
	add_problem (msg, "unparseable From header");
}

/* msg-ids of a header, without <>; the last max of them */
static void
add_msgids (GPtrArray *out, const char *value, int max)
{
	if (!value)
		return;
	GMimeReferences *refs = g_mime_references_parse (NULL, value);
	int count = refs ? g_mime_references_length (refs) : 0;
	for (int i = MAX (0, count - max); i < count; i++)
		g_ptr_array_add (out, header_text (g_mime_references_get_message_id (refs, i), 998));
	if (refs)
		g_mime_references_free (refs);
}

static void
fill_headers (Walk *w, GMimeMessage *gm)
{
	MdMessage *msg = w->msg;
	GMimeHeaderList *list = g_mime_object_get_header_list (GMIME_OBJECT (gm));
	int count = g_mime_header_list_get_count (list);

	if (count > w->lim.max_headers)
		add_problem (msg, "%d headers: only the first %d kept", count, w->lim.max_headers);
	for (int i = 0; i < count && i < w->lim.max_headers; i++) {
		GMimeHeader *header = g_mime_header_list_get_header_at (list, i);
		const char *value = g_mime_header_get_value (header);
		const char *name = g_mime_header_get_name (header);
		gsize len = value ? strlen (value) : 0;
		if (len > w->lim.max_header_len) {
			g_autofree char *shown = printable (name, 60);
			add_problem (msg, "header %s longer than %" G_GSIZE_FORMAT " bytes: cut", shown, w->lim.max_header_len);
		}
		MdHeader *h = g_new0 (MdHeader, 1);
		h->name = printable (name, 200);
		h->value = printable (value ? value : "", w->lim.max_header_len);
		g_ptr_array_add (msg->headers, h);
		if (g_ascii_strcasecmp (name, "Authentication-Results") == 0) {
			/* GMime's value has its encoded words decoded, as for a
			 * Subject: a sender's =?us-ascii?q?mx.desk.example?= would
			 * read as the desk's MTA, which strips only its own name. */
			const char *raw = g_mime_header_get_raw_value (header);
			g_autofree char *unfolded = g_strdup (raw ? raw : "");
			g_strdelimit (unfolded, "\r\n", ' ');
			g_ptr_array_insert (msg->auth_results, msg->auth_results->len - 1,
			                    printable (unfolded, w->lim.max_header_len));
		}
	}
}

static void
fill_envelope (Walk *w, GMimeMessage *gm)
{
	MdMessage *msg = w->msg;
	gsize max = w->lim.max_header_len;

	fill_headers (w, gm);
	fill_from (msg, gm);
	const char *id = g_mime_message_get_message_id (gm);
	if (id && *id)
		msg->message_id = header_text (id, MIN (max, 998));
	g_autoptr (GPtrArray) reply_to = g_ptr_array_new_with_free_func (g_free);
	add_msgids (reply_to, g_mime_object_get_header (GMIME_OBJECT (gm), "In-Reply-To"), G_MAXINT);
	if (reply_to->len > 0)
		msg->in_reply_to = g_strdup (reply_to->pdata[0]);
	add_msgids (msg->references, g_mime_object_get_header (GMIME_OBJECT (gm), "References"), MAX_REFERENCES);
	add_mailboxes (msg->to, g_mime_message_get_addresses (gm, GMIME_ADDRESS_TYPE_TO), 0);
	add_mailboxes (msg->cc, g_mime_message_get_addresses (gm, GMIME_ADDRESS_TYPE_CC), 0);
	const char *subject = g_mime_message_get_subject (gm);
	msg->subject = subject ? printable (subject, max) : g_strdup ("");
	GDateTime *date = g_mime_message_get_date (gm);
	if (date)
		msg->date = g_date_time_to_unix (date);
	else if (g_mime_object_get_header (GMIME_OBJECT (gm), "Date"))
		add_problem (msg, "unparseable Date header");
}

/* ---- delivery status notifications ---- */

static char *
message_id_of_headers (GByteArray *headers)
{
	g_byte_array_append (headers, (const guint8 *) "\n\n", 2);
	GMimeStream *mem = g_mime_stream_mem_new_with_buffer ((const char *) headers->data, headers->len);
	GMimeParser *parser = g_mime_parser_new_with_stream (mem);
	GMimeMessage *gm = g_mime_parser_construct_message (parser, NULL);
	char *id = NULL;
	if (gm && g_mime_message_get_message_id (gm))
		id = header_text (g_mime_message_get_message_id (gm), 998);
	g_clear_object (&gm);
	g_object_unref (parser);
	g_object_unref (mem);
	return id;
}

/* RFC 3464: per-recipient blocks of "Final-Recipient: rfc822; addr" and
 * "Action: failed"; the addresses that failed for good. */
static void
collect_failed_recipients (MdMessage *msg, GByteArray *status)
{
	if (status->len == 0)
		return;  /* an empty part: g_strndup (NULL, 0) is NULL, not "" */
	g_autofree char *text = g_strndup ((const char *) status->data, status->len);
	/* RAW: the part may hold any bytes, and on invalid UTF-8 a UTF-8
	 * pattern fails to match and the split returns NULL */
	g_auto (GStrv) blocks = g_regex_split_simple ("\r?\n\\s*\r?\n", text, G_REGEX_RAW, 0);
	if (!blocks)
		return;
	for (int b = 0; blocks[b] && msg->report_failed_recipients->len < 100; b++) {
		g_autofree char *recipient = NULL;
		gboolean failed = FALSE;
		g_auto (GStrv) lines = g_strsplit (blocks[b], "\n", 64);
		for (int i = 0; lines[i]; i++) {
			char *line = g_strstrip (lines[i]);
			if (g_ascii_strncasecmp (line, "Final-Recipient:", 16) == 0) {
				char *semi = strchr (line, ';');
				char *value = semi ? semi + 1 : line + 16;
				g_free (recipient);
				recipient = g_ascii_strdown (g_strstrip (value), -1);
			} else if (g_ascii_strncasecmp (line, "Action:", 7) == 0) {
				failed = g_ascii_strncasecmp (g_strstrip (line + 7), "failed", 6) == 0;
			}
		}
		if (recipient && failed && strchr (recipient, '@') && !strpbrk (recipient, " <>\"\r\n")
		    && g_utf8_validate (recipient, -1, NULL))
			g_ptr_array_add (msg->report_failed_recipients, g_steal_pointer (&recipient));
	}
}

static void
find_report_original (MdMessage *msg, GMimeObject *report)
{
	if (!GMIME_IS_MULTIPART (report))
		return;
	GMimeMultipart *mp = GMIME_MULTIPART (report);
	for (int i = 1; i < g_mime_multipart_get_count (mp) && i < 8; i++) {
		GMimeObject *part = g_mime_multipart_get_part (mp, i);
		if (GMIME_IS_MESSAGE_PART (part)) {
			GMimeMessage *inner = g_mime_message_part_get_message (GMIME_MESSAGE_PART (part));
			const char *id = inner ? g_mime_message_get_message_id (inner) : NULL;
			if (id && *id && !msg->report_original_message_id)
				msg->report_original_message_id = header_text (id, 998);
		} else if (has_type (part, "message", "delivery-status")) {
			g_autoptr (GByteArray) bytes = g_byte_array_new ();
			MdMessageSink *sink = sink_new (NULL, bytes, MAX_REPORT_HEADERS);
			write_content (part, sink);
			g_object_unref (sink);
			collect_failed_recipients (msg, bytes);
		} else if (has_type (part, "text", "rfc822-headers")) {
			g_autoptr (GByteArray) bytes = g_byte_array_new ();
			MdMessageSink *sink = sink_new (NULL, bytes, MAX_REPORT_HEADERS);
			write_content (part, sink);
			g_object_unref (sink);
			if (!msg->report_original_message_id)
				msg->report_original_message_id = message_id_of_headers (bytes);
		}
	}
}

/* ---- entry points ---- */

/* What one part may take in memory, where it cannot be streamed: body
 * text, and a winmail.dat, which libytnef reads whole and then copies
 * what it holds (a 30 MB one took 77 MB; every other part streams). */
#define MAX_PART_IN_MEMORY (4 * 1024 * 1024)

MdMessageLimits
md_message_limits_default (void)
{
	return (MdMessageLimits) {
		.max_depth = 50,
		.max_parts = 1000,
		.max_header_len = 64 * 1024,
		.max_headers = 500,
		.max_text_len = MAX_PART_IN_MEMORY,
		.max_tnef_len = MAX_PART_IN_MEMORY,
	};
}

void
md_message_init (void)
{
	static gsize done;
	if (g_once_init_enter (&done)) {
		g_mime_init ();
		g_once_init_leave (&done, 1);
	}
}

static const char *
warning_text (GMimeParserWarning code)
{
	switch (code) {
	case GMIME_WARN_DUPLICATED_HEADER: return "duplicated header";
	case GMIME_WARN_DUPLICATED_PARAMETER: return "duplicated header parameter";
	case GMIME_WARN_UNENCODED_8BIT_HEADER: return "8-bit bytes in headers";
	case GMIME_WARN_INVALID_CONTENT_TYPE: return "invalid Content-Type";
	case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE: return "invalid RFC 2047 encoded word";
	case GMIME_WARN_MALFORMED_MULTIPART: return "multipart without parts";
	case GMIME_WARN_TRUNCATED_MESSAGE: return "truncated message";
	case GMIME_WARN_MALFORMED_MESSAGE: return "malformed message";
	case GMIME_CRIT_INVALID_HEADER_NAME: return "invalid header name";
	case GMIME_CRIT_CONFLICTING_HEADER: return "conflicting headers";
	case GMIME_CRIT_CONFLICTING_PARAMETER: return "conflicting header parameters";
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY: return "multipart without boundary";
	case GMIME_WARN_INVALID_PARAMETER: return "invalid header parameter";
	case GMIME_WARN_INVALID_ADDRESS_LIST: return "invalid address list";
	case GMIME_CRIT_NESTING_OVERFLOW: return "MIME nesting too deep";
	case GMIME_WARN_PART_WITHOUT_CONTENT: return "part without content";
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT: return "part without headers or content";
	}
	return "malformed MIME";
}

static void
on_parser_warning (gint64 offset, GMimeParserWarning code, const char *item, gpointer user_data)
{
	Warnings *warnings = user_data;
	MdMessage *msg = warnings->msg;
	guint32 bit = 1u << ((guint) code % 32);

	if (warnings->seen & bit)
		return;
	warnings->seen |= bit;
	/* the item is sender-controlled: quote a bounded, printable prefix */
	if (item && *item && code != GMIME_WARN_UNENCODED_8BIT_HEADER) {
		g_autofree char *shown = printable (item, 60);
		add_problem (msg, "%s: %s", warning_text (code), shown);
	} else {
		add_problem (msg, "%s", warning_text (code));
	}
}

static MdMessage *
message_new (void)
{
	MdMessage *msg = g_new0 (MdMessage, 1);
	msg->references = g_ptr_array_new_with_free_func (g_free);
	msg->to = g_ptr_array_new_with_free_func (g_free);
	msg->cc = g_ptr_array_new_with_free_func (g_free);
	msg->attachments = g_ptr_array_new_with_free_func (attachment_free);
	msg->headers = g_ptr_array_new ();
	msg->auth_results = g_ptr_array_new_with_free_func (g_free);
	g_ptr_array_add (msg->auth_results, NULL);
	msg->problems = g_ptr_array_new_with_free_func (g_free);
	msg->report_failed_recipients = g_ptr_array_new_with_free_func (g_free);
	return msg;
}

/* Input GMime could not read as a message at all: its text is the body. */
static gboolean
read_as_text (MdMessage *msg, int fd, gsize max, GError **error)
{
	g_autofree char *buf = g_malloc (max);
	gsize len = 0;
	if (lseek (fd, 0, SEEK_SET) < 0) {
		md_set_errno_error (error, errno, "cannot seek", "message");
		return FALSE;
	}
	while (len < max) {
		ssize_t n = read (fd, buf + len, max - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			md_set_errno_error (error, errno, "cannot read", "message");
			return FALSE;
		}
		if (n == 0)
			break;
		len += (gsize) n;
	}
	msg->body = md_charset_to_utf8 (buf, len, NULL, NULL);
	msg->subject = g_strdup ("");
	add_problem (msg, "not a MIME message");
	return TRUE;
}

/* Finds where the top-level header section must be cut: *cut_r is the
 * end of the last whole line within MAX_HEADER_SECTION, *resume_r where
 * the empty line after the headers starts (the file's size when there is
 * none).  FALSE when the section is small enough to leave alone. */
static gboolean
header_section_too_long (int fd, gint64 *cut_r, gint64 *resume_r)
{
	char buf[65536];
	gint64 offset = 0, cut = 0;
	gboolean line_start = TRUE, within = TRUE;
	guint fields = 1;
	ssize_t n;

	while ((n = pread (fd, buf, sizeof buf, offset)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char next = 0;
			if (line_start && buf[i] == '\r' && (i + 1 < n || pread (fd, &next, 1, offset + i + 1) == 1))
				next = i + 1 < n ? buf[i + 1] : next;
			if (line_start && (buf[i] == '\n' || (buf[i] == '\r' && next == '\n'))) {
				if (within)
					return FALSE;
				*cut_r = cut ? cut : MAX_HEADER_SECTION;
				*resume_r = offset + i;
				return TRUE;
			}
			gboolean line_end = buf[i] == '\n';
			/* a field starts the next line unless it is folded */
			gboolean field_next = line_end && (i + 1 < n ? buf[i + 1] != ' ' && buf[i + 1] != '\t' : TRUE);
			line_start = line_end;
			if (line_end && within) {
				within = offset + i + 1 <= MAX_HEADER_SECTION && (!field_next || ++fields < MAX_HEADER_FIELDS);
				if (within)
					cut = offset + i + 1;
			}
		}
		offset += n;
	}
	if (within && offset <= MAX_HEADER_SECTION)
		return FALSE;
	*cut_r = cut ? cut : MAX_HEADER_SECTION;
	*resume_r = offset;
	return TRUE;
}

/* Whether a line ("--" already seen) looks like a MIME boundary: up to
 * 70 characters after "--", no white space, not only dashes. */
static gboolean
boundary_like (const char *line, gsize len)
{
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (len < 3 || len > 2 + 70 + 2)
		return FALSE;
	gboolean only_dashes = TRUE;
	for (gsize i = 2; i < len; i++) {
		if (line[i] == ' ' || line[i] == '\t')
			return FALSE;
		only_dashes = only_dashes && line[i] == '-';
	}
	return !only_dashes;
}

/* Whether a line (its first bytes in HEAD) looks like a header field:
 * a field name, then ':'. */
static gboolean
field_like (const char *head, gsize len)
{
	gsize i = 0;
	while (i < len && head[i] > ' ' && head[i] < 127 && head[i] != ':')
		i++;
	return i > 0 && i < len && head[i] == ':';
}

static gboolean
mentions_message_type (const char *head, gsize len)
{
	for (gsize i = 0; i + 8 <= len; i++)
		if (g_ascii_strncasecmp (head + i, "message/", 8) == 0)
			return TRUE;
	return FALSE;
}

/* Where GMime must stop reading, as the header blocks of parts are
 * scanned; one instance per message. */
typedef struct {
	enum { IN_BODY, IN_PART_HEADERS, EMBEDDED_NEXT } state;
	gboolean top;        /* in the top-level header block: bounded elsewhere */
	gboolean embeds;     /* this header block announced a message/... part */
	guint boundaries;
	guint block_fields;
	guint total_fields;
} PartScan;

/* Feeds one line; FALSE with *why_r set when GMime must not see it. */
static gboolean
part_scan_line (PartScan *ps, const char *head, gsize len, const char **why_r)
{
	gboolean blank = len == 0 || head[0] == '\n' || (head[0] == '\r' && (len == 1 || head[1] == '\n'));

	if (len >= 3 && head[0] == '-' && head[1] == '-' && boundary_like (head, len)) {
		if (++ps->boundaries >= MAX_BOUNDARY_LINES) {
			*why_r = "more than " G_STRINGIFY (MAX_BOUNDARY_LINES) " MIME boundaries";
			return FALSE;
		}
		ps->state = IN_PART_HEADERS;
		ps->top = ps->embeds = FALSE;
		ps->block_fields = 0;
		return TRUE;
	}
	if (ps->state == IN_BODY)
		return TRUE;
	if (ps->state == EMBEDDED_NEXT && !blank) {
		ps->state = IN_PART_HEADERS;   /* an embedded message's own header block */
		ps->embeds = FALSE;
		ps->block_fields = 0;
	}
	gboolean folded = head[0] == ' ' || head[0] == '\t';
	if (ps->state == IN_PART_HEADERS && !blank && (folded || field_like (head, len))) {
		ps->embeds |= mentions_message_type (head, len);
		if (ps->top || folded)
			return TRUE;
		if (++ps->block_fields > MAX_PART_HEADER_FIELDS) {
			*why_r = "a header block of more than " G_STRINGIFY (MAX_PART_HEADER_FIELDS) " fields";
			return FALSE;
		}
		if (++ps->total_fields > MAX_PART_HEADER_FIELDS_TOTAL) {
			*why_r = "more than " G_STRINGIFY (MAX_PART_HEADER_FIELDS_TOTAL) " header fields in parts";
			return FALSE;
		}
		return TRUE;
	}
	ps->state = blank && ps->state == IN_PART_HEADERS && ps->embeds ? EMBEDDED_NEXT : IN_BODY;
	ps->top = FALSE;
	return TRUE;
}

/* The offset of the first line GMime must not see, or -1: past
 * MAX_BOUNDARY_LINES boundary-like lines, or inside a part's header block
 * (or an embedded message's) past the header bounds.  Lines are read
 * from the start, only their first bytes kept. */
static gint64
parse_end_at (int fd, const char **why_r)
{
	char buf[65536], head[80];
	gsize head_len = 0;
	gint64 offset = 0, line_start = 0;
	PartScan ps = { .state = IN_PART_HEADERS, .top = TRUE };
	ssize_t n;

	while ((n = pread (fd, buf, sizeof buf, offset)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (head_len < sizeof head)
				head[head_len++] = buf[i];
			if (buf[i] != '\n')
				continue;
			if (!part_scan_line (&ps, head, head_len, why_r))
				return line_start;
			head_len = 0;
			line_start = offset + i + 1;
		}
		offset += n;
	}
	return -1;
}

/* The stream GMime parses: the file, or when its header section is too
 * long, the file with the headers past the bound left out. */
static GMimeStream *
bounded_stream (MdMessage *msg, int fd)
{
	GMimeStream *file = g_mime_stream_fs_new (fd);   /* owns fd */
	gint64 cut, resume;

	gboolean long_headers = header_section_too_long (fd, &cut, &resume);
	const char *why = NULL;
	gint64 end = parse_end_at (fd, &why);
	if (long_headers && end >= 0 && end < resume)
		end = resume;  /* boundary-like lines inside the top-level headers */
	if (!long_headers && end < 0)
		return file;
	if (long_headers)
		add_problem (msg, "header section of %" G_GINT64_FORMAT " bytes cut to %" G_GINT64_FORMAT, resume, cut);
	else
		cut = resume = 0;
	if (end >= 0)
		add_problem (msg, "%s: the rest of the message, from byte %" G_GINT64_FORMAT
		             ", is only in the raw message", why, end);
	GMimeStream *cat = g_mime_stream_cat_new ();
	GMimeStream *head = g_mime_stream_substream (file, 0, cut);
	GMimeStream *rest = g_mime_stream_substream (file, resume, end);
	g_mime_stream_cat_add_source (GMIME_STREAM_CAT (cat), head);
	g_mime_stream_cat_add_source (GMIME_STREAM_CAT (cat), rest);
	g_object_unref (head);
	g_object_unref (rest);
	g_object_unref (file);
	return cat;
}

MdMessage *
md_message_parse_file (const char *path, MdSpool *spool, const MdMessageLimits *limits, GError **error)
{
	md_message_init ();
	int fd = open (path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		md_set_errno_error (error, errno, "cannot open", path);
		return NULL;
	}
	g_autoptr (MdMessage) msg = message_new ();
	Walk w = { .msg = msg, .spool = spool, .lim = limits ? *limits : md_message_limits_default () };
	w.plain = g_string_new (NULL);
	w.html = g_array_new (FALSE, TRUE, sizeof (PendingHtml));

	static const char *fallback_charsets[] = { "UTF-8", "windows-1252", NULL };
	GMimeParserOptions *options = g_mime_parser_options_new ();
	g_mime_parser_options_set_fallback_charsets (options, fallback_charsets);
	Warnings warnings = { msg, 0 };
	g_mime_parser_options_set_warning_callback (options, on_parser_warning, &warnings);

	GMimeStream *stream = bounded_stream (msg, fd);   /* owns fd */
	GMimeParser *parser = g_mime_parser_new_with_stream (stream);
	g_mime_parser_set_persist_stream (parser, TRUE);
	GMimeMessage *gm = g_mime_parser_construct_message (parser, options);

	gboolean ok = TRUE;
	if (!gm) {
		ok = read_as_text (msg, fd, w.lim.max_text_len, &w.error);
	} else {
		repair_encoded_words (GMIME_OBJECT (gm));
		fill_envelope (&w, gm);
		GMimeObject *top = g_mime_message_get_mime_part (gm);
		walk (&w, top, 0, 1, TRUE);
		if (msg->is_report)
			find_report_original (msg, top);
		finish_body (&w);
	}
	if (w.error)
		ok = FALSE;

	for (guint i = 0; i < w.html->len; i++) {
		PendingHtml *p = &g_array_index (w.html, PendingHtml, i);
		g_byte_array_unref (p->html);
		g_free (p->charset);
	}
	g_array_free (w.html, TRUE);
	g_string_free (w.plain, TRUE);
	g_clear_object (&gm);
	g_object_unref (parser);
	g_object_unref (stream);
	g_mime_parser_options_free (options);
	if (!ok) {
		g_propagate_error (error, w.error);
		return NULL;
	}
	if (!msg->body)
		msg->body = g_strdup ("");
	if (!msg->subject)
		msg->subject = g_strdup ("");
	return g_steal_pointer (&msg);
}

const char *const *
md_message_header_values (MdMessage *msg, const char *name)
{
	if (!msg->header_index) {
		msg->header_index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
		                                           (GDestroyNotify) g_ptr_array_unref);
		for (guint i = 0; i < msg->headers->len; i++) {
			MdHeader *h = msg->headers->pdata[i];
			char *key = g_ascii_strdown (h->name, -1);
			GPtrArray *values = g_hash_table_lookup (msg->header_index, key);
			if (!values) {
				values = g_ptr_array_new ();
				g_hash_table_insert (msg->header_index, key, values);
			} else {
				g_free (key);
				g_ptr_array_remove_index (values, values->len - 1);  /* the NULL */
			}
			g_ptr_array_add (values, h->value);
			g_ptr_array_add (values, NULL);
		}
	}
	g_autofree char *key = g_ascii_strdown (name, -1);
	GPtrArray *values = g_hash_table_lookup (msg->header_index, key);
	return values ? (const char *const *) values->pdata : NULL;
}

void
md_message_free (MdMessage *msg)
{
	if (!msg)
		return;
	g_free (msg->message_id);
	g_free (msg->in_reply_to);
	g_ptr_array_unref (msg->references);
	g_free (msg->from_addr);
	g_free (msg->from_name);
	g_free (msg->envelope_sender);
	g_ptr_array_unref (msg->to);
	g_ptr_array_unref (msg->cc);
	g_free (msg->subject);
	g_free (msg->body);
	g_ptr_array_unref (msg->attachments);
	for (guint i = 0; i < msg->headers->len; i++) {
		MdHeader *h = msg->headers->pdata[i];
		g_free (h->name);
		g_free (h->value);
		g_free (h);
	}
	g_ptr_array_unref (msg->headers);
	g_ptr_array_unref (msg->auth_results);
	g_free (msg->report_original_message_id);
	if (msg->report_failed_recipients)
		g_ptr_array_unref (msg->report_failed_recipients);
	g_ptr_array_unref (msg->problems);
	if (msg->header_index)
		g_hash_table_unref (msg->header_index);
	g_free (msg);
}
