/* test-compose.c - composed mail parses back to what was meant, and
 * nothing a customer writes can add a header. */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <gmime/gmime.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compose.h"
#include "md.h"
#include "outgoing.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeMessage, g_object_unref)

#define DESK "support@support.example.com"
#define TOKEN_ADDRESS "support+SUP-7.abcdefghij@support.example.com"

static MdMailbox customer[] = { { "Bob Customer", "bob@customer.example" } };

static MdOutgoing
base_outgoing (void)
{
	return (MdOutgoing) {
		.desk_name = "Example Support",
		.desk_address = DESK,
		.to = customer,
		.n_to = 1,
		.reply_to = TOKEN_ADDRESS,
		.ticket_key = "SUP-7",
		.subject = "Printer on fire",
		.body = "Hello,\nwe are on it.\n",
		.date = 1780000000,
		.auto_submitted = MD_AUTO_SUBMITTED_REPLIED,
	};
}

/* Composes `o` and parses the bytes back; the raw text in *raw_r. */
static GMimeMessage *
compose_and_parse (const MdOutgoing *o, char **raw_r, char **id_r)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *id = NULL;
	g_autoptr (GBytes) bytes = md_compose_to_bytes (o, &id, &error);
	g_assert_no_error (error);
	g_assert_nonnull (bytes);
	gsize len;
	const char *data = g_bytes_get_data (bytes, &len);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer (data, len);
	GMimeParser *parser = g_mime_parser_new_with_stream (stream);
	GMimeMessage *msg = g_mime_parser_construct_message (parser, NULL);
	g_object_unref (parser);
	g_object_unref (stream);
	g_assert_nonnull (msg);
	g_assert_cmpstr (g_mime_message_get_message_id (msg), ==, id);
	if (raw_r)
		*raw_r = g_strndup (data, len);
	if (id_r)
		*id_r = g_steal_pointer (&id);
	return msg;
}

/* The header block of raw bytes, unfolded, one header per element. */
static GStrv
raw_headers (const char *raw)
{
	const char *end = strstr (raw, "\r\n\r\n");
	g_assert_nonnull (end);
	g_autofree char *block = g_strndup (raw, end - raw);
	g_autoptr (GPtrArray) headers = g_ptr_array_new ();
	g_auto (GStrv) lines = g_strsplit (block, "\r\n", -1);
	for (char **l = lines; *l; l++) {
		g_assert_null (strchr (*l, '\r'));
		g_assert_null (strchr (*l, '\n'));
		if ((**l == ' ' || **l == '\t') && headers->len) {
			char *prev = g_ptr_array_index (headers, headers->len - 1);
			headers->pdata[headers->len - 1] = g_strconcat (prev, *l, NULL);
			g_free (prev);
		} else {
			g_ptr_array_add (headers, g_strdup (*l));
		}
	}
	g_ptr_array_add (headers, NULL);
	return (GStrv) g_ptr_array_free (g_steal_pointer (&headers), FALSE);
}

static const char *
raw_header (GStrv headers, const char *name)
{
	gsize len = strlen (name);
	const char *found = NULL;
	for (char **h = headers; *h; h++)
		if (g_ascii_strncasecmp (*h, name, len) == 0 && (*h)[len] == ':') {
			g_assert_null (found);  /* each header at most once */
			found = *h + len + 1;
		}
	return found;
}

static char *
part_text (GMimeObject *object)
{
	GMimeDataWrapper *content = g_mime_part_get_content (GMIME_PART (object));
	GMimeStream *mem = g_mime_stream_mem_new ();
	g_mime_data_wrapper_write_to_stream (content, mem);
	GByteArray *bytes = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (mem));
	g_autoptr (GString) text = g_string_new_len ((char *) bytes->data, bytes->len);
	g_object_unref (mem);
	g_string_replace (text, "\r\n", "\n", 0);
	return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
test_basic_headers (void)
{
	MdOutgoing o = base_outgoing ();
	g_autofree char *raw = NULL, *id = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, &id);
	g_auto (GStrv) headers = raw_headers (raw);

	g_assert_true (g_str_has_suffix (id, "@support.example.com"));
	g_assert_cmpstr (raw_header (headers, "From"), ==, " Example Support <" DESK ">");
	g_assert_cmpstr (raw_header (headers, "To"), ==, " Bob Customer <bob@customer.example>");
	g_assert_cmpstr (raw_header (headers, "Reply-To"), ==, " Example Support <" TOKEN_ADDRESS ">");
	g_assert_cmpstr (raw_header (headers, "Subject"), ==, " [SUP-7] Printer on fire");
	g_assert_cmpstr (raw_header (headers, "Auto-Submitted"), ==, " auto-replied");
	g_assert_cmpstr (raw_header (headers, MD_LOOP_HEADER), ==, " support.example.com");
	g_assert_cmpstr (raw_header (headers, "MIME-Version"), ==, " 1.0");
	g_assert_nonnull (raw_header (headers, "Date"));
	g_assert_null (raw_header (headers, "In-Reply-To"));
	g_assert_null (raw_header (headers, "References"));
	g_assert_null (raw_header (headers, "Cc"));

	GDateTime *date = g_mime_message_get_date (msg);
	g_assert_cmpint (g_date_time_to_unix (date), ==, 1780000000);
	g_autofree char *body = part_text (g_mime_message_get_mime_part (msg));
	g_assert_cmpstr (body, ==, "Hello,\nwe are on it.\n");
	GMimeContentType *type = g_mime_object_get_content_type (g_mime_message_get_mime_part (msg));
	g_assert_true (g_mime_content_type_is_type (type, "text", "plain"));
}

/* The Date is written at the desk zone's offset (DESIGN 4's timezone;
 * notify works it out for the date), the same instant as in UTC. */
static void
test_date_offset (void)
{
	struct { int offset; const char *date; } cases[] = {
		{ 0, " Thu, 28 May 2026 20:26:40 +0000" },
		{ 3 * 3600, " Thu, 28 May 2026 23:26:40 +0300" },
		{ 2 * 3600, " Thu, 28 May 2026 22:26:40 +0200" },
		{ -(4 * 3600 + 30 * 60), " Thu, 28 May 2026 15:56:40 -0430" },
		{ 14 * 3600, " Fri, 29 May 2026 10:26:40 +1400" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		MdOutgoing o = base_outgoing ();
		o.date_offset = cases[i].offset;
		g_autofree char *raw = NULL, *id = NULL;
		g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, &id);
		g_auto (GStrv) headers = raw_headers (raw);
		g_assert_cmpstr (raw_header (headers, "Date"), ==, cases[i].date);
		g_assert_cmpint (g_date_time_to_unix (g_mime_message_get_date (msg)), ==, 1780000000);
		g_assert_true (g_str_has_suffix (id, "@support.example.com"));
	}
}

static void
test_auto_submitted_kinds (void)
{
	struct { MdAutoSubmitted kind; const char *value; } cases[] = {
		{ MD_AUTO_SUBMITTED_NONE, NULL },
		{ MD_AUTO_SUBMITTED_REPLIED, " auto-replied" },
		{ MD_AUTO_SUBMITTED_GENERATED, " auto-generated" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		MdOutgoing o = base_outgoing ();
		o.auto_submitted = cases[i].kind;
		g_autofree char *raw = NULL;
		g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
		g_auto (GStrv) headers = raw_headers (raw);
		g_assert_cmpstr (raw_header (headers, "Auto-Submitted"), ==, cases[i].value);
		/* the loop header is on everything, human replies included */
		g_assert_nonnull (raw_header (headers, MD_LOOP_HEADER));
	}
}

static void
test_agent_reply_from (void)
{
	MdOutgoing o = base_outgoing ();
	o.agent_name = "Jane Doe";
	o.auto_submitted = MD_AUTO_SUBMITTED_NONE;
	MdMailbox cc[] = { { NULL, "carol@customer.example" }, { "Dave", "dave@customer.example" } };
	o.cc = cc;
	o.n_cc = 2;
	g_autofree char *raw = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
	g_auto (GStrv) headers = raw_headers (raw);
	g_assert_cmpstr (raw_header (headers, "From"), ==, " Jane Doe via Example Support <" DESK ">");
	g_assert_cmpstr (raw_header (headers, "Cc"), ==, " carol@customer.example, Dave <dave@customer.example>");
}

static void
test_non_ascii (void)
{
	const char *subjects[] = { "Не працює вхід до адмінки", "ログインできません。至急お願いします" };
	const char *body = "Добрий день!\nНе можу увійти.\n\nこんにちは、ログインできません。\n"
	                   "A long line that goes on and on and on and on and on and on and on and on and on and on and on.\n";
	for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++) {
		MdOutgoing o = base_outgoing ();
		o.subject = subjects[i];
		o.body = body;
		o.agent_name = "Олена Петренко";
		MdMailbox to[] = { { "山田 太郎", "taro@example.jp" } };
		o.to = to;
		g_autofree char *raw = NULL;
		g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
		g_auto (GStrv) headers = raw_headers (raw);

		/* every header is 7-bit; the subject is encoded words */
		for (char **h = headers; *h; h++)
			for (const char *c = *h; *c; c++)
				g_assert_cmpint ((guchar) *c, <, 0x80);
		g_assert_true (g_str_has_prefix (raw_header (headers, "Subject"), " [SUP-7] =?"));
		g_autofree char *folded = g_ascii_strdown (raw_header (headers, "Subject"), -1);
		g_assert_nonnull (strstr (folded, "=?utf-8?q?"));

		g_autofree char *expected = g_strconcat ("[SUP-7] ", subjects[i], NULL);
		g_assert_cmpstr (g_mime_message_get_subject (msg), ==, expected);
		InternetAddressList *from = g_mime_message_get_from (msg);
		InternetAddress *sender = internet_address_list_get_address (from, 0);
		g_assert_cmpstr (internet_address_get_name (sender), ==, "Олена Петренко via Example Support");
		InternetAddress *rcpt = internet_address_list_get_address (g_mime_message_get_to (msg), 0);
		g_assert_cmpstr (internet_address_get_name (rcpt), ==, "山田 太郎");

		GMimeObject *part = g_mime_message_get_mime_part (msg);
		g_assert_cmpstr (g_mime_object_get_content_type_parameter (part, "charset"), ==, "utf-8");
		GMimeContentEncoding encoding = g_mime_part_get_content_encoding (GMIME_PART (part));
		g_assert_true (encoding == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
		               encoding == GMIME_CONTENT_ENCODING_BASE64);
		g_autofree char *text = part_text (part);
		g_assert_cmpstr (text, ==, body);
	}
}

/* A CR without LF in the body leaves as a line break: never raw in a
 * 7bit part, nor in any other. */
static void
test_bare_cr (void)
{
	struct { const char *body; const char *expected; } cases[] = {
		{ "one\rtwo\r\nthree\r", "one\ntwo\nthree\n" },
		{ "\r\rx\r\n\r\n", "\n\nx\n\n" },
		{ "caf\xc3\xa9\rdeux\n", "caf\xc3\xa9\ndeux\n" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_test_message ("case %" G_GSIZE_FORMAT, i);
		MdOutgoing o = base_outgoing ();
		o.body = cases[i].body;
		g_autofree char *raw = NULL;
		g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
		for (const char *c = raw; *c; c++)
			if (*c == '\r')
				g_assert_cmpint (c[1], ==, '\n');
		g_autofree char *text = part_text (g_mime_message_get_mime_part (msg));
		g_assert_cmpstr (text, ==, cases[i].expected);
	}
}

/* Text that a client would decode as an RFC 2047 encoded word is
 * encoded itself, so that it shows as written: in subjects, ASCII or
 * not, and in display names. */
static void
test_encoded_word_lookalikes (void)
{
	const char *subjects[] = {
		"=?UTF-8?B?SGFja2Vk?= test",
		"=?UTF-8?B?SGFja2Vk?= \xc3\xbc" "ber",
		"Re: x=?utf-8?q?Hacked?=y plain",
		"\xc3\xbc" "ber =?UTF-8?B?SGFja2Vk?=",
		"=?utf-8?q?a?= =?utf-8?q?b?=",
		"trailing =?",
	};
	for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++) {
		g_test_message ("subject %s", subjects[i]);
		MdOutgoing o = base_outgoing ();
		o.subject = subjects[i];
		g_autofree char *raw = NULL;
		g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
		g_auto (GStrv) headers = raw_headers (raw);
		g_autofree char *expected = md_compose_tagged_subject (subjects[i], "SUP-7");
		const char *value = raw_header (headers, "Subject");
		g_assert_null (strstr (value, "SGFja2Vk?="));
		g_assert_null (strstr (value, "Hacked?="));
		/* the tag stays readable in the raw header */
		g_assert_nonnull (strstr (value, "[SUP-7] "));
		g_autofree char *decoded = g_mime_utils_header_decode_text (NULL, value + 1);
		g_assert_cmpstr (decoded, ==, expected);
		g_assert_cmpstr (g_mime_message_get_subject (msg), ==, expected);
	}

	MdOutgoing o = base_outgoing ();
	o.agent_name = "=?UTF-8?B?SGFja2Vk?= Jane";
	MdMailbox to[] = { { "=?UTF-8?B?SGFja2Vk?= Bob", "bob@customer.example" },
	                   { "Plain, \"Quoted\"", "ann@customer.example" } };
	MdMailbox cc[] = { { "x=?utf-8?q?Hi?=y M\xc3\xbcller", "cc@customer.example" }, { NULL, "carol@customer.example" } };
	o.to = to;
	o.n_to = G_N_ELEMENTS (to);
	o.cc = cc;
	o.n_cc = G_N_ELEMENTS (cc);
	g_autofree char *raw = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
	g_auto (GStrv) headers = raw_headers (raw);
	const char *fields[] = { "From", "Reply-To", "To", "Cc" };
	for (gsize f = 0; f < G_N_ELEMENTS (fields); f++) {
		const char *value = raw_header (headers, fields[f]);
		g_assert_null (strstr (value, "SGFja2Vk?="));
		g_assert_null (strstr (value, "Hi?="));
	}
	const char *from_name = "=?UTF-8?B?SGFja2Vk?= Jane via Example Support";
	InternetAddress *from = internet_address_list_get_address (g_mime_message_get_from (msg), 0);
	g_assert_cmpstr (internet_address_get_name (from), ==, from_name);
	InternetAddress *reply_to = internet_address_list_get_address (g_mime_message_get_reply_to (msg), 0);
	g_assert_cmpstr (internet_address_get_name (reply_to), ==, from_name);
	g_assert_cmpstr (internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (reply_to)), ==, TOKEN_ADDRESS);
	const MdMailbox *lists[] = { to, cc };
	InternetAddressList *parsed[] = { g_mime_message_get_to (msg), g_mime_message_get_cc (msg) };
	for (int l = 0; l < 2; l++) {
		g_assert_cmpint (internet_address_list_length (parsed[l]), ==, 2);
		for (int i = 0; i < 2; i++) {
			InternetAddress *address = internet_address_list_get_address (parsed[l], i);
			/* no name parses as "" */
			const char *name = internet_address_get_name (address);
			g_assert_cmpstr (name ? name : "", ==, lists[l][i].name ? lists[l][i].name : "");
			g_assert_cmpstr (internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address)), ==,
			                 lists[l][i].email);
		}
	}
}

static void
test_header_injection (void)
{
	const char *evil = "Hi\r\nBcc: evil@x\r\n\r\nbody?";
	MdOutgoing o = base_outgoing ();
	o.subject = evil;
	o.agent_name = evil;
	o.desk_name = "Desk\nX-Evil: 1";
	MdMailbox to[] = { { evil, "bob@customer.example" }, { "Nul\0Bcc: evil@x", "eve@customer.example" } };
	o.to = to;
	o.n_to = 2;
	o.in_reply_to = "<a@b>\r\nBcc: evil@x";
	const char *refs[] = { "<r@x>\nBcc: evil@x", "<ok@x>", NULL };
	o.references = refs;
	const char *extra[] = { "Importance", "high\r\nBcc: evil@x", NULL };
	o.headers = extra;

	g_autofree char *raw = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
	g_auto (GStrv) headers = raw_headers (raw);
	g_autoptr (GString) names = g_string_new (NULL);
	for (char **h = headers; *h; h++) {
		const char *colon = strchr (*h, ':');
		g_assert_nonnull (colon);
		g_string_append_printf (names, "%.*s,", (int) (colon - *h), *h);
	}
	g_assert_cmpstr (names->str, ==,
	                 "Date,From,Reply-To,Subject,To,Message-Id,References,Auto-Submitted,"
	                 "X-Auto-Response-Suppress,X-Maildesk-Loop,X-Maildesk-Ticket,Importance,"
	                 "MIME-Version,Content-Type,");
	g_assert_null (g_mime_object_get_header (GMIME_OBJECT (msg), "Bcc"));
	g_assert_null (g_mime_object_get_header (GMIME_OBJECT (msg), "X-Evil"));
	InternetAddressList *bcc = g_mime_message_get_bcc (msg);
	g_assert_true (bcc == NULL || internet_address_list_length (bcc) == 0);
	g_assert_cmpstr (g_mime_message_get_subject (msg), ==, "[SUP-7] Hi Bcc: evil@x body?");
	g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (msg), "Importance"), ==, "high Bcc: evil@x");
	InternetAddress *from = internet_address_list_get_address (g_mime_message_get_from (msg), 0);
	g_assert_cmpstr (internet_address_get_name (from), ==, "Hi Bcc: evil@x body? via Desk X-Evil: 1");
	g_assert_cmpstr (internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (from)), ==, DESK);
	InternetAddressList *to_list = g_mime_message_get_to (msg);
	g_assert_cmpint (internet_address_list_length (to_list), ==, 2);
	g_assert_cmpstr (internet_address_get_name (internet_address_list_get_address (to_list, 0)), ==,
	                 "Hi Bcc: evil@x body?");
	g_assert_cmpstr (internet_address_get_name (internet_address_list_get_address (to_list, 1)), ==, "Nul");
	/* broken ids are left out, good ones kept */
	g_assert_null (raw_header (headers, "In-Reply-To"));
	g_assert_cmpstr (raw_header (headers, "References"), ==, " <ok@x>");
}

static void
test_refused (void)
{
	struct { const char *field; const char *value; } cases[] = {
		{ "to", "bob@customer.example\r\nBcc: evil@x" },
		{ "to", "Bob <bob@customer.example>" },
		{ "to", "bob@customer.example, eve@x" },
		{ "to", "" },
		{ "reply_to", "support@support.example.com\nBcc: evil@x" },
		{ "desk_address", "support" },
		{ "ticket_key", "SUP-7]\r\nBcc: x" },
		{ "message_id", "not an id" },
		{ "header", "Bcc" },
		{ "header", "From" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		MdOutgoing o = base_outgoing ();
		MdMailbox to[] = { { "Bob", cases[i].value } };
		const char *extra[] = { cases[i].value, "evil@x", NULL };
		if (strcmp (cases[i].field, "to") == 0)
			o.to = to;
		else if (strcmp (cases[i].field, "reply_to") == 0)
			o.reply_to = cases[i].value;
		else if (strcmp (cases[i].field, "desk_address") == 0)
			o.desk_address = cases[i].value;
		else if (strcmp (cases[i].field, "ticket_key") == 0)
			o.ticket_key = cases[i].value;
		else if (strcmp (cases[i].field, "message_id") == 0)
			o.message_id = cases[i].value;
		else
			o.headers = extra;
		g_autoptr (GError) error = NULL;
		g_autoptr (GBytes) bytes = md_compose_to_bytes (&o, NULL, &error);
		g_test_message ("case %" G_GSIZE_FORMAT, i);
		g_assert_null (bytes);
		g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	}
	MdOutgoing o = base_outgoing ();
	o.n_to = 0;
	g_autoptr (GError) error = NULL;
	g_assert_null (md_compose_to_bytes (&o, NULL, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	/* no zone is a day or more off UTC */
	for (int sign = -1; sign <= 1; sign += 2) {
		o = base_outgoing ();
		o.date_offset = sign * 24 * 3600;
		g_clear_error (&error);
		g_assert_null (md_compose_to_bytes (&o, NULL, &error));
		g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	}
}

static void
test_address_validation (void)
{
	struct { const char *address; gboolean valid; } cases[] = {
		{ "bob@example.com", TRUE },
		{ "bob.smith+tag@mail.example.co.uk", TRUE },
		{ "o'brien@example.com", TRUE },
		{ "x@localhost", TRUE },
		{ "support+SUP-7.abcdefghij@support.example.com", TRUE },
		{ "", FALSE },
		{ "bob", FALSE },
		{ "@example.com", FALSE },
		{ "bob@", FALSE },
		{ ".bob@example.com", FALSE },
		{ "bob.@example.com", FALSE },
		{ "bo..b@example.com", FALSE },
		{ "bob@exa mple.com", FALSE },
		{ "bob@-example.com", FALSE },
		{ "bob@example-.com", FALSE },
		{ "bob@example..com", FALSE },
		{ "bob@example.com.", FALSE },
		{ "bob@[127.0.0.1]", FALSE },
		{ "\"bob smith\"@example.com", FALSE },
		{ "bob@exämple.com", FALSE },
		{ "bob@example.com\r\nBcc: x@y", FALSE },
		{ "a@b@example.com", FALSE },
		{ "bob<x>@example.com", FALSE },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_test_message ("%s", cases[i].address);
		g_assert_cmpint (md_compose_address_is_valid (cases[i].address), ==, cases[i].valid);
	}
	g_autofree char *long_local = g_strnfill (65, 'a');
	g_autofree char *addr = g_strconcat (long_local, "@example.com", NULL);
	g_assert_false (md_compose_address_is_valid (addr));
	g_assert_false (md_compose_address_is_valid (NULL));
}

static void
test_tag (void)
{
	struct { const char *subject; const char *key; const char *expected; } cases[] = {
		{ "Printer on fire", "SUP-7", "[SUP-7] Printer on fire" },
		{ "[SUP-7] Printer on fire", "SUP-7", "[SUP-7] Printer on fire" },
		{ "Re: [SUP-7] Printer on fire", "SUP-7", "Re: [SUP-7] Printer on fire" },
		{ "re: [sup-7] printer", "SUP-7", "re: [sup-7] printer" },
		{ "Printer [SUP-7]", "SUP-7", "Printer [SUP-7]" },
		{ "Re: Printer on fire", "SUP-7", "Re: [SUP-7] Printer on fire" },
		{ "RE: Fwd: AW: Printer", "SUP-7", "RE: Fwd: AW: [SUP-7] Printer" },
		{ "Re:", "SUP-7", "Re: [SUP-7]" },
		{ "", "SUP-7", "[SUP-7]" },
		{ "[SUP-77] other", "SUP-7", "[SUP-7] [SUP-77] other" },
		{ "  spaced \r\n out  ", "SUP-7", "[SUP-7] spaced out" },
		{ "no tag", NULL, "no tag" },
		{ "Помилка [SUP-7]", "SUP-7", "Помилка [SUP-7]" },
		/* ASCII controls, DEL, Unicode spaces and line separators fold alike */
		{ "\x7f a\tb\x01" "c\x1f\x7f d\xc2\xa0" "e\xe2\x80\xa8" "f\xe3\x80\x80" "g \xc2\x85", NULL, "a b c d e f g" },
		{ "caf\xc3\xa9\x0b\x0c\xe2\x80\x83" "x", NULL, "caf\xc3\xa9 x" },
		{ "bad \xff\xfe utf-8", NULL, "bad \xef\xbf\xbd\xef\xbf\xbd utf-8" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *tagged = md_compose_tagged_subject (cases[i].subject, cases[i].key);
		g_assert_cmpstr (tagged, ==, cases[i].expected);
		/* tagging is idempotent */
		g_autofree char *again = md_compose_tagged_subject (tagged, cases[i].key);
		g_assert_cmpstr (again, ==, tagged);
	}
	/* a long subject is cut, the tag kept whole */
	g_autoptr (GString) long_subject = g_string_new (NULL);
	for (int i = 0; i < 100; i++)
		g_string_append (long_subject, "довго ");
	g_autofree char *tagged = md_compose_tagged_subject (long_subject->str, "SUP-123456");
	g_assert_true (g_str_has_prefix (tagged, "[SUP-123456] довго"));
	g_assert_cmpint (g_utf8_strlen (tagged, -1), <=, MD_COMPOSE_MAX_SUBJECT);
	g_assert_true (g_utf8_validate (tagged, -1, NULL));

	/* in a composed message too */
	MdOutgoing o = base_outgoing ();
	o.subject = "Re: [SUP-7] Printer on fire";
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, NULL, NULL);
	g_assert_cmpstr (g_mime_message_get_subject (msg), ==, "Re: [SUP-7] Printer on fire");
}

static gboolean
is_msg_id (const char *token)
{
	g_autoptr (GRegex) re = g_regex_new ("^<[^<>\\s@]+@[^<>\\s@]+>$", 0, 0, NULL);
	return g_regex_match (re, token, 0, NULL);
}

/* Headers come out in the order of GMime's usual layout (compose sets
 * them in that order), and a new Message-ID is under the desk's domain,
 * case-folded. */
static void
test_header_order (void)
{
	MdOutgoing o = base_outgoing ();
	o.desk_address = "support@Support.Example.COM";
	o.subject = "Принтер горить";
	o.in_reply_to = "<p@x.example>";
	MdMailbox cc[] = { { "Carol", "carol@customer.example" } };
	o.cc = cc;
	o.n_cc = 1;
	const char *extra[] = { "Content-Language", "uk", NULL };
	o.headers = extra;
	g_autofree char *raw = NULL, *id = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, &id);
	g_auto (GStrv) headers = raw_headers (raw);
	g_autoptr (GString) names = g_string_new (NULL);
	for (char **h = headers; *h; h++)
		g_string_append_printf (names, "%.*s,", (int) strcspn (*h, ":"), *h);
	g_assert_cmpstr (names->str, ==,
	                 "Date,From,Reply-To,Subject,To,Cc,Message-Id,In-Reply-To,References,"
	                 "Auto-Submitted,X-Auto-Response-Suppress,X-Maildesk-Loop,X-Maildesk-Ticket,"
	                 "Content-Language,MIME-Version,Content-Type,");
	g_assert_cmpstr (g_mime_message_get_subject (msg), ==, "[SUP-7] Принтер горить");
	g_assert_true (g_regex_match_simple ("^[0-9a-z]+\\.[0-9a-z]+@support\\.example\\.com$", id, 0, 0));
	g_assert_cmpstr (raw_header (headers, "From"), ==, " Example Support <support@Support.Example.COM>");
}

static void
test_threading (void)
{
	MdOutgoing o = base_outgoing ();
	o.in_reply_to = "parent.123@mail.customer.example";
	g_autoptr (GPtrArray) refs = g_ptr_array_new_with_free_func (g_free);
	for (int i = 0; i < 30; i++)
		g_ptr_array_add (refs, g_strdup_printf ("<ref%02d@customer.example>", i));
	g_ptr_array_add (refs, g_strdup ("<parent.123@mail.customer.example>"));
	g_ptr_array_add (refs, NULL);
	o.references = (const char *const *) refs->pdata;

	g_autofree char *raw = NULL, *id = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, &id);
	g_auto (GStrv) headers = raw_headers (raw);
	g_autofree char *in_reply_to = g_strstrip (g_strdup (raw_header (headers, "In-Reply-To")));
	g_assert_cmpstr (in_reply_to, ==, "<parent.123@mail.customer.example>");
	g_autofree char *message_id = g_strstrip (g_strdup (raw_header (headers, "Message-Id")));
	g_assert_true (is_msg_id (message_id));

	g_autofree char *references = g_strstrip (g_strdup (raw_header (headers, "References")));
	g_auto (GStrv) tokens = g_regex_split_simple ("\\s+", references, 0, 0);
	g_assert_cmpuint (g_strv_length (tokens), ==, MD_COMPOSE_MAX_REFERENCES);
	for (char **t = tokens; *t; t++)
		g_assert_true (is_msg_id (*t));
	g_assert_cmpstr (tokens[0], ==, "<ref00@customer.example>");  /* the root stays */
	g_assert_cmpstr (tokens[1], ==, "<ref12@customer.example>");
	g_assert_cmpstr (tokens[MD_COMPOSE_MAX_REFERENCES - 1], ==, "<parent.123@mail.customer.example>");

	/* GMime reads them back the same */
	GMimeReferences *parsed = g_mime_references_parse (NULL, g_mime_object_get_header (GMIME_OBJECT (msg), "References"));
	g_assert_cmpint (g_mime_references_length (parsed), ==, MD_COMPOSE_MAX_REFERENCES);
	g_assert_cmpstr (g_mime_references_get_message_id (parsed, 0), ==, "ref00@customer.example");
	g_mime_references_free (parsed);

	/* the parent alone makes References too; a given id is reused */
	MdOutgoing o2 = base_outgoing ();
	o2.in_reply_to = "<p@x.example>";
	o2.message_id = "<fixed.1@support.example.com>";
	g_autofree char *raw2 = NULL, *id2 = NULL;
	g_autoptr (GMimeMessage) msg2 = compose_and_parse (&o2, &raw2, &id2);
	g_auto (GStrv) headers2 = raw_headers (raw2);
	g_assert_cmpstr (raw_header (headers2, "References"), ==, " <p@x.example>");
	g_assert_cmpstr (id2, ==, "fixed.1@support.example.com");

	/* fresh ids differ */
	g_autofree char *id3 = NULL;
	g_autoptr (GMimeMessage) msg3 = compose_and_parse (&o, NULL, &id3);
	g_assert_cmpstr (id, !=, id3);
}

/* The References of a reply given the thread's ids, oldest first, and
 * its parent, ids separated by one space (GMime folds long ones); NULL
 * when there is none. */
static char *
references_for (const char *in_reply_to, const char *const *thread)
{
	MdOutgoing o = base_outgoing ();
	o.in_reply_to = in_reply_to;
	o.references = thread;
	g_autofree char *raw = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
	g_auto (GStrv) headers = raw_headers (raw);
	const char *references = raw_header (headers, "References");
	if (!references)
		return NULL;
	g_autofree char *stripped = g_strstrip (g_strdup (references));
	g_auto (GStrv) ids = g_regex_split_simple ("\\s+", stripped, 0, 0);
	return g_strjoinv (" ", ids);
}

/* The caller passes the whole thread, mail sent after the parent
 * included: only the parent's ancestors and the parent are references,
 * each once, oldest first. */
static void
test_threading_ancestors (void)
{
	struct { const char *parent; const char *thread[8]; const char *expected; } cases[] = {
		/* a reply to the first mail, after our acknowledgement of it */
		{ "<m1@customer.example>", { "<m1@customer.example>", "<ack@support.example.com>" },
		  "<m1@customer.example>" },
		{ "<m2@customer.example>", { "<m1@customer.example>", "<ack@support.example.com>", "<m2@customer.example>",
		                             "<ack2@support.example.com>", "<m3@customer.example>" },
		  "<m1@customer.example> <ack@support.example.com> <m2@customer.example>" },
		/* a parent the thread does not know goes last */
		{ "p@customer.example", { "<m1@customer.example>", "<ack@support.example.com>" },
		  "<m1@customer.example> <ack@support.example.com> <p@customer.example>" },
		/* each id once, at its first place */
		{ "<p@customer.example>", { "<m1@customer.example>", "<a@x.example>", "m1@customer.example",
		                            "<a@x.example>", "<p@customer.example>", "<p@customer.example>" },
		  "<m1@customer.example> <a@x.example> <p@customer.example>" },
		{ NULL, { "<m1@customer.example>", "<a@x.example>", "<m1@customer.example>" },
		  "<m1@customer.example> <a@x.example>" },
		{ "<m1@customer.example>", { "<bad id>", "<m1@customer.example>", "<later@x.example>" },
		  "<m1@customer.example>" },
		{ NULL, { NULL }, NULL },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_test_message ("case %" G_GSIZE_FORMAT, i);
		g_autofree char *references = references_for (cases[i].parent, cases[i].thread);
		g_assert_cmpstr (references, ==, cases[i].expected);
	}

	/* duplicates go before the bound is applied: the root and the
	 * newest ancestors stay */
	g_autoptr (GPtrArray) thread = g_ptr_array_new_with_free_func (g_free);
	for (int i = 0; i < 25; i++) {
		g_ptr_array_add (thread, g_strdup_printf ("<t%02d@customer.example>", i));
		g_ptr_array_add (thread, g_strdup_printf ("<t%02d@customer.example>", i));
	}
	g_ptr_array_add (thread, g_strdup ("<after@support.example.com>"));
	g_ptr_array_add (thread, NULL);
	g_autofree char *references = references_for ("<t24@customer.example>", (const char *const *) thread->pdata);
	g_auto (GStrv) tokens = g_strsplit (references, " ", -1);
	g_assert_cmpuint (g_strv_length (tokens), ==, MD_COMPOSE_MAX_REFERENCES);
	g_assert_cmpstr (tokens[0], ==, "<t00@customer.example>");
	g_assert_cmpstr (tokens[1], ==, "<t06@customer.example>");
	g_assert_cmpstr (tokens[MD_COMPOSE_MAX_REFERENCES - 1], ==, "<t24@customer.example>");
}

static void
test_extra_headers (void)
{
	MdOutgoing o = base_outgoing ();
	const char *extra[] = { "importance", "high", "Content-Language", "uk", NULL };
	o.headers = extra;
	g_autofree char *raw = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
	g_auto (GStrv) headers = raw_headers (raw);
	g_assert_cmpstr (raw_header (headers, "Importance"), ==, " high");
	g_assert_cmpstr (raw_header (headers, "Content-Language"), ==, " uk");
}

static char *
sha256_file (const char *path)
{
	g_autofree char *data = NULL;
	gsize len;
	g_assert_true (g_file_get_contents (path, &data, &len, NULL));
	return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guchar *) data, len);
}

static char *
sha256_part (GMimePart *part)
{
	GMimeStream *mem = g_mime_stream_mem_new ();
	g_mime_data_wrapper_write_to_stream (g_mime_part_get_content (part), mem);
	GByteArray *bytes = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (mem));
	char *hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, bytes->data, bytes->len);
	g_object_unref (mem);
	return hex;
}

static void
test_attachments (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-compose-XXXXXX", &error);
	g_assert_no_error (error);

	/* random binary with every byte value, text with bare CR and LF,
	 * an empty file */
	g_autofree char *bin = g_build_filename (dir, "bin", NULL);
	gsize bin_len = 300 * 1024 + 7;
	g_autofree guchar *bin_data = g_malloc (bin_len);
	GRand *rand = g_rand_new_with_seed (42);
	for (gsize i = 0; i < bin_len; i++)
		bin_data[i] = g_rand_int (rand) & 0xff;
	g_rand_free (rand);
	g_assert_true (g_file_set_contents (bin, (char *) bin_data, bin_len, NULL));
	g_autofree char *txt = g_build_filename (dir, "txt", NULL);
	g_assert_true (g_file_set_contents (txt, "line\r\nbare\rcr\nlf\n\nend without newline", -1, NULL));
	g_autofree char *empty = g_build_filename (dir, "empty", NULL);
	g_assert_true (g_file_set_contents (empty, "", 0, NULL));

	MdAttachmentFile files[] = {
		{ "звіт за квартал.bin", "application/octet-stream", bin },
		{ "../../etc/notes\r\nBcc: x.txt", "text/plain; charset=utf-8", txt },
		{ "empty.dat", "not a type", empty },
	};
	MdOutgoing o = base_outgoing ();
	o.attachments = files;
	o.n_attachments = G_N_ELEMENTS (files);
	g_autofree char *out = g_build_filename (dir, "out.eml", NULL);
	g_autofree char *id = NULL;
	g_assert_true (md_compose_write_file (&o, out, &id, &error));
	g_assert_no_error (error);
	/* O_EXCL: an existing file is never overwritten */
	g_assert_false (md_compose_write_file (&o, out, NULL, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_IO);
	g_clear_error (&error);

	int fd = g_open (out, O_RDONLY, 0);
	g_assert_cmpint (fd, >=, 0);
	GMimeStream *stream = g_mime_stream_fs_new (fd);
	GMimeParser *parser = g_mime_parser_new_with_stream (stream);
	g_autoptr (GMimeMessage) msg = g_mime_parser_construct_message (parser, NULL);
	g_object_unref (parser);
	g_object_unref (stream);
	g_assert_nonnull (msg);
	g_assert_cmpstr (g_mime_message_get_message_id (msg), ==, id);

	GMimeObject *top = g_mime_message_get_mime_part (msg);
	g_assert_true (GMIME_IS_MULTIPART (top));
	GMimeMultipart *mixed = GMIME_MULTIPART (top);
	g_assert_cmpint (g_mime_multipart_get_count (mixed), ==, 4);
	g_autofree char *body = part_text (g_mime_multipart_get_part (mixed, 0));
	g_assert_cmpstr (body, ==, o.body);

	const char *names[] = { "звіт за квартал.bin", "notes Bcc_ x.txt", "empty.dat" };
	const char *types[] = { "application/octet-stream", "text/plain", "application/octet-stream" };
	for (gsize i = 0; i < G_N_ELEMENTS (files); i++) {
		GMimePart *part = GMIME_PART (g_mime_multipart_get_part (mixed, i + 1));
		g_assert_cmpstr (g_mime_part_get_filename (part), ==, names[i]);
		g_autofree char *type = g_mime_content_type_get_mime_type (g_mime_object_get_content_type (GMIME_OBJECT (part)));
		g_assert_cmpstr (type, ==, types[i]);
		g_assert_true (g_mime_part_is_attachment (part));
		g_autofree char *want = sha256_file (files[i].path);
		g_autofree char *got = sha256_part (part);
		g_assert_cmpstr (got, ==, want);
	}
	g_assert_null (g_mime_object_get_header (GMIME_OBJECT (msg), "Bcc"));

	/* a missing file fails the message and leaves no output behind */
	MdAttachmentFile missing[] = { { "gone.txt", "text/plain", "/nonexistent/gone.txt" } };
	o.attachments = missing;
	o.n_attachments = 1;
	g_autofree char *out2 = g_build_filename (dir, "out2.eml", NULL);
	g_assert_false (md_compose_write_file (&o, out2, NULL, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_IO);
	g_assert_false (g_file_test (out2, G_FILE_TEST_EXISTS));

	g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", dir);
	g_assert_cmpint (system (cmd), ==, 0);
}

/* An attachment goes out with the charset it came with, so that a client
 * does not read UTF-8 or Latin-1 text as US-ASCII; a name that is no
 * charset, or one on a type that is not sent, is left out. */
static void
test_attachment_charsets (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-charsets-XXXXXX", &error);
	g_assert_no_error (error);
	g_autofree char *file = g_build_filename (dir, "data", NULL);
	g_assert_true (g_file_set_contents (file, "Gr\xc3\xbc\xc3\x9f\xc3\xa9\n", -1, NULL));
	struct { const char *type; const char *charset; const char *sent_type; const char *expected; } cases[] = {
		{ "text/plain", "utf-8", "text/plain", "utf-8" },
		{ "text/plain", "ISO-8859-1", "text/plain", "ISO-8859-1" },
		{ "text/csv", "windows-1252", "text/csv", "windows-1252" },
		{ "text/plain", NULL, "text/plain", NULL },
		{ "text/plain", "", "text/plain", NULL },
		{ "text/plain", "utf-8\r\nBcc: x@y", "text/plain", NULL },
		{ "text/plain", "utf 8", "text/plain", NULL },
		{ "text/plain", "a-name-longer-than-forty-characters-is-none", "text/plain", NULL },
		{ "not a type", "utf-8", "application/octet-stream", NULL },
		{ "multipart/mixed", "utf-8", "application/octet-stream", NULL },
	};
	g_autofree MdAttachmentFile *files = g_new0 (MdAttachmentFile, G_N_ELEMENTS (cases));
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
		files[i] = (MdAttachmentFile) { "notes.txt", cases[i].type, file, cases[i].charset };
	MdOutgoing o = base_outgoing ();
	o.attachments = files;
	o.n_attachments = G_N_ELEMENTS (cases);
	g_autofree char *raw = NULL;
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, &raw, NULL);
	g_assert_null (strstr (raw, "Bcc"));
	GMimeMultipart *mixed = GMIME_MULTIPART (g_mime_message_get_mime_part (msg));
	g_assert_cmpint (g_mime_multipart_get_count (mixed), ==, G_N_ELEMENTS (cases) + 1);
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_test_message ("case %" G_GSIZE_FORMAT, i);
		GMimeObject *part = g_mime_multipart_get_part (mixed, i + 1);
		g_autofree char *type = g_mime_content_type_get_mime_type (g_mime_object_get_content_type (part));
		g_assert_cmpstr (type, ==, cases[i].sent_type);
		g_assert_cmpstr (g_mime_object_get_content_type_parameter (part, "charset"), ==, cases[i].expected);
		g_autofree char *want = sha256_file (file);
		g_autofree char *got = sha256_part (GMIME_PART (part));
		g_assert_cmpstr (got, ==, want);
	}
	g_assert_cmpint (g_unlink (file), ==, 0);
	g_assert_cmpint (g_rmdir (dir), ==, 0);
}

/* No file name sent can lead a client that saves it outside the folder
 * it chose, whichever separator its system uses. */
static void
test_attachment_names (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-names-XXXXXX", &error);
	g_assert_no_error (error);
	g_autofree char *file = g_build_filename (dir, "data", NULL);
	g_assert_true (g_file_set_contents (file, "x", 1, NULL));
	struct { const char *name; const char *expected; } cases[] = {
		{ "report.pdf", "report.pdf" },
		{ "..\\..\\windows\\evil.exe", "evil.exe" },
		{ "../../etc/passwd", "passwd" },
		{ "..", "attachment" },
		{ ".", "attachment" },
		{ "...", "attachment" },
		{ "", "attachment" },
		{ " \r\n ", "attachment" },
		{ "x/..", "attachment" },
		{ "dir\\..", "attachment" },
		{ "dir/", "attachment" },
		{ "C:\\Users\\x\\", "attachment" },
		{ "C:evil.exe", "C_evil.exe" },
		{ "notes.txt:hidden.exe", "notes.txt_hidden.exe" },
		{ "a\x01" "b\tc.txt", "a b c.txt" },
		{ ".profile", ".profile" },
		{ "звіт\\квартал ü.pdf", "квартал ü.pdf" },
		{ NULL, "data" },
	};
	g_autofree MdAttachmentFile *files = g_new0 (MdAttachmentFile, G_N_ELEMENTS (cases));
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
		files[i] = (MdAttachmentFile) { cases[i].name, "application/octet-stream", file };
	MdOutgoing o = base_outgoing ();
	o.attachments = files;
	o.n_attachments = G_N_ELEMENTS (cases);
	g_autoptr (GMimeMessage) msg = compose_and_parse (&o, NULL, NULL);
	GMimeMultipart *mixed = GMIME_MULTIPART (g_mime_message_get_mime_part (msg));
	g_assert_cmpint (g_mime_multipart_get_count (mixed), ==, G_N_ELEMENTS (cases) + 1);
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_test_message ("case %" G_GSIZE_FORMAT, i);
		GMimePart *part = GMIME_PART (g_mime_multipart_get_part (mixed, i + 1));
		g_assert_cmpstr (g_mime_part_get_filename (part), ==, cases[i].expected);
	}
	g_assert_cmpint (g_unlink (file), ==, 0);
	g_assert_cmpint (g_rmdir (dir), ==, 0);
}

static void
test_write_fd (void)
{
	MdOutgoing o = base_outgoing ();
	o.message_id = "same@support.example.com";
	g_autoptr (GError) error = NULL;
	g_autoptr (GBytes) bytes = md_compose_to_bytes (&o, NULL, &error);
	g_assert_no_error (error);

	int fds[2];
	g_assert_cmpint (pipe (fds), ==, 0);
	g_autofree char *id = NULL;
	g_assert_true (md_compose_write_fd (&o, fds[1], &id, &error));
	g_assert_no_error (error);
	close (fds[1]);
	g_autoptr (GByteArray) read_back = g_byte_array_new ();
	guchar buf[4096];
	ssize_t n;
	while ((n = read (fds[0], buf, sizeof buf)) > 0)
		g_byte_array_append (read_back, buf, n);
	close (fds[0]);
	g_autoptr (GBytes) from_fd = g_byte_array_free_to_bytes (g_steal_pointer (&read_back));
	g_assert_true (g_bytes_equal (bytes, from_fd));
	g_assert_cmpstr (id, ==, "same@support.example.com");
}

static char *
without_boundaries (GBytes *bytes)
{
	g_autoptr (GRegex) re = g_regex_new ("=-[A-Za-z0-9+/]{16,40}", G_REGEX_RAW, 0, NULL);
	return g_regex_replace_literal (re, g_bytes_get_data (bytes, NULL), (gssize) g_bytes_get_size (bytes), 0,
	                                "=-BOUNDARY", 0, NULL);
}

/* ---- the spec's JSON, as JsonBuilder wrote it ---- */

static void
builder_string (JsonBuilder *b, const char *value)
{
	g_autofree char *valid = g_utf8_validate (value, -1, NULL) ? NULL : g_utf8_make_valid (value, -1);
	json_builder_add_string_value (b, valid ? valid : value);
}

static void
builder_text (JsonBuilder *b, const char *name, const char *value)
{
	if (!value)
		return;
	json_builder_set_member_name (b, name);
	builder_string (b, value);
}

static void
builder_mailboxes (JsonBuilder *b, const char *name, const MdMailbox *boxes, gsize n)
{
	json_builder_set_member_name (b, name);
	json_builder_begin_array (b);
	for (gsize i = 0; i < n; i++) {
		json_builder_begin_object (b);
		builder_text (b, "name", boxes[i].name);
		builder_text (b, "email", boxes[i].email);
		json_builder_end_object (b);
	}
	json_builder_end_array (b);
}

static void
builder_texts (JsonBuilder *b, const char *name, const char *const *list)
{
	json_builder_set_member_name (b, name);
	json_builder_begin_array (b);
	for (gsize i = 0; list && list[i]; i++)
		builder_string (b, list[i]);
	json_builder_end_array (b);
}

/* The spec of O (with its Message-ID and date set) as the first layout
 * was made, through a JsonBuilder. */
static GBytes *
spec_by_builder (const MdOutgoing *o)
{
	g_autoptr (JsonBuilder) b = json_builder_new ();
	json_builder_begin_object (b);
	builder_text (b, "message_id", o->message_id);
	json_builder_set_member_name (b, "date");
	json_builder_add_int_value (b, o->date);
	json_builder_set_member_name (b, "date_offset");
	json_builder_add_int_value (b, o->date_offset);
	builder_text (b, "desk_name", o->desk_name);
	builder_text (b, "desk_address", o->desk_address);
	builder_text (b, "agent_name", o->agent_name);
	builder_mailboxes (b, "to", o->to, o->n_to);
	builder_mailboxes (b, "cc", o->cc, o->n_cc);
	builder_text (b, "reply_to", o->reply_to);
	builder_text (b, "ticket_key", o->ticket_key);
	builder_text (b, "subject", o->subject);
	builder_text (b, "in_reply_to", o->in_reply_to);
	builder_texts (b, "references", o->references);
	json_builder_set_member_name (b, "auto_submitted");
	json_builder_add_int_value (b, o->auto_submitted);
	builder_texts (b, "headers", o->headers);
	json_builder_set_member_name (b, "attachments");
	json_builder_begin_array (b);
	for (gsize i = 0; i < o->n_attachments; i++) {
		json_builder_begin_object (b);
		builder_text (b, "filename", o->attachments[i].filename);
		builder_text (b, "content_type", o->attachments[i].content_type);
		builder_text (b, "path", o->attachments[i].path);
		builder_text (b, "charset", o->attachments[i].charset);
		json_builder_end_object (b);
	}
	json_builder_end_array (b);
	builder_text (b, "body", o->body);
	json_builder_end_object (b);
	g_autoptr (JsonGenerator) gen = json_generator_new ();
	g_autoptr (JsonNode) root = json_builder_get_root (b);
	json_generator_set_root (gen, root);
	gsize len = 0;
	g_autofree char *json = json_generator_to_data (gen, &len);
	GByteArray *out = g_byte_array_new ();
	g_byte_array_append (out, (const guint8 *) "\0mdspec1\n", 9);
	g_byte_array_append (out, (const guint8 *) json, (guint) len);
	return g_byte_array_free_to_bytes (out);
}

/* The spec's tree is made without a JsonBuilder: its bytes are the ones
 * the builder gave, byte for byte, for every field set or not, empty
 * and full lists, and texts that are not UTF-8 or hold what JSON must
 * escape. */
static void
test_spec_bytes (void)
{
	MdAttachmentFile files[] = { { "звіт.bin", "application/octet-stream", "/var/spool/a" },
	                             { NULL, NULL, "/var/spool/b" }, { "bad\xff.txt", "text/plain", "/p\"q\\r", "utf-8" } };
	MdMailbox to[] = { { "Ольга \"O\" Петренко", "olga@customer.example" }, { NULL, "ann@customer.example" } };
	MdMailbox cc[] = { { "Unit\x1fSeparator\x7f", "cc@customer.example" } };
	const char *refs[] = { "<root@customer.example>", "mid@x", "\xc3", NULL };
	const char *headers[] = { "Importance", "high", "Content-Language", "uk/\"x\"", NULL };
	const char *bodies[] = { "Привіт,\n\nmany lines\r\n-- \nDesk\n", "body \xc3 broken\x01\x1f\b\f\x7f\x1e \\ \"q\"\t\r", "", NULL };
	for (int i = 0; i < 8; i++) {
		MdOutgoing o = base_outgoing ();
		o.message_id = "20261201.abc@support.example.com";
		o.date = 1796112000 + i;
		o.date_offset = i & 1 ? 7200 : -16200;
		o.agent_name = i & 1 ? "Агент \"A\"" : NULL;
		o.to = i & 2 ? to : customer;
		o.n_to = i & 2 ? 2 : 1;
		o.cc = i & 4 ? cc : NULL;
		o.n_cc = i & 4 ? 1 : 0;
		o.reply_to = i & 1 ? TOKEN_ADDRESS : NULL;
		o.ticket_key = i & 2 ? "SUP-7" : NULL;
		o.subject = i & 4 ? "Принтер\x1f горить \xff" : "Printer on fire";
		o.in_reply_to = i & 1 ? NULL : "<parent@customer.example>";
		o.references = i & 2 ? refs : NULL;
		o.auto_submitted = (MdAutoSubmitted) (i % 3);
		o.headers = i & 4 ? headers : NULL;
		o.attachments = i & 1 ? files : NULL;
		o.n_attachments = i & 1 ? G_N_ELEMENTS (files) : 0;
		o.body = bodies[i % 3];
		g_autoptr (GError) error = NULL;
		g_autoptr (GBytes) spec = md_outgoing_spec_new (&o, NULL, &error);
		g_assert_no_error (error);
		g_autoptr (GBytes) expected = spec_by_builder (&o);
		if (!g_bytes_equal (spec, expected))
			g_error ("case %d: spec %.*s differs from %.*s", i, (int) g_bytes_get_size (spec) - 9,
			         (const char *) g_bytes_get_data (spec, NULL) + 9, (int) g_bytes_get_size (expected) - 9,
			         (const char *) g_bytes_get_data (expected, NULL) + 9);
	}
}

/* A spec queued now and composed later (outgoing.h) is the message
 * composing now would have made, byte for byte, whatever the texts hold;
 * what compose refuses is refused when queueing; a damaged spec or a
 * missing attachment is an error at send time, not a crash. */
static void
test_spec_round_trip (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-spec-XXXXXX", &error);
	g_autofree char *file = g_build_filename (dir, "report.bin", NULL);
	g_assert_true (g_file_set_contents (file, "\x01\x02binary\xff", 9, NULL));
	MdAttachmentFile files[] = { { "звіт.bin", "application/octet-stream", file }, { NULL, NULL, file },
	                             { "notes.txt", "text/plain", file, "iso-8859-1" } };
	MdMailbox to[] = { { "Ольга \"O\" Петренко", "olga@customer.example" }, { NULL, "ann@customer.example" } };
	MdMailbox cc[] = { { "Unit\x1fSeparator", "cc@customer.example" } };
	const char *refs[] = { "<root@customer.example>", "mid@x", NULL };
	const char *headers[] = { "Importance", "high", "Content-Language", "uk", NULL };
	const char *subjects[] = { "Printer on fire", "Принтер\x1f горить \x01\x7f", "bad \xff\xfe bytes", "", NULL };
	for (int i = 0; subjects[i]; i++) {
		MdOutgoing o = base_outgoing ();
		o.agent_name = i % 2 ? "Агент" : NULL;
		o.to = to;
		o.n_to = 2;
		o.cc = cc;
		o.n_cc = 1;
		o.subject = subjects[i];
		o.body = i == 2 ? "body \xc3 broken\r\nline\x1f\n" : "Привіт,\n\nmany lines\n-- \nDesk\n";
		o.in_reply_to = "<parent@customer.example>";
		o.references = refs;
		o.headers = headers;
		o.attachments = i == 3 ? files : NULL;
		o.n_attachments = i == 3 ? G_N_ELEMENTS (files) : 0;
		o.date_offset = i * 3600;
		g_autofree char *id = NULL;
		g_autoptr (GBytes) spec = md_outgoing_spec_new (&o, &id, &error);
		g_assert_no_error (error);
		g_assert_true (md_outgoing_is_spec (spec));
		/* text after the marker's NUL: an operator can read the queue */
		g_assert_true (g_utf8_validate ((const char *) g_bytes_get_data (spec, NULL) + 1,
		                                (gssize) g_bytes_get_size (spec) - 1, NULL));
		g_autoptr (GBytes) later = md_outgoing_compose (spec, &error);
		g_assert_no_error (error);
		o.message_id = id;
		g_autoptr (GBytes) now = md_compose_to_bytes (&o, NULL, &error);
		g_assert_no_error (error);
		g_assert_false (md_outgoing_is_spec (now));
		/* GMime draws a new MIME boundary each time; all else is equal */
		g_autofree char *a = without_boundaries (now), *b = without_boundaries (later);
		g_assert_cmpstr (a, ==, b);
	}

	MdOutgoing bad = base_outgoing ();
	MdMailbox nobody[] = { { NULL, "not an address" } };
	bad.to = nobody;
	g_assert_null (md_outgoing_spec_new (&bad, NULL, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	g_clear_error (&error);
	const char *forbidden[] = { "Bcc", "x@y", NULL };
	bad = base_outgoing ();
	bad.headers = forbidden;
	g_assert_null (md_outgoing_spec_new (&bad, NULL, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	g_clear_error (&error);

	MdOutgoing gone = base_outgoing ();
	gone.attachments = files;
	gone.n_attachments = 1;
	g_autoptr (GBytes) spec = md_outgoing_spec_new (&gone, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpint (g_unlink (file), ==, 0);
	g_assert_null (md_outgoing_compose (spec, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_IO);
	g_clear_error (&error);
	static const char damaged_spec[] = "\0mdspec1\n{\"to\": [";
	g_autoptr (GBytes) damaged = g_bytes_new_static (damaged_spec, sizeof damaged_spec - 1);
	g_assert_true (md_outgoing_is_spec (damaged));
	g_assert_null (md_outgoing_compose (damaged, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	g_clear_error (&error);
	static const char empty_spec[] = "\0mdspec1\n{}";
	g_autoptr (GBytes) empty = g_bytes_new_static (empty_spec, sizeof empty_spec - 1);
	g_assert_null (md_outgoing_compose (empty, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	g_rmdir (dir);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_mime_init ();
	g_test_add_func ("/compose/basic-headers", test_basic_headers);
	g_test_add_func ("/compose/date-offset", test_date_offset);
	g_test_add_func ("/compose/auto-submitted", test_auto_submitted_kinds);
	g_test_add_func ("/compose/agent-reply-from", test_agent_reply_from);
	g_test_add_func ("/compose/non-ascii", test_non_ascii);
	g_test_add_func ("/compose/bare-cr", test_bare_cr);
	g_test_add_func ("/compose/encoded-word-lookalikes", test_encoded_word_lookalikes);
	g_test_add_func ("/compose/header-injection", test_header_injection);
	g_test_add_func ("/compose/refused", test_refused);
	g_test_add_func ("/compose/address-validation", test_address_validation);
	g_test_add_func ("/compose/tag", test_tag);
	g_test_add_func ("/compose/header-order", test_header_order);
	g_test_add_func ("/compose/threading", test_threading);
	g_test_add_func ("/compose/threading-ancestors", test_threading_ancestors);
	g_test_add_func ("/compose/extra-headers", test_extra_headers);
	g_test_add_func ("/compose/attachments", test_attachments);
	g_test_add_func ("/compose/attachment-names", test_attachment_names);
	g_test_add_func ("/compose/attachment-charsets", test_attachment_charsets);
	g_test_add_func ("/compose/write-fd", test_write_fd);
	g_test_add_func ("/compose/spec-round-trip", test_spec_round_trip);
	g_test_add_func ("/compose/spec-bytes", test_spec_bytes);
	return g_test_run ();
}
