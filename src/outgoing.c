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

/* JSON strings are UTF-8; what is not is made so (compose would do the
 * same to any text it sends). */
static JsonNode *
string_node (const char *value)
{
	JsonNode *n = json_node_alloc ();
	if (g_utf8_validate (value, -1, NULL)) {
		json_node_init_string (n, value);
	} else {
		g_autofree char *valid = g_utf8_make_valid (value, -1);
		json_node_init_string (n, valid);
	}
	return n;
}

static void
add_text (JsonObject *o, const char *name, const char *value)
{
	if (value)
		json_object_set_member (o, name, string_node (value));
}

static void
add_mailboxes (JsonObject *o, const char *name, const MdMailbox *boxes, gsize n)
{
	JsonArray *a = json_array_sized_new ((guint) n);
	for (gsize i = 0; i < n; i++) {
		JsonObject *box = json_object_new ();
		add_text (box, "name", boxes[i].name);
		add_text (box, "email", boxes[i].email);
		json_array_add_object_element (a, box);
	}
	json_object_set_array_member (o, name, a);
}

static void
add_texts (JsonObject *o, const char *name, const char *const *list)
{
	JsonArray *a = json_array_new ();
	for (gsize i = 0; list && list[i]; i++)
		json_array_add_element (a, string_node (list[i]));
	json_object_set_array_member (o, name, a);
}

static void
add_attachments (JsonObject *o, const MdAttachmentFile *files, gsize n)
{
	JsonArray *a = json_array_sized_new ((guint) n);
	for (gsize i = 0; i < n; i++) {
		JsonObject *file = json_object_new ();
		add_text (file, "filename", files[i].filename);
		add_text (file, "content_type", files[i].content_type);
		add_text (file, "path", files[i].path);
		add_text (file, "charset", files[i].charset);
		json_array_add_object_element (a, file);
	}
	json_object_set_array_member (o, "attachments", a);
}

/* The members in this order: the order the JSON is written in. */
static JsonNode *
spec_tree (const MdOutgoing *o, const char *message_id)
{
	JsonObject *root = json_object_new ();
	add_text (root, "message_id", message_id);
	json_object_set_int_member (root, "date", o->date ? o->date : md_now ());
	add_text (root, "desk_name", o->desk_name);
	add_text (root, "desk_address", o->desk_address);
	add_text (root, "agent_name", o->agent_name);
	add_mailboxes (root, "to", o->to, o->n_to);
	add_mailboxes (root, "cc", o->cc, o->n_cc);
	add_text (root, "reply_to", o->reply_to);
	add_text (root, "ticket_key", o->ticket_key);
	add_text (root, "subject", o->subject);
	add_text (root, "in_reply_to", o->in_reply_to);
	add_texts (root, "references", o->references);
	json_object_set_int_member (root, "auto_submitted", o->auto_submitted);
	add_texts (root, "headers", o->headers);
	add_attachments (root, o->attachments, o->n_attachments);
	add_text (root, "body", o->body);
	JsonNode *node = json_node_alloc ();
	json_node_init_object (node, root);
	json_object_unref (root);
	return node;
}

GBytes *
md_outgoing_spec_new (const MdOutgoing *o, char **message_id_r, GError **error)
{
	if (!md_compose_check (o, error))
		return NULL;
	g_autofree char *message_id = o->message_id ? g_strdup (o->message_id)
	                                            : md_compose_new_message_id (o->desk_address);
	/* The tree made directly, not through a JsonBuilder: the same JSON,
	 * without the builder's object and its copy of every member name. */
	g_autoptr (JsonNode) root = spec_tree (o, message_id);
	g_autoptr (JsonGenerator) gen = json_generator_new ();
	json_generator_set_root (gen, root);
	gsize len = 0;
	g_autofree char *json = json_generator_to_data (gen, &len);
	guint8 *data = g_malloc (SPEC_MAGIC_LEN + len);
	memcpy (data, SPEC_MAGIC, SPEC_MAGIC_LEN);
	memcpy (data + SPEC_MAGIC_LEN, json, len);
	if (message_id_r)
		*message_id_r = g_steal_pointer (&message_id);
	return g_bytes_new_take (data, SPEC_MAGIC_LEN + len);
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
