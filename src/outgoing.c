/* outgoing.c - MdOutgoing kept as JSON (after a marker) until the sender
 * composes it; see outgoing.h.  JSON rather than a binary layout: an
 * operator looking at the queue (outbox_blobs) reads what will be sent. */
#include "config.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "md.h"
#include "outgoing.h"

/* A NUL first: no RFC 5322 message starts so.  The digit is the layout's
 * version; a new layout takes the next one and keeps reading this. */
#define SPEC_MAGIC "\0mdspec1\n"
#define SPEC_MAGIC_LEN 9

/* The spec is written straight into one buffer, not built as a
 * json-glib tree and generated: the writer thread queues one per
 * acknowledgement, and the tree cost an allocation per member and per
 * string, then a copy of each into the generator's output.  The bytes
 * are json-glib's own (json_generator_to_data, not pretty), escaping
 * included, which test-compose checks: what a spec says and the hash it
 * is kept under do not depend on which of the two wrote it. */

/* VALUE as a JSON string, escaped as json-glib 1.6 escapes: the short
 * forms, \u00XX for the other controls up to 0x1e and for DEL, every
 * other byte as it is.  JSON strings are UTF-8; what is not is made so
 * (compose would do the same to any text it sends). */
static void
put_string (GString *out, const char *value)
{
	g_autofree char *valid = g_utf8_validate (value, -1, NULL) ? NULL : g_utf8_make_valid (value, -1);
	const char *p = valid ? valid : value;
	const char *run = p;

	g_string_append_c (out, '"');
	for (; *p; p++) {
		unsigned char c = (unsigned char) *p;
		char hex[8];
		const char *escape = hex;
		if (c >= 0x1f && c != '"' && c != '\\' && c != 0x7f)
			continue;
		switch (c) {
		case '"': escape = "\\\""; break;
		case '\\': escape = "\\\\"; break;
		case '\b': escape = "\\b"; break;
		case '\t': escape = "\\t"; break;
		case '\n': escape = "\\n"; break;
		case '\f': escape = "\\f"; break;
		case '\r': escape = "\\r"; break;
		default: g_snprintf (hex, sizeof hex, "\\u00%.2x", c); break;
		}
		g_string_append_len (out, run, p - run);
		g_string_append (out, escape);
		run = p + 1;
	}
	g_string_append_len (out, run, p - run);
	g_string_append_c (out, '"');
}

/* The member's name and colon, after a comma unless it is the first. */
static void
put_name (GString *out, const char *name)
{
	if (out->str[out->len - 1] != '{')
		g_string_append_c (out, ',');
	g_string_append_c (out, '"');
	g_string_append (out, name);
	g_string_append (out, "\":");
}

static void
put_text (GString *out, const char *name, const char *value)
{
	if (!value)
		return;
	put_name (out, name);
	put_string (out, value);
}

static void
put_int (GString *out, const char *name, gint64 value)
{
	put_name (out, name);
	g_string_append_printf (out, "%" G_GINT64_FORMAT, value);
}

static void
put_mailboxes (GString *out, const char *name, const MdMailbox *boxes, gsize n)
{
	put_name (out, name);
	g_string_append_c (out, '[');
	for (gsize i = 0; i < n; i++) {
		g_string_append (out, i ? ",{" : "{");
		put_text (out, "name", boxes[i].name);
		put_text (out, "email", boxes[i].email);
		g_string_append_c (out, '}');
	}
	g_string_append_c (out, ']');
}

static void
put_texts (GString *out, const char *name, const char *const *list)
{
	put_name (out, name);
	g_string_append_c (out, '[');
	for (gsize i = 0; list && list[i]; i++) {
		if (i)
			g_string_append_c (out, ',');
		put_string (out, list[i]);
	}
	g_string_append_c (out, ']');
}

static void
put_attachments (GString *out, const MdAttachmentFile *files, gsize n)
{
	put_name (out, "attachments");
	g_string_append_c (out, '[');
	for (gsize i = 0; i < n; i++) {
		g_string_append (out, i ? ",{" : "{");
		put_text (out, "filename", files[i].filename);
		put_text (out, "content_type", files[i].content_type);
		put_text (out, "path", files[i].path);
		put_text (out, "charset", files[i].charset);
		g_string_append_c (out, '}');
	}
	g_string_append_c (out, ']');
}

/* The magic, then the members in the order md_outgoing_compose's
 * readers have always seen them. */
static GBytes *
spec_bytes (const MdOutgoing *o, const char *message_id)
{
	/* the body and a few headers' worth */
	GString *out = g_string_sized_new (SPEC_MAGIC_LEN + 512 + (o->body ? strlen (o->body) : 0));
	g_string_append_len (out, SPEC_MAGIC, SPEC_MAGIC_LEN);
	g_string_append_c (out, '{');
	put_text (out, "message_id", message_id);
	put_int (out, "date", o->date ? o->date : md_now ());
	put_int (out, "date_offset", o->date_offset);
	put_text (out, "desk_name", o->desk_name);
	put_text (out, "desk_address", o->desk_address);
	put_text (out, "agent_name", o->agent_name);
	put_mailboxes (out, "to", o->to, o->n_to);
	put_mailboxes (out, "cc", o->cc, o->n_cc);
	put_text (out, "reply_to", o->reply_to);
	put_text (out, "ticket_key", o->ticket_key);
	put_text (out, "subject", o->subject);
	put_text (out, "in_reply_to", o->in_reply_to);
	put_texts (out, "references", o->references);
	put_int (out, "auto_submitted", o->auto_submitted);
	put_texts (out, "headers", o->headers);
	put_attachments (out, o->attachments, o->n_attachments);
	put_text (out, "body", o->body);
	g_string_append_c (out, '}');
	return g_string_free_to_bytes (out);
}

GBytes *
md_outgoing_spec_new (const MdOutgoing *o, char **message_id_r, GError **error)
{
	if (!md_compose_check (o, error))
		return NULL;
	g_autofree char *message_id = o->message_id ? g_strdup (o->message_id)
	                                            : md_compose_new_message_id (o->desk_address);
	GBytes *spec = spec_bytes (o, message_id);
	if (message_id_r)
		*message_id_r = g_steal_pointer (&message_id);
	return spec;
}

gboolean
md_outgoing_is_spec (GBytes *blob)
{
	gsize len = 0;
	const guint8 *data = blob ? g_bytes_get_data (blob, &len) : NULL;
	return len >= SPEC_MAGIC_LEN && memcmp (data, SPEC_MAGIC, SPEC_MAGIC_LEN) == 0;
}

/* Member NAME of O when it is a string, else NULL; owned by O. */
static const char *
text (JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member (o, name);
	return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING
	       ? json_node_get_string (n) : NULL;
}

static gint64
number (JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member (o, name);
	return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64
	       ? json_node_get_int (n) : 0;
}

/* Member NAME of O when it is an array, else NULL. */
static JsonArray *
array (JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member (o, name);
	return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

/* The objects of array NAME (others skipped), or an empty list. */
static GPtrArray *
objects (JsonObject *o, const char *name)
{
	GPtrArray *out = g_ptr_array_new ();
	JsonArray *a = array (o, name);
	for (guint i = 0; a && i < json_array_get_length (a); i++) {
		JsonNode *item = json_array_get_element (a, i);
		if (JSON_NODE_HOLDS_OBJECT (item))
			g_ptr_array_add (out, json_node_get_object (item));
	}
	return out;
}

/* The strings of array NAME, NULL-terminated, owned by O. */
static GPtrArray *
texts (JsonObject *o, const char *name)
{
	GPtrArray *out = g_ptr_array_new ();
	JsonArray *a = array (o, name);
	for (guint i = 0; a && i < json_array_get_length (a); i++) {
		JsonNode *item = json_array_get_element (a, i);
		if (JSON_NODE_HOLDS_VALUE (item) && json_node_get_value_type (item) == G_TYPE_STRING)
			g_ptr_array_add (out, (gpointer) json_node_get_string (item));
	}
	g_ptr_array_add (out, NULL);
	return out;
}

static GArray *
mailboxes (JsonObject *o, const char *name)
{
	g_autoptr (GPtrArray) list = objects (o, name);
	GArray *out = g_array_new (FALSE, TRUE, sizeof (MdMailbox));
	for (guint i = 0; i < list->len; i++) {
		MdMailbox m = { text (list->pdata[i], "name"), text (list->pdata[i], "email") };
		g_array_append_val (out, m);
	}
	return out;
}

static GArray *
attachments (JsonObject *o)
{
	g_autoptr (GPtrArray) list = objects (o, "attachments");
	GArray *out = g_array_new (FALSE, TRUE, sizeof (MdAttachmentFile));
	for (guint i = 0; i < list->len; i++) {
		JsonObject *f = list->pdata[i];
		/* a spec queued before "charset" was written has none */
		MdAttachmentFile file = { text (f, "filename"), text (f, "content_type"), text (f, "path"),
		                          text (f, "charset") };
		if (file.path)
			g_array_append_val (out, file);
	}
	return out;
}

/* Attachments are the spool's blobs, regular files: a damaged row naming
 * a device or a directory must not have the sender read it forever. */
static gboolean
attachments_are_files (GArray *files, GError **error)
{
	for (guint i = 0; i < files->len; i++) {
		const char *path = g_array_index (files, MdAttachmentFile, i).path;
		if (!g_file_test (path, G_FILE_TEST_IS_REGULAR) || g_file_test (path, G_FILE_TEST_IS_SYMLINK)) {
			g_set_error (error, MD_ERROR, MD_ERROR_IO, "attachment %s is not a regular file", path);
			return FALSE;
		}
	}
	return TRUE;
}

GBytes *
md_outgoing_compose (GBytes *spec, GError **error)
{
	gsize len = 0;
	const char *data = spec ? g_bytes_get_data (spec, &len) : NULL;
	g_autoptr (JsonParser) parser = json_parser_new ();
	g_autoptr (GError) local = NULL;
	if (!md_outgoing_is_spec (spec) ||
	    !json_parser_load_from_data (parser, data + SPEC_MAGIC_LEN, (gssize) (len - SPEC_MAGIC_LEN), &local) ||
	    !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "damaged queued message: %s",
		             local ? local->message : "not a message spec");
		return NULL;
	}
	JsonObject *root = json_node_get_object (json_parser_get_root (parser));
	g_autoptr (GArray) to = mailboxes (root, "to");
	g_autoptr (GArray) cc = mailboxes (root, "cc");
	g_autoptr (GPtrArray) references = texts (root, "references");
	g_autoptr (GPtrArray) headers = texts (root, "headers");
	g_autoptr (GArray) files = attachments (root);
	if (!attachments_are_files (files, error))
		return NULL;
	MdOutgoing o = {
		.desk_name = text (root, "desk_name"),
		.desk_address = text (root, "desk_address"),
		.agent_name = text (root, "agent_name"),
		.to = (const MdMailbox *) to->data,
		.n_to = to->len,
		.cc = (const MdMailbox *) cc->data,
		.n_cc = cc->len,
		.reply_to = text (root, "reply_to"),
		.ticket_key = text (root, "ticket_key"),
		.subject = text (root, "subject"),
		.body = text (root, "body"),
		.in_reply_to = text (root, "in_reply_to"),
		.message_id = text (root, "message_id"),
		.references = (const char *const *) references->pdata,
		.date = number (root, "date"),
		/* 0 in a spec queued before the Date was written in the desk's zone */
		.date_offset = (int) CLAMP (number (root, "date_offset"), G_MININT, G_MAXINT),
		.auto_submitted = (MdAutoSubmitted) number (root, "auto_submitted"),
		.headers = (const char *const *) headers->pdata,
		.attachments = (const MdAttachmentFile *) files->data,
		.n_attachments = files->len,
	};
	if (!o.message_id || o.date <= 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "damaged queued message: no Message-ID or date");
		return NULL;
	}
	return md_compose_to_bytes (&o, NULL, error);
}
