/* compose.c - turns an MdOutgoing into RFC 5322 bytes with GMime; owns
 * what may reach an outgoing header and in which shape. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gmime/gmime.h>

#include "charset.h"
#include "compose.h"
#include "md.h"
#include "spool.h"      /* md_set_errno_error */

/* GMime 3.2 declares no cleanup functions of its own */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeMessage, g_object_unref)

#define MAX_MESSAGE_ID 250
#define MAX_TICKET_KEY 32
#define MAX_HEADER_VALUE 100
#define MAX_DATE_OFFSET (24 * 3600)   /* GTimeZone takes less than a day either way */

/* CRLF line ends; set once, only read after */
static GMimeFormatOptions *format_options;

static void
ensure_gmime (void)
{
	static gsize done = 0;
	if (g_once_init_enter (&done)) {
		g_mime_init ();
		format_options = g_mime_format_options_new ();
		g_mime_format_options_set_newline_format (format_options, GMIME_NEWLINE_FORMAT_DOS);
		g_once_init_leave (&done, 1);
	}
}

/* ---- cleaning what goes into headers ---- */

/* The address with every control character removed (a CR/LF pair must
 * not leave a gap that a later check could read as a separator). */
static char *
strip_controls (const char *text)
{
	GString *out = g_string_new (NULL);
	for (const char *c = text ? text : ""; *c; c++)
		if ((guchar) *c >= 0x20 && *c != 0x7f)
			g_string_append_c (out, *c);
	return g_string_free (out, FALSE);
}

static gboolean
is_atext (char c)
{
	return g_ascii_isalnum (c) || (c && strchr ("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 4.1.2 Dot-string local part; RFC 1035 LDH labels. */
gboolean
md_compose_address_is_valid (const char *email)
{
	if (!email)
		return FALSE;
	gsize len = strlen (email);
	const char *at = strrchr (email, '@');
	if (len > 254 || !at || at == email || at - email > 64 || at[1] == '\0')
		return FALSE;
	char prev = '.';
	for (const char *c = email; c < at; prev = *c++)
		if (!(is_atext (*c) || (*c == '.' && prev != '.')))
			return FALSE;
	if (prev == '.')
		return FALSE;
	gsize label = 0;
	prev = '.';
	for (const char *c = at + 1;; prev = *c++) {
		if (*c == '.' || *c == '\0') {
			if (label == 0 || label > 63 || prev == '-')
				return FALSE;
			if (*c == '\0')
				return TRUE;
			label = 0;
		} else if (g_ascii_isalnum (*c) || (*c == '-' && label > 0)) {
			label++;
		} else {
			return FALSE;
		}
	}
}

/* A msg-id (RFC 5322 3.6.4) without its angle brackets, or NULL when
 * `text` does not look like one.  Free with g_free. */
static char *
clean_message_id (const char *text)
{
	if (!text)
		return NULL;
	g_autofree char *id = g_strstrip (g_strdup (text));
	char *start = id;
	gsize len = strlen (start);
	if (len >= 2 && start[0] == '<' && start[len - 1] == '>') {
		start[len - 1] = '\0';
		start++;
		len -= 2;
	}
	if (len == 0 || len > MAX_MESSAGE_ID)
		return NULL;
	int ats = 0;
	for (const char *c = start; *c; c++) {
		if ((guchar) *c <= 0x20 || (guchar) *c >= 0x7f || strchr ("<>()\\,;:\"", *c))
			return NULL;
		ats += *c == '@';
	}
	if (ats != 1 || start[0] == '@' || start[len - 1] == '@')
		return NULL;
	return g_strdup (start);
}

static gboolean
is_ticket_key (const char *key)
{
	const char *dash = key ? strrchr (key, '-') : NULL;
	if (!dash || dash == key || dash[1] == '\0' || strlen (key) > MAX_TICKET_KEY)
		return FALSE;
	for (const char *c = key; c < dash; c++)
		if (!g_ascii_isalnum (*c))
			return FALSE;
	for (const char *c = dash + 1; *c; c++)
		if (!g_ascii_isdigit (*c))
			return FALSE;
	return TRUE;
}

/* Length of the leading "Re: Fwd: " run, so the tag goes after it the
 * way mail clients show it: "Re: [SUP-1] Printer on fire". */
static gsize
reply_prefix_length (const char *subject)
{
	static const char *const markers[] = { "re:", "fw:", "fwd:", "aw:", "sv:", "vs:", "antw:", NULL };
	const char *p = subject;
	for (gboolean found = TRUE; found;) {
		found = FALSE;
		for (int i = 0; markers[i]; i++) {
			gsize len = strlen (markers[i]);
			if (g_ascii_strncasecmp (p, markers[i], len) == 0) {
				p += len;
				while (*p == ' ')
					p++;
				found = TRUE;
				break;
			}
		}
	}
	return p - subject;
}

char *
md_compose_tagged_subject (const char *subject, const char *ticket_key)
{
	g_autofree char *clean = md_text_one_line (subject, MD_COMPOSE_MAX_SUBJECT);
	if (!is_ticket_key (ticket_key))
		return g_steal_pointer (&clean);
	g_autofree char *tag = g_strdup_printf ("[%s]", ticket_key);
	g_autofree char *tag_folded = g_ascii_strdown (tag, -1);
	g_autofree char *subject_folded = g_ascii_strdown (clean, -1);
	if (strstr (subject_folded, tag_folded))
		return g_steal_pointer (&clean);
	/* the tag stays whole; the subject gives way */
	g_autofree char *rest = md_text_one_line (clean, MD_COMPOSE_MAX_SUBJECT - strlen (tag) - 1);
	gsize prefix = reply_prefix_length (rest);
	if (rest[prefix] == '\0')
		return rest[0] ? g_strconcat (rest, " ", tag, NULL) : g_steal_pointer (&tag);
	return g_strdup_printf ("%.*s%s %s", (int) prefix, rest, tag, rest + prefix);
}

/* ---- building ---- */

/* RFC 2047 4.2 "Q" encoding of one character's bytes; what stays
 * literal is safe in every header context (5(3)). */
static void
append_q (GString *word, const char *start, const char *end)
{
	for (const char *c = start; c < end; c++) {
		if (g_ascii_isalnum (*c) || strchr ("!*+-/", *c))
			g_string_append_c (word, *c);
		else if (*c == ' ')
			g_string_append_c (word, '_');
		else {
			g_string_append_c (word, '=');
			g_string_append_c (word, "0123456789ABCDEF"[(guchar) *c >> 4]);
			g_string_append_c (word, "0123456789ABCDEF"[(guchar) *c & 0xf]);
		}
	}
}

/* Whether a client could read some of `text` as an RFC 2047 encoded
 * word: GMime, Python and others decode "=?...?=" even inside a word,
 * so any "=?" counts.  Text like that is encoded itself, to be shown as
 * it is ("=?UTF-8?B?SGFja2Vk?= test" showed "Hacked test"). */
static gboolean
has_encoded_word_lookalike (const char *text)
{
	return text && strstr (text, "=?");
}

/* `text` as UTF-8 "Q" encoded words, each at most 75 characters (RFC
 * 2047 2) on its own folded line.  Safe in a phrase too (5(3)).
 *
 * Why not GMime's own encoder: it splits long text into base64 words
 * with padding ("...vg==?= =?UTF-8?B?INCw...") and GMime 3.2's decoder
 * joins adjacent base64 words before decoding, so it drops everything
 * after the first padded word; our ingest would read its own subjects
 * cut short.  Q words join safely. */
static void
append_q_words (GString *out, const char *text)
{
	static const char open[] = "=?UTF-8?Q?";
	const gsize max_text = 75 - strlen (open) - 2;
	g_autoptr (GString) word = g_string_new (NULL);
	g_autoptr (GString) piece = g_string_new (NULL);
	for (const char *c = text; *c; c = g_utf8_next_char (c)) {
		g_string_truncate (piece, 0);
		append_q (piece, c, g_utf8_next_char (c));
		if (word->len + piece->len > max_text) {
			g_string_append_printf (out, "%s%s?=\n ", open, word->str);
			g_string_truncate (word, 0);
		}
		g_string_append (word, piece->str);
	}
	if (word->len)
		g_string_append_printf (out, "%s%s?=", open, word->str);
}

/* The raw Subject value for a non-ASCII subject, or one a client could
 * decode: the leading ASCII words (the tag, "Re:") as they are, up to
 * the first word holding "=?", the rest as encoded words. */
static char *
encode_subject (const char *subject)
{
	const char *split = subject;
	for (const char *c = subject; *c && !((guchar) *c & 0x80); c++) {
		if (c[0] == '=' && c[1] == '?')
			break;
		if (*c == ' ')
			split = c + 1;
	}

	GString *out = g_string_new (" ");
	g_string_append_len (out, subject, split - subject);
	append_q_words (out, split);
	g_string_append_c (out, '\n');
	return g_string_free (out, FALSE);
}

static void
set_subject (GMimeMessage *msg, const char *subject)
{
	if (g_str_is_ascii (subject) && !has_encoded_word_lookalike (subject)) {
		g_mime_message_set_subject (msg, subject, "utf-8");
		return;
	}
	/* An empty Subject in its place, then our raw value, from which the
	 * message decodes its subject: GMime's encoding of the text would
	 * be thrown away, and it would send ASCII look-alikes as they are */
	g_mime_message_set_subject (msg, "", NULL);
	GMimeHeaderList *list = g_mime_object_get_header_list (GMIME_OBJECT (msg));
	g_autofree char *raw = encode_subject (subject);
	g_mime_header_set_raw_value (g_mime_header_list_get_header (list, "Subject"), raw);
}

/* UTF-8 names, whatever narrower charset GMime would pick */
static void
add_mailbox (GMimeMessage *msg, GMimeAddressType type, const char *name, const char *email)
{
	InternetAddress *mailbox = internet_address_mailbox_new (name && name[0] ? name : NULL, email);
	internet_address_set_charset (mailbox, "utf-8");
	internet_address_list_add (g_mime_message_get_addresses (msg, type), mailbox);
	g_object_unref (mailbox);
}

/* The addresses were checked by md_compose_check. */
static void
add_mailboxes (GMimeMessage *msg, GMimeAddressType type, const MdMailbox *boxes, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		g_autofree char *email = strip_controls (boxes[i].email);
		g_autofree char *name = md_text_one_line (boxes[i].name, MD_COMPOSE_MAX_NAME);
		add_mailbox (msg, type, name, email);
	}
}

/* GMime writes a display name holding "=?" as it is, for clients to
 * decode; such names go out as encoded words instead, through the raw
 * values of the address headers (the other mailboxes there as GMime
 * writes them).  Once every address is in: a change to a list would
 * rewrite its header. */
static void
encode_lookalike_names (GMimeMessage *msg)
{
	static const struct { GMimeAddressType type; const char *header; } kinds[] = {
		{ GMIME_ADDRESS_TYPE_FROM, "From" },
		{ GMIME_ADDRESS_TYPE_REPLY_TO, "Reply-To" },
		{ GMIME_ADDRESS_TYPE_TO, "To" },
		{ GMIME_ADDRESS_TYPE_CC, "Cc" },
	};
	GMimeHeaderList *headers = g_mime_object_get_header_list (GMIME_OBJECT (msg));
	for (gsize k = 0; k < G_N_ELEMENTS (kinds); k++) {
		InternetAddressList *list = g_mime_message_get_addresses (msg, kinds[k].type);
		int n = internet_address_list_length (list);
		gboolean lookalike = FALSE;
		for (int i = 0; i < n; i++)
			lookalike |= has_encoded_word_lookalike (
				internet_address_get_name (internet_address_list_get_address (list, i)));
		GMimeHeader *header = g_mime_header_list_get_header (headers, kinds[k].header);
		if (!lookalike || !header)
			continue;
		g_autoptr (GString) raw = g_string_new (NULL);
		for (int i = 0; i < n; i++) {
			InternetAddress *address = internet_address_list_get_address (list, i);
			const char *name = internet_address_get_name (address);
			g_string_append (raw, i ? ",\n " : " ");
			if (has_encoded_word_lookalike (name)) {
				append_q_words (raw, name);
				g_string_append_printf (raw, " <%s>",
				                        internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address)));
			} else {
				g_autofree char *text = internet_address_to_string (address, NULL, TRUE);
				g_string_append (raw, text);
			}
		}
		g_string_append_c (raw, '\n');
		g_mime_header_set_raw_value (header, raw->str);
	}
}

static void
set_header (GMimeMessage *msg, const char *name, const char *value)
{
	g_mime_object_set_header (GMIME_OBJECT (msg), name, value, "utf-8");
}

/* In-Reply-To and References (RFC 5322 3.6.4): the parent's ancestors
 * and the parent, oldest first, each id once.  The caller gives the
 * whole thread, so what follows the parent there (our acknowledgement,
 * later replies) is cut off: none of it is an ancestor.  Past the bound
 * the root stays and the oldest others go, as RFC 5322 suggests and
 * most clients do. */
static void
set_threading (GMimeMessage *msg, const MdOutgoing *o)
{
	g_autofree char *parent = clean_message_id (o->in_reply_to);
	g_autoptr (GPtrArray) refs = g_ptr_array_new_with_free_func (g_free);
	g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
	gboolean parent_listed = FALSE;
	for (gsize i = 0; o->references && o->references[i] && !parent_listed; i++) {
		char *id = clean_message_id (o->references[i]);
		if (!id || g_hash_table_contains (seen, id)) {
			g_free (id);
			continue;
		}
		g_hash_table_add (seen, id);
		g_ptr_array_add (refs, id);
		parent_listed = parent && strcmp (id, parent) == 0;
	}
	if (parent) {
		g_autofree char *header = g_strdup_printf ("<%s>", parent);
		set_header (msg, "In-Reply-To", header);
		if (!parent_listed)
			g_ptr_array_add (refs, g_strdup (parent));
	}
	if (refs->len > MD_COMPOSE_MAX_REFERENCES)
		g_ptr_array_remove_range (refs, 1, refs->len - MD_COMPOSE_MAX_REFERENCES);
	if (refs->len == 0)
		return;
	g_autoptr (GString) value = g_string_new (NULL);
	for (guint i = 0; i < refs->len; i++)
		g_string_append_printf (value, "%s<%s>", i ? " " : "", (char *) g_ptr_array_index (refs, i));
	set_header (msg, "References", value->str);
}

/* A header a template may set, as it is spelled, or NULL. */
static const char *
allowed_header (const char *name)
{
	static const char *const allowed[] = { "Importance", "Content-Language", NULL };
	for (int a = 0; allowed[a]; a++)
		if (g_ascii_strcasecmp (name, allowed[a]) == 0)
			return allowed[a];
	return NULL;
}

/* The names were checked by md_compose_check. */
static void
set_extra_headers (GMimeMessage *msg, const char *const *headers)
{
	for (gsize i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
		g_autofree char *value = md_text_one_line (headers[i + 1], MAX_HEADER_VALUE);
		set_header (msg, allowed_header (headers[i]), value);
	}
}

static GMimeObject *
text_body (const char *body)
{
	GMimeTextPart *text = g_mime_text_part_new_with_subtype ("plain");
	g_autofree char *valid = g_utf8_make_valid (body ? body : "", -1);
	/* A lone CR is the line break it stands for: GMime only turns LF
	 * into CRLF, and would pick 7bit for ASCII text and send the CR raw
	 * (RFC 5322 2.3, RFC 5321 2.3.8), as would the SMTP layer */
	for (char *c = valid; *c; c++)
		if (*c == '\r' && c[1] != '\n')
			*c = '\n';
	/* Not g_mime_text_part_set_text: it converts to the narrowest charset
	 * that fits (Latin-1 for "·"), and labelling that utf-8 afterwards
	 * would be mojibake.  The bytes stay UTF-8, and say so. */
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer (valid, strlen (valid));
	GMimeDataWrapper *content = g_mime_data_wrapper_new_with_stream (stream, GMIME_CONTENT_ENCODING_DEFAULT);
	GMimePart *part = GMIME_PART (text);
	g_mime_part_set_content (part, content);
	g_object_unref (content);
	g_object_unref (stream);
	g_mime_text_part_set_charset (text, "utf-8");
	g_mime_part_set_content_encoding (part, g_mime_part_get_best_content_encoding (
		part, GMIME_ENCODING_CONSTRAINT_7BIT));
	return GMIME_OBJECT (text);
}

/* The name an attachment goes out under, safe for a client to save as
 * it is: what follows the last '/' or '\\' (Windows clients take either
 * for a directory), on one line, ':' (drive letters, NTFS streams) as
 * '_'; nothing left, or only dots ("." ".."), is "attachment".  UTF-8 stays:
 * GMime encodes the parameter (RFC 2231). */
static char *
attachment_filename (const char *name)
{
	const char *base = name;
	for (const char *c = name; *c; c++)
		if (*c == '/' || *c == '\\')
			base = c + 1;
	char *filename = md_text_one_line (base, MD_COMPOSE_MAX_NAME);
	for (char *c = filename; *c; c++)
		if (*c == ':')
			*c = '_';
	if (filename[strspn (filename, ".")] == '\0') {
		g_free (filename);
		return g_strdup ("attachment");
	}
	return filename;
}

static GMimeObject *
attachment_part (const MdAttachmentFile *a, GError **error)
{
	GError *open_error = NULL;
	GMimeStream *stream = g_mime_stream_fs_open (a->path, O_RDONLY | O_CLOEXEC, 0, &open_error);
	if (!stream) {
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "cannot open attachment %s: %s",
		             a->path, open_error ? open_error->message : "unknown error");
		g_clear_error (&open_error);
		return NULL;
	}
	GMimeContentType *type = a->content_type ? g_mime_content_type_parse (NULL, a->content_type) : NULL;
	const char *media = type ? g_mime_content_type_get_media_type (type) : NULL;
	const char *sub = type ? g_mime_content_type_get_media_subtype (type) : NULL;
	gboolean type_ok = media && sub && *media && *sub &&
		g_ascii_strcasecmp (media, "multipart") != 0 && g_ascii_strcasecmp (media, "message") != 0;
	GMimePart *part = g_mime_part_new_with_type (type_ok ? media : "application",
	                                             type_ok ? sub : "octet-stream");
	/* The bytes go out as they came: without the charset the sender
	 * declared, a client reads text as US-ASCII or windows-1252.  Only
	 * text has one (RFC 2046 4.1.2). */
	if (type_ok && g_ascii_strcasecmp (media, "text") == 0 && md_charset_name_is_valid (a->charset))
		g_mime_object_set_content_type_parameter (GMIME_OBJECT (part), "charset", a->charset);
	g_clear_object (&type);

	GMimeDataWrapper *content = g_mime_data_wrapper_new_with_stream (stream, GMIME_CONTENT_ENCODING_DEFAULT);
	g_object_unref (stream);
	g_mime_part_set_content (part, content);
	g_object_unref (content);
	g_mime_part_set_content_encoding (part, GMIME_CONTENT_ENCODING_BASE64);

	g_autofree char *filename = attachment_filename (a->filename ? a->filename : a->path);
	g_mime_object_set_disposition (GMIME_OBJECT (part), GMIME_DISPOSITION_ATTACHMENT);
	g_mime_part_set_filename (part, filename);
	return GMIME_OBJECT (part);
}

static GMimeObject *
mime_body (const MdOutgoing *o, GError **error)
{
	GMimeObject *text = text_body (o->body);
	if (o->n_attachments == 0)
		return text;
	GMimeMultipart *mixed = g_mime_multipart_new_with_subtype ("mixed");
	g_mime_multipart_add (mixed, text);
	g_object_unref (text);
	for (gsize i = 0; i < o->n_attachments; i++) {
		GMimeObject *part = attachment_part (&o->attachments[i], error);
		if (!part) {
			g_object_unref (mixed);
			return NULL;
		}
		g_mime_multipart_add (mixed, part);
		g_object_unref (part);
	}
	return GMIME_OBJECT (mixed);
}

gboolean
md_compose_check (const MdOutgoing *o, GError **error)
{
	if (!md_compose_address_is_valid (o->desk_address)) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "invalid desk address '%s'",
		             o->desk_address ? o->desk_address : "");
		return FALSE;
	}
	if (o->n_to == 0 || o->n_to + o->n_cc > MD_COMPOSE_MAX_RECIPIENTS) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "between 1 and %d recipients are needed",
		             MD_COMPOSE_MAX_RECIPIENTS);
		return FALSE;
	}
	if (o->ticket_key && !is_ticket_key (o->ticket_key)) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "invalid ticket key '%s'", o->ticket_key);
		return FALSE;
	}
	const MdMailbox *lists[] = { o->to, o->cc };
	const gsize counts[] = { o->n_to, o->n_cc };
	for (int l = 0; l < 2; l++)
		for (gsize i = 0; i < counts[l]; i++) {
			g_autofree char *email = strip_controls (lists[l][i].email);
			if (!md_compose_address_is_valid (email)) {
				g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "invalid recipient address '%s'", email);
				return FALSE;
			}
		}
	for (gsize i = 0; o->headers && o->headers[i] && o->headers[i + 1]; i += 2)
		if (!allowed_header (o->headers[i])) {
			g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "header '%s' may not be set", o->headers[i]);
			return FALSE;
		}
	if (o->date_offset <= -MAX_DATE_OFFSET || o->date_offset >= MAX_DATE_OFFSET) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "Date offset %d s is a day or more", o->date_offset);
		return FALSE;
	}
	if (o->n_attachments > MD_COMPOSE_MAX_ATTACHMENTS) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "more than %d attachments", MD_COMPOSE_MAX_ATTACHMENTS);
		return FALSE;
	}
	g_autofree char *id = o->message_id ? clean_message_id (o->message_id) : NULL;
	if (o->message_id && !id) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "invalid Message-ID '%s'", o->message_id);
		return FALSE;
	}
	return TRUE;
}

static const char *
auto_submitted_value (MdAutoSubmitted kind)
{
	switch (kind) {
	case MD_AUTO_SUBMITTED_REPLIED:
		return "auto-replied";
	case MD_AUTO_SUBMITTED_GENERATED:
		return "auto-generated";
	case MD_AUTO_SUBMITTED_NONE:
		break;
	}
	return NULL;
}

static gboolean
set_sender (GMimeMessage *msg, const MdOutgoing *o, GError **error)
{
	g_autofree char *desk = md_text_one_line (o->desk_name, MD_COMPOSE_MAX_NAME);
	g_autofree char *agent = md_text_one_line (o->agent_name, MD_COMPOSE_MAX_NAME);
	g_autofree char *from = agent[0] && desk[0] ? g_strdup_printf ("%s via %s", agent, desk)
	                                            : g_strdup (agent[0] ? agent : desk);
	add_mailbox (msg, GMIME_ADDRESS_TYPE_FROM, from, o->desk_address);
	if (o->reply_to) {
		g_autofree char *reply_to = strip_controls (o->reply_to);
		if (!md_compose_address_is_valid (reply_to)) {
			g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "invalid Reply-To address '%s'", reply_to);
			return FALSE;
		}
		add_mailbox (msg, GMIME_ADDRESS_TYPE_REPLY_TO, from, reply_to);
	}
	return TRUE;
}

static void
append_base36 (GString *out, guint64 n)
{
	char digits[16];
	int len = 0;
	do {
		digits[len++] = "0123456789abcdefghijklmnopqrstuvwxyz"[n % 36];
		n /= 36;
	} while (n);
	while (len)
		g_string_append_c (out, digits[--len]);
}

/* A new id-left "TIME.RANDOM" at the desk's domain.  Not
 * g_mime_utils_generate_message_id: it runs the domain through libidn2,
 * which for our ASCII domains only folds the case, at about 5% of the
 * cost of composing a small mail. */
static char *
new_message_id (const char *domain)
{
	GString *id = g_string_sized_new (64);
	append_base36 (id, (guint64) g_get_real_time ());
	g_string_append_c (id, '.');
	append_base36 (id, ((guint64) g_random_int () << 32) | g_random_int ());
	g_string_append_c (id, '@');
	g_autofree char *lower = g_ascii_strdown (domain, -1);
	g_string_append (id, lower);
	return g_string_free (id, FALSE);
}

char *
md_compose_new_message_id (const char *desk_address)
{
	const char *at = desk_address ? strrchr (desk_address, '@') : NULL;
	return new_message_id (at ? at + 1 : "localhost");
}

/* The message, and its Message-ID without brackets in *id_r. */
static GMimeMessage *
build (const MdOutgoing *o, char **id_r, GError **error)
{
	ensure_gmime ();
	if (!md_compose_check (o, error))
		return NULL;
	const char *domain = strrchr (o->desk_address, '@') + 1;
	g_autofree char *id = o->message_id ? clean_message_id (o->message_id)
	                                    : new_message_id (domain);

	/* Without GMime's placeholders for the usual headers (five of them
	 * never used here, at 4% of the cost of a small mail); the headers
	 * come out in the order they are set, which is the order those
	 * placeholders gave: Date, From, Reply-To, Subject, To, Cc, then
	 * the rest. */
	g_autoptr (GMimeMessage) msg = g_mime_message_new (FALSE);
	g_autoptr (GTimeZone) zone = g_time_zone_new_offset (o->date_offset);
	g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (o->date ? o->date : md_now ());
	g_autoptr (GDateTime) date = g_date_time_to_timezone (utc, zone);
	g_mime_message_set_date (msg, date);
	g_autofree char *subject = md_compose_tagged_subject (o->subject, o->ticket_key);
	if (!set_sender (msg, o, error))
		return NULL;
	set_subject (msg, subject);
	add_mailboxes (msg, GMIME_ADDRESS_TYPE_TO, o->to, o->n_to);
	add_mailboxes (msg, GMIME_ADDRESS_TYPE_CC, o->cc, o->n_cc);
	encode_lookalike_names (msg);
	g_mime_message_set_message_id (msg, id);
	set_threading (msg, o);

	const char *auto_submitted = auto_submitted_value (o->auto_submitted);
	if (auto_submitted) {
		set_header (msg, "Auto-Submitted", auto_submitted);
		/* keeps Exchange out-of-office replies away; bounces still come */
		set_header (msg, "X-Auto-Response-Suppress", "OOF, AutoReply");
	}
	set_header (msg, MD_LOOP_HEADER, domain);
	if (o->ticket_key)
		set_header (msg, "X-Maildesk-Ticket", o->ticket_key);
	set_extra_headers (msg, o->headers);

	GMimeObject *body = mime_body (o, error);
	if (!body)
		return NULL;
	g_mime_message_set_mime_part (msg, body);
	g_object_unref (body);
	*id_r = g_steal_pointer (&id);
	return g_steal_pointer (&msg);
}

static gboolean
write_message (const MdOutgoing *o, GMimeStream *out, char **message_id_r, GError **error)
{
	g_autofree char *id = NULL;
	g_autoptr (GMimeMessage) msg = build (o, &id, error);
	if (!msg)
		return FALSE;
	errno = 0;
	gboolean ok = g_mime_object_write_to_stream (GMIME_OBJECT (msg), format_options, out) >= 0 &&
		g_mime_stream_flush (out) == 0;
	int errsv = errno;
	if (!ok) {
		g_set_error (error, MD_ERROR, errsv == ENOSPC ? MD_ERROR_DISK_FULL : MD_ERROR_IO,
		             "cannot write message: %s", errsv ? g_strerror (errsv) : "stream error");
		return FALSE;
	}
	if (message_id_r)
		*message_id_r = g_steal_pointer (&id);
	return TRUE;
}

gboolean
md_compose_write_fd (const MdOutgoing *o, int fd, char **message_id_r, GError **error)
{
	ensure_gmime ();
	/* a pipe stream: plain write(2), and a flush that does not fsync,
	 * which would fail on pipes and sockets; write_file syncs itself */
	GMimeStream *raw = g_mime_stream_pipe_new (fd);
	g_mime_stream_pipe_set_owner (GMIME_STREAM_PIPE (raw), FALSE);
	GMimeStream *buffered = g_mime_stream_buffer_new (raw, GMIME_STREAM_BUFFER_BLOCK_WRITE);
	g_object_unref (raw);
	gboolean ok = write_message (o, buffered, message_id_r, error);
	g_object_unref (buffered);
	return ok;
}

gboolean
md_compose_write_file (const MdOutgoing *o, const char *path, char **message_id_r, GError **error)
{
	int fd = g_open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		md_set_errno_error (error, errno, "cannot create", path);
		return FALSE;
	}
	g_autofree char *id = NULL;
	gboolean ok = md_compose_write_fd (o, fd, &id, error);
	if (ok && fsync (fd) < 0) {
		md_set_errno_error (error, errno, "cannot write", path);
		ok = FALSE;
	}
	if (close (fd) < 0 && ok) {
		md_set_errno_error (error, errno, "cannot write", path);
		ok = FALSE;
	}
	if (!ok) {
		g_unlink (path);
		return FALSE;
	}
	if (message_id_r)
		*message_id_r = g_steal_pointer (&id);
	return TRUE;
}

GBytes *
md_compose_to_bytes (const MdOutgoing *o, char **message_id_r, GError **error)
{
	ensure_gmime ();
	/* the stream writes into our array, which then becomes the GBytes
	 * without a copy */
	GByteArray *bytes = g_byte_array_sized_new (4096);
	GMimeStream *mem = g_mime_stream_mem_new_with_byte_array (bytes);
	g_mime_stream_mem_set_owner (GMIME_STREAM_MEM (mem), FALSE);
	gboolean ok = write_message (o, mem, message_id_r, error);
	g_object_unref (mem);
	if (!ok) {
		g_byte_array_unref (bytes);
		return NULL;
	}
	return g_byte_array_free_to_bytes (bytes);
}
