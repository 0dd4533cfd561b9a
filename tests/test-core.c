/* test-core.c - reply tokens, desk addresses, threading decisions and
 * the schema migration. */
#include "config.h"

#include <sqlite3.h>
#include <string.h>

#include "authres.h"
#include "md.h"
#include "schema.sql.h"
#include "store.h"
#include "thread.h"
#include "token.h"

static GBytes *
test_key (void)
{
	guint8 key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (guint8) i;
	return g_bytes_new (key, sizeof key);
}

/* Expected values computed independently (Python hmac + base64.b32encode). */
static void
test_token_vectors (void)
{
	g_autoptr (GBytes) key = test_key ();
	static const struct { gint64 id; const char *token; } vectors[] = {
		{ 1, "o5q3dtbfej" }, { 123, "47cvhcslcv" }, { 99999, "w2itqltzta" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (vectors); i++) {
		g_autofree char *t = md_token_compute (key, vectors[i].id);
		g_assert_cmpstr (t, ==, vectors[i].token);
	}
	/* a key longer than SHA-256's block, which HMAC hashes first */
	guint8 long_key[100];
	for (int i = 0; i < 100; i++)
		long_key[i] = (guint8) (i * 7 + 3);
	g_autoptr (GBytes) hashed = g_bytes_new (long_key, sizeof long_key);
	static const struct { gint64 id; const char *token; } long_vectors[] = {
		{ 1, "oe4q2yfiaz" }, { 123, "wfsrgpirta" }, { 99999, "ngkhzrsweb" }, { 4000000000, "vsaqsciadg" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (long_vectors); i++) {
		g_autofree char *t = md_token_compute (hashed, long_vectors[i].id);
		g_assert_cmpstr (t, ==, long_vectors[i].token);
	}
}

static gpointer
token_in_thread (gpointer key)
{
	return md_token_compute (key, 123);
}

/* md_token_compute keeps per-thread state (the last token and its
 * secret): another secret, the same id again, and another thread all
 * give the right tokens. */
static void
test_token_cache (void)
{
	g_autoptr (GBytes) key = test_key ();
	guint8 other_key[32];
	for (int i = 0; i < 32; i++)
		other_key[i] = (guint8) (0xff - i);
	g_autoptr (GBytes) other = g_bytes_new (other_key, sizeof other_key);
	static const struct { gboolean other; gint64 id; const char *token; } steps[] = {
		{ FALSE, 123, "47cvhcslcv" }, { FALSE, 123, "47cvhcslcv" }, { TRUE, 123, "mlvg2jasuu" },
		{ TRUE, 1, "ej3dl6yi6v" }, { FALSE, 1, "o5q3dtbfej" }, { TRUE, 1, "ej3dl6yi6v" },
		{ FALSE, 123, "47cvhcslcv" },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (steps); i++) {
		g_autofree char *t = md_token_compute (steps[i].other ? other : key, steps[i].id);
		g_assert_cmpstr (t, ==, steps[i].token);
	}
	GThread *thread = g_thread_new ("token", token_in_thread, other);
	g_autofree char *t = g_thread_join (thread);
	g_assert_cmpstr (t, ==, "mlvg2jasuu");
}

static void
test_address_classify (void)
{
	g_autoptr (GBytes) key = test_key ();
	MdAddressing a = { "support.example.com", "support", "SUP", key };
	static const struct { const char *addr; MdAddressKind kind; gint64 id; } cases[] = {
		{ "support@support.example.com", MD_ADDRESS_INTAKE, 0 },
		{ "SUPPORT@Support.Example.COM", MD_ADDRESS_INTAKE, 0 },
		{ "support+SUP-123.47cvhcslcv@support.example.com", MD_ADDRESS_TICKET, 123 },
		{ "support+sup-123.47CVHCSLCV@support.example.com", MD_ADDRESS_TICKET, 123 },
		{ "support+SUP-123.47cvhcslcx@support.example.com", MD_ADDRESS_BAD_TOKEN, 123 },
		{ "support+SUP-124.47cvhcslcv@support.example.com", MD_ADDRESS_BAD_TOKEN, 124 },
		{ "support+SUP-123@support.example.com", MD_ADDRESS_BAD_TOKEN, 123 },
		{ "support+SUP-x.47cvhcslcv@support.example.com", MD_ADDRESS_BAD_TOKEN, 0 },
		{ "support+newsletter@support.example.com", MD_ADDRESS_INTAKE, 0 },
		{ "sales@support.example.com", MD_ADDRESS_OTHER_LOCAL, 0 },
		{ "support@example.com", MD_ADDRESS_FOREIGN, 0 },
		{ "no-at-sign", MD_ADDRESS_FOREIGN, 0 },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		gint64 id = 0;
		g_test_message ("%s", cases[i].addr);
		g_assert_cmpint (md_address_classify (&a, cases[i].addr, &id), ==, cases[i].kind);
		g_assert_cmpint (id, ==, cases[i].id);
	}
	g_autofree char *addr = md_address_for_ticket (&a, 123);
	g_assert_cmpstr (addr, ==, "support+SUP-123.47cvhcslcv@support.example.com");
}

/* Tokens compare without case (DESIGN 5.4) by md_token_equal, which
 * must never stop at the first difference; what a test can hold it to is
 * the answer: every position counts, only A..Z fold, lengths must agree. */
static void
test_token_equal (void)
{
	static const struct { const char *given; gboolean equal; } cases[] = {
		{ "47cvhcslcv", TRUE }, { "47CVHCSLCV", TRUE }, { "47cVhCsLcV", TRUE },
		{ "x7cvhcslcv", FALSE }, { "47cvhcslcx", FALSE }, { "47cvhCSLCX", FALSE },
		{ "47cvhcslc", FALSE }, { "47cvhcslcvv", FALSE }, { "", FALSE },
		/* the bit that folds A..Z flipped in digits; a byte past ASCII */
		{ "\x14" "7cvhcslcv", FALSE }, { "4\x17" "cvhcslcv", FALSE }, { "47cvhcslc\xf6", FALSE },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_test_message ("%s", cases[i].given);
		g_assert_cmpint (md_token_equal (cases[i].given, "47cvhcslcv"), ==, cases[i].equal);
	}
	g_assert_false (md_token_equal ("@[`{", "@[`{"));  /* not a token's length */
	g_assert_false (md_token_equal ("abcdefghi@", "abcdefghi`"));
	g_assert_false (md_token_equal ("abcdefghi[", "abcdefghi{"));
	g_assert_true (md_token_equal ("ABCDEFGHIZ", "abcdefghiz"));

	/* the agents' token, through the addresses it comes in */
	g_autoptr (GBytes) key = test_key ();
	MdAddressing a = { "support.example.com", "support", "SUP", key, TRUE };
	g_autofree char *agents = md_address_for_agents (&a, 123);
	g_autofree char *upper = g_ascii_strup (agents, -1);
	g_autofree char *customers = md_address_for_ticket (&a, 123);
	g_assert_cmpstr (agents, !=, customers);
	g_assert_true (md_address_has_agent_token (&a, agents));
	g_assert_true (md_address_has_agent_token (&a, upper));
	g_assert_false (md_address_has_agent_token (&a, customers));
	g_assert_cmpint (md_address_classify (&a, upper, NULL), ==, MD_ADDRESS_TICKET);
	upper[strlen (upper) - strlen ("@SUPPORT.EXAMPLE.COM") - 1] ^= 1;
	g_assert_false (md_address_has_agent_token (&a, upper));
	g_assert_cmpint (md_address_classify (&a, upper, NULL), ==, MD_ADDRESS_BAD_TOKEN);
	a.agent_tokens = FALSE;
	g_assert_false (md_address_has_agent_token (&a, agents));
}

static void
test_ticket_keys (void)
{
	g_assert_cmpint (md_ticket_key_parse ("SUP", "SUP-12"), ==, 12);
	g_assert_cmpint (md_ticket_key_parse ("SUP", "sup-12"), ==, 12);
	g_assert_cmpint (md_ticket_key_parse ("SUP", "12"), ==, 12);
	g_assert_cmpint (md_ticket_key_parse ("SUP", "ABC-12"), ==, 0);
	g_assert_cmpint (md_ticket_key_parse ("SUP", "12x"), ==, 0);
	g_assert_cmpint (md_ticket_key_parse ("SUP", ""), ==, 0);
	g_assert_cmpint (md_thread_subject_tag ("SUP", "Re: [SUP-42] Help"), ==, 42);
	g_assert_cmpint (md_thread_subject_tag ("SUP", "Re: [sup-42] Help"), ==, 42);
	g_assert_cmpint (md_thread_subject_tag ("SUP", "[x] [SUP-7]"), ==, 7);
	g_assert_cmpint (md_thread_subject_tag ("SUP", "[SUP-42 Help"), ==, 0);
	g_assert_cmpint (md_thread_subject_tag ("SUP", "[SUPPORT-42]"), ==, 0);
	g_assert_cmpint (md_thread_subject_tag ("SUP", "[SUP-]"), ==, 0);
	g_assert_cmpint (md_thread_subject_tag ("SUP", NULL), ==, 0);
}

/* DESIGN 5.4 as a table: how a message was found x who sent it. */
static void
test_thread_decide (void)
{
	static const struct { MdFoundBy found; MdSenderRole role; MdThreadAction action; } table[] = {
		{ MD_FOUND_NONE, MD_ROLE_STRANGER, MD_THREAD_NEW_TICKET },
		{ MD_FOUND_NONE, MD_ROLE_AGENT, MD_THREAD_NEW_TICKET },
		{ MD_FOUND_TOKEN, MD_ROLE_REQUESTER, MD_THREAD_COMMENT },
		{ MD_FOUND_TOKEN, MD_ROLE_PARTICIPANT, MD_THREAD_COMMENT },
		{ MD_FOUND_TOKEN, MD_ROLE_ORG_MEMBER, MD_THREAD_COMMENT },
		{ MD_FOUND_TOKEN, MD_ROLE_AGENT, MD_THREAD_AGENT_COMMENT },
		{ MD_FOUND_TOKEN, MD_ROLE_STRANGER, MD_THREAD_UNVERIFIED_SENDER },
		{ MD_FOUND_REFERENCES, MD_ROLE_REQUESTER, MD_THREAD_COMMENT },
		{ MD_FOUND_REFERENCES, MD_ROLE_AGENT, MD_THREAD_UNVERIFIED_AGENT },
		{ MD_FOUND_REFERENCES, MD_ROLE_STRANGER, MD_THREAD_NEW_TICKET },
		{ MD_FOUND_SUBJECT, MD_ROLE_PARTICIPANT, MD_THREAD_COMMENT },
		{ MD_FOUND_SUBJECT, MD_ROLE_AGENT, MD_THREAD_UNVERIFIED_AGENT },
		{ MD_FOUND_SUBJECT, MD_ROLE_STRANGER, MD_THREAD_NEW_TICKET },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (table); i++) {
		g_test_message ("%s x %s", md_found_by_name (table[i].found), md_role_name (table[i].role));
		g_assert_cmpstr (md_thread_action_name (md_thread_decide (table[i].found, table[i].role)), ==,
		                 md_thread_action_name (table[i].action));
	}
}

static char *
temp_db (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp ("md-core-XXXXXX", &error);
	g_assert_no_error (error);
	return g_build_filename (dir, "maildesk.db", NULL);
}

static void
test_schema_migration (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();

	/* A new database is created at the latest version ... */
	MdStore *store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	g_assert_cmpint (md_store_schema_version (store), ==, MD_STORE_SCHEMA_VERSION);
	gint64 id = 0;
	g_assert_true (md_store_person_ensure (store, "a@example.org", "A", &id, &error));
	md_store_close (store);
	/* ... reopening migrates nothing and keeps the data ... */
	store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	g_autoptr (MdPerson) p = md_store_person_find (store, "A@EXAMPLE.ORG", &error);
	g_assert_nonnull (p);
	g_assert_cmpint (p->id, ==, id);
	md_store_close (store);

	/* ... and a database from a newer maildesk is refused, untouched. */
	sqlite3 *db = NULL;
	g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, "PRAGMA user_version = 999", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_null (store);
	g_assert_error (error, MD_ERROR, MD_ERROR_CONFIG);
}

static void
test_schema_from_empty_file (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	/* version 0: an empty database, as an old, never-initialized file */
	sqlite3 *db = NULL;
	g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
	sqlite3_close (db);
	g_autoptr (MdStore) store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	g_assert_cmpint (md_store_schema_version (store), ==, MD_STORE_SCHEMA_VERSION);
	/* WAL, as DESIGN 10 asks */
	sqlite3_stmt *s = NULL;
	sqlite3_prepare_v2 (md_store_db (store), "PRAGMA journal_mode", -1, &s, NULL);
	g_assert_cmpint (sqlite3_step (s), ==, SQLITE_ROW);
	g_assert_cmpstr ((const char *) sqlite3_column_text (s, 0), ==, "wal");
	sqlite3_finalize (s);
}

static int
synchronous_of (MdStore *store)
{
	sqlite3_stmt *s = NULL;
	g_assert_cmpint (sqlite3_prepare_v2 (md_store_db (store), "PRAGMA synchronous", -1, &s, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_step (s), ==, SQLITE_ROW);
	int level = sqlite3_column_int (s, 0);
	sqlite3_finalize (s);
	return level;
}

/* Every connection commits durably (FULL, DESIGN 10) unless told its
 * commits answer no one; then only that connection skips the fsync. */
static void
test_store_durability (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	g_autoptr (MdStore) ingest = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_autoptr (MdStore) sender = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	g_assert_cmpint (synchronous_of (ingest), ==, 2);
	g_assert_true (md_store_lazy_commits (sender, &error));
	g_assert_cmpint (synchronous_of (sender), ==, 1);
	g_assert_cmpint (synchronous_of (ingest), ==, 2);
}

/* Whether this process has a file of SQLite's temporary files open. */
static gboolean
has_sqlite_temp_file (void)
{
	g_autoptr (GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
	const char *name;

	g_assert_nonnull (dir);
	while ((name = g_dir_read_name (dir))) {
		g_autofree char *link = g_strdup_printf ("/proc/self/fd/%s", name);
		g_autofree char *target = g_file_read_link (link, NULL);
		if (target && strstr (target, "etilqs_"))
			return TRUE;
	}
	return FALSE;
}

/* The writer's savepoint per message journals every page it touches; that
 * journal stays in memory (no file in /var/tmp, no pwrite per page), and
 * checkpoints come every WAL_CHECKPOINT_PAGES. */
static void
test_store_savepoint_in_memory (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	g_autoptr (MdStore) store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	sqlite3 *db = md_store_db (store);
	g_autofree char *blob = g_malloc0 (3000);

	g_assert_true (md_store_begin (store, &error));
	for (int i = 0; i < 200; i++) {   /* ~150 pages: past SQLite's 64 KiB spill */
		sqlite3_stmt *s = NULL;
		g_autofree char *key = g_strdup_printf ("%d", i);
		g_assert_cmpint (sqlite3_prepare_v2 (db, "INSERT INTO outbox_blobs (sha256, raw) VALUES (?, ?)", -1, &s, NULL),
		                 ==, SQLITE_OK);
		sqlite3_bind_text (s, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_blob (s, 2, blob, 3000, SQLITE_STATIC);
		g_assert_cmpint (sqlite3_step (s), ==, SQLITE_DONE);
		sqlite3_finalize (s);
	}
	g_assert_true (md_store_commit (store, &error));

	/* a savepoint journals the pages that existed before it, once a
	 * statement that may abort half-way (a changed unique key) runs */
	g_assert_true (md_store_begin (store, &error));
	g_assert_true (md_store_savepoint (store, &error));
	g_assert_cmpint (sqlite3_exec (db, "UPDATE outbox_blobs SET sha256 = sha256 || 'x', raw = zeroblob(3000)", NULL, NULL, NULL), ==, SQLITE_OK);
	g_assert_false (has_sqlite_temp_file ());
	g_assert_true (md_store_release (store, &error));
	g_assert_true (md_store_commit (store, &error));

	sqlite3_stmt *s = NULL;
	sqlite3_prepare_v2 (db, "PRAGMA wal_autocheckpoint", -1, &s, NULL);
	g_assert_cmpint (sqlite3_step (s), ==, SQLITE_ROW);
	g_assert_cmpint (sqlite3_column_int (s, 0), ==, 4000);
	sqlite3_finalize (s);
}

static void
test_store_dedupe_and_threading (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	g_autoptr (MdStore) store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_autoptr (MdTicket) t = g_new0 (MdTicket, 1);
	t->subject = g_strdup ("x");
	t->category = "Bug";
	t->priority = "P2";
	t->status = "Waiting for triage";
	t->created_at = t->updated_at = t->status_changed_at = 1000;
	g_assert_true (md_store_ticket_insert (store, t, &error));
	g_autoptr (MdStoredMessage) m = g_new0 (MdStoredMessage, 1);
	m->ticket_id = t->id;
	m->message_id = g_strdup ("abc@example.org");
	m->created_at = 1000;
	g_assert_true (md_store_message_insert (store, m, &error));
	g_assert_true (md_store_mark_seen (store, "<abc@example.org>", m->id, &error));
	g_assert_cmpint (md_store_seen (store, "<abc@example.org>", &error), ==, m->id);
	g_assert_cmpint (md_store_seen (store, "<other@example.org>", &error), ==, 0);

	MdFoundBy found;
	const char *refs[] = { "zzz@example.org", "abc@example.org" };
	gint64 id = md_thread_find (store, "SUP", 0, NULL, refs, 2, "no tag", &found, &error);
	g_assert_cmpint (id, ==, t->id);
	g_assert_cmpint (found, ==, MD_FOUND_REFERENCES);
	g_autofree char *subject = g_strdup_printf ("Re: [SUP-%" G_GINT64_FORMAT "]", t->id);
	id = md_thread_find (store, "SUP", 0, "unknown@x", NULL, 0, subject, &found, &error);
	g_assert_cmpint (found, ==, MD_FOUND_SUBJECT);
	id = md_thread_find (store, "SUP", 0, NULL, NULL, 0, "Re: [SUP-999]", &found, &error);
	g_assert_cmpint (id, ==, 0);
	g_assert_cmpint (found, ==, MD_FOUND_NONE);
	id = md_thread_find (store, "SUP", t->id, NULL, NULL, 0, "", &found, &error);
	g_assert_cmpint (found, ==, MD_FOUND_TOKEN);
	g_assert_no_error (error);
}

static gint64
add_ticket (MdStore *store, gint64 requester, gint64 org, gboolean shared)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdTicket) t = g_new0 (MdTicket, 1);
	t->subject = g_strdup ("x");
	t->category = "Bug";
	t->priority = "P3";
	t->status = "Waiting for triage";
	t->requester_id = requester;
	t->organization_id = org;
	t->shared = shared;
	t->created_at = t->updated_at = t->status_changed_at = 1000;
	g_assert_true (md_store_ticket_insert (store, t, &error));
	return t->id;
}

/* An untrimmed text is stored once: full_text '' stands for the body,
 * and reads back as it; a different full text is stored as it is. */
static void
test_store_full_text_once (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	g_autoptr (MdStore) store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	gint64 ticket_id = add_ticket (store, 0, 0, FALSE);
	static const struct {
		const char *body, *full_text, *column;
	} cases[] = {
		{ "The export fails.", "The export fails.", "" },
		{ "Thanks!", "Thanks!\n\n> The export fails.", "Thanks!\n\n> The export fails." },
		{ "", "", "" },
		{ "Only a body.", NULL, "" },   /* no full text: the same as the body */
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (MdStoredMessage) m = g_new0 (MdStoredMessage, 1);
		m->ticket_id = ticket_id;
		m->body = g_strdup (cases[i].body);
		m->full_text = g_strdup (cases[i].full_text);
		m->created_at = 1000;
		g_assert_true (md_store_message_insert (store, m, &error));
		sqlite3_stmt *s = NULL;
		g_assert_cmpint (sqlite3_prepare_v2 (md_store_db (store), "SELECT full_text FROM messages WHERE id = ?", -1,
		                                     &s, NULL), ==, SQLITE_OK);
		sqlite3_bind_int64 (s, 1, m->id);
		g_assert_cmpint (sqlite3_step (s), ==, SQLITE_ROW);
		g_assert_cmpstr ((const char *) sqlite3_column_text (s, 0), ==, cases[i].column);
		sqlite3_finalize (s);
	}
	/* a row an older maildesk wrote, with its copy */
	sqlite3_stmt *old_row = NULL;
	g_assert_cmpint (sqlite3_prepare_v2 (md_store_db (store), "INSERT INTO messages (ticket_id, direction, body, "
	                                     "full_text, created_at) VALUES (?, 'in', 'old', 'old', 1000)", -1,
	                                     &old_row, NULL), ==, SQLITE_OK);
	sqlite3_bind_int64 (old_row, 1, ticket_id);
	g_assert_cmpint (sqlite3_step (old_row), ==, SQLITE_DONE);
	sqlite3_finalize (old_row);
	g_autoptr (GPtrArray) read = md_store_ticket_messages (store, ticket_id, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (read->len, ==, G_N_ELEMENTS (cases) + 1);
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		const MdStoredMessage *m = read->pdata[i];
		g_assert_cmpstr (m->body, ==, cases[i].body);
		g_assert_cmpstr (m->full_text, ==, cases[i].full_text ? cases[i].full_text : cases[i].body);
	}
	g_assert_cmpstr (((MdStoredMessage *) read->pdata[G_N_ELEMENTS (cases)])->full_text, ==, "old");
}

/* What References names: the thread's first public message and its
 * latest ones, oldest first, each once; internal notes and messages
 * without a Message-ID are not part of the thread. */
static void
test_store_thread_ids (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	g_autoptr (MdStore) store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	gint64 ticket_id = add_ticket (store, 0, 0, FALSE);
	static const struct {
		const char *message_id;
		gboolean internal;
	} messages[] = {
		{ NULL, FALSE }, { "m1@x", TRUE }, { "m2@x", FALSE }, { "m3@x", FALSE },
		{ "m4@x", TRUE }, { "m5@x", FALSE }, { NULL, FALSE }, { "m6@x", FALSE },
	};
	static const struct {
		guint after, max;       /* messages stored so far; References' limit */
		const char *expected;
	} cases[] = {
		{ 0, 5, "" }, { 2, 5, "" }, { 3, 5, "m2@x" }, { 3, 1, "m2@x" }, { 4, 2, "m2@x m3@x" },
		{ 6, 3, "m2@x m3@x m5@x" }, { 8, 2, "m2@x m6@x" }, { 8, 3, "m2@x m5@x m6@x" },
		{ 8, 4, "m2@x m3@x m5@x m6@x" }, { 8, 10, "m2@x m3@x m5@x m6@x" },
	};
	guint stored = 0;

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		for (; stored < cases[i].after; stored++) {
			g_autoptr (MdStoredMessage) m = g_new0 (MdStoredMessage, 1);
			m->ticket_id = ticket_id;
			m->message_id = g_strdup (messages[stored].message_id);
			m->internal = messages[stored].internal;
			m->created_at = 1000;
			g_assert_true (md_store_message_insert (store, m, &error));
		}
		g_autoptr (GPtrArray) ids = md_store_ticket_thread_ids (store, ticket_id, cases[i].max, FALSE, &error);
		g_assert_no_error (error);
		g_ptr_array_add (ids, NULL);
		g_autofree char *got = g_strjoinv (" ", (char **) ids->pdata);
		g_assert_cmpstr (got, ==, cases[i].expected);
	}
}

/* A person is added once, keeps the id, and gets a name only while it
 * has none (a later From's name does not replace the first); an empty
 * name is none.  In and out of a transaction, as the CLI and the writer
 * call it. */
static void
test_store_person_ensure (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	g_autoptr (MdStore) store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	gint64 first = 0, again = 0, other = 0;
	g_assert_true (md_store_person_ensure (store, "nameless@example.org", "", &first, &error));
	g_assert_cmpint (first, >, 0);
	g_assert_true (md_store_person_ensure (store, "nameless@example.org", NULL, &again, &error));
	g_assert_cmpint (again, ==, first);
	g_autoptr (MdPerson) p = md_store_person_find (store, "nameless@example.org", &error);
	g_assert_null (p->name);
	g_assert_true (md_store_begin (store, &error));
	g_assert_true (md_store_person_ensure (store, "nameless@example.org", "Olena", &again, &error));
	g_assert_true (md_store_person_ensure (store, "nameless@example.org", "Someone Else", &again, &error));
	g_assert_true (md_store_person_ensure (store, "other@example.org", "Other", &other, &error));
	g_assert_true (md_store_commit (store, &error));
	g_assert_no_error (error);
	g_assert_cmpint (again, ==, first);
	g_assert_cmpint (other, >, first);
	g_autoptr (MdPerson) named = md_store_person_find (store, "nameless@example.org", &error);
	g_assert_cmpstr (named->name, ==, "Olena");
	g_assert_cmpint (named->id, ==, first);
	g_autoptr (MdPerson) o = md_store_person_get (store, other, &error);
	g_assert_cmpstr (o->email, ==, "other@example.org");
	g_assert_cmpstr (o->name, ==, "Other");
	gint64 ignored = 0;
	g_assert_true (md_store_person_ensure (store, "other@example.org", NULL, NULL, &error));
	g_assert_true (md_store_person_ensure (store, "other@example.org", NULL, &ignored, &error));
	g_assert_cmpint (ignored, ==, other);
}

/* What a person's #list shows: their own tickets, their organization's
 * shared ones and those they take part in; found through indexes, so it
 * costs the same in a desk of a million tickets.  The check of the plan
 * runs in a child whose stderr carries MAILDESK_DEBUG_SCANS's report. */
static void
test_person_ticket_list (void)
{
	if (g_test_subprocess ()) {
		g_autoptr (GError) error = NULL;
		g_autofree char *path = temp_db ();
		g_setenv ("MAILDESK_DEBUG_SCANS", "1", TRUE);
		MdStore *store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
		gint64 alice, bob, carol, org;
		g_assert_true (md_store_person_ensure (store, "alice@example.org", NULL, &alice, &error));
		g_assert_true (md_store_person_ensure (store, "bob@example.org", NULL, &bob, &error));
		g_assert_true (md_store_person_ensure (store, "carol@example.org", NULL, &carol, &error));
		g_assert_true (md_store_org_add (store, "Acme", NULL, &org, &error));
		g_assert_true (md_store_org_add_member (store, org, "alice@example.org", &error));
		md_store_begin (store, &error);
		for (int i = 0; i < 2000; i++)
			add_ticket (store, carol, 0, FALSE);
		gint64 own = add_ticket (store, alice, org, FALSE);
		gint64 shared = add_ticket (store, bob, org, TRUE);
		add_ticket (store, bob, org, FALSE);        /* private to bob */
		gint64 cc = add_ticket (store, carol, 0, FALSE);
		g_assert_true (md_store_participant_add (store, cc, alice, &error));
		g_assert_true (md_store_participant_add (store, own, alice, &error));  /* found once */
		md_store_commit (store, &error);
		g_assert_no_error (error);

		MdTicketFilter f = { .requester = "ALICE@example.org", .org_id = org, .limit = 200 };
		g_autoptr (GPtrArray) list = md_store_ticket_list (store, &f, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (list->len, ==, 3);
		g_assert_cmpint (((MdTicket *) list->pdata[0])->id, ==, own);
		g_assert_cmpint (((MdTicket *) list->pdata[1])->id, ==, shared);
		g_assert_cmpint (((MdTicket *) list->pdata[2])->id, ==, cc);
		MdTicketFilter open_only = { .requester = "alice@example.org", .org_id = org, .status = "Resolved" };
		g_autoptr (GPtrArray) none = md_store_ticket_list (store, &open_only, &error);
		g_assert_cmpuint (none->len, ==, 0);
		md_store_close (store);  /* reports full scans on stderr */
		return;
	}
	g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed ();
	g_test_trap_assert_stderr_unmatched ("*full scan*");
}

/* A version 1 database (the first release) gains version 2's index and
 * keeps its rows. */
static void
test_schema_v1_to_v2 (void)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *path = temp_db ();
	sqlite3 *db = NULL;
	g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, md_schema_migrations[0], NULL, NULL, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, "PRAGMA user_version = 1; INSERT INTO people (email, created_at) "
	                                   "VALUES ('old@example.org', 1)", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	g_autoptr (MdStore) store = md_store_open (path, MD_STORE_READ_WRITE, 1000, &error);
	g_assert_no_error (error);
	g_assert_cmpint (md_store_schema_version (store), ==, MD_STORE_SCHEMA_VERSION);
	g_autoptr (MdPerson) p = md_store_person_find (store, "old@example.org", &error);
	g_assert_nonnull (p);
	sqlite3_stmt *s = NULL;
	sqlite3_prepare_v2 (md_store_db (store), "SELECT 1 FROM sqlite_master WHERE name = 'participants_person'", -1,
	                    &s, NULL);
	g_assert_cmpint (sqlite3_step (s), ==, SQLITE_ROW);
	sqlite3_finalize (s);
}

typedef struct {
	const char *name;
	const char *headers[4];
	const char *from;
	MdSenderAuth expect;
} AuthCase;

/* RFC 8601's examples and what real MTAs write (OpenDMARC, OpenDKIM,
 * rspamd, Gmail), then what a sender could plant. */
static void
test_authres_verdicts (void)
{
	static const char *const trusted[] = { "mx.desk.example", "filter.desk.example", NULL };
	static const AuthCase cases[] = {
		{ "dmarc pass", { "mx.desk.example; dmarc=pass (p=none dis=none) header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "dmarc fail", { "mx.desk.example; dmarc=fail (p=reject dis=none) header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_FAIL },
		{ "untrusted id", { "mx.evil.example; dmarc=pass header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "id compared without case", { "MX.Desk.Example; DMARC=Pass header.from=Customer.Example" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "dkim aligned", { "mx.desk.example 1; dkim=pass (2048-bit key; unprotected) header.d=customer.example "
		                    "header.i=@customer.example header.b=\"abc;=d\"; spf=none" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "dkim parent domain", { "mx.desk.example; dkim=pass header.d=customer.example" },
		  "a@eu.customer.example", MD_SENDER_AUTH_PASS },
		{ "dkim another domain", { "mx.desk.example; dkim=pass header.d=mailer.example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "dkim a suffix without a dot", { "mx.desk.example; dkim=pass header.d=example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "dkim look-alike", { "mx.desk.example; dkim=pass header.d=tomer.example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "spf aligned", { "mx.desk.example; spf=pass (sender SPF authorized) smtp.mailfrom=bounce@customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "spf for the envelope only", { "mx.desk.example; spf=pass smtp.mailfrom=bounces.mailer.example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "no results", { "mx.desk.example; none" }, "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "dmarc failed for another From", { "mx.desk.example; dmarc=fail header.from=other.example" },
		  "a@customer.example", MD_SENDER_AUTH_FAIL },
		{ "dmarc passed for another From", { "mx.desk.example; dmarc=pass header.from=other.example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "planted pass below the MTA's fail",
		  { "mx.desk.example; dmarc=fail header.from=customer.example",
		    "mx.desk.example; dmarc=pass header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_FAIL },
		{ "planted pass below the MTA's none",
		  { "mx.desk.example; dmarc=none header.from=customer.example",
		    "mx.desk.example; dmarc=pass header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "two milters, one header each",
		  { "mx.desk.example; dkim=pass header.d=customer.example",
		    "mx.desk.example; dmarc=pass header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "second trusted id", { "filter.desk.example; dmarc=fail header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_FAIL },
		{ "comments everywhere", { "(x) mx.desk.example (y) ; (z) dmarc (a) = (b) pass (c) header.from = customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "nested comment", { "mx.desk.example; dmarc=pass (a (b ; dmarc=fail) c) header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "malformed", { "mx.desk.example; dmarc pass" }, "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "unterminated", { "mx.desk.example; dmarc=pass (header.from=\"customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_PASS },
		{ "a malformed resinfo before the failure",
		  { "mx.desk.example; spf=pass smtp.mailfrom=\"a b\" @evil.example; dmarc=fail header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_FAIL },
		{ "a malformed property after the failure",
		  { "mx.desk.example; dmarc=fail header.from=customer.example policy.x" },
		  "a@customer.example", MD_SENDER_AUTH_FAIL },
		{ "a malformed property after a pass", { "mx.desk.example; dkim=pass header.d=customer.example x.y" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "quoted local part", { "mx.desk.example; spf=pass smtp.mailfrom=\"a@customer.example\"@evil.example" },
		  "a@customer.example", MD_SENDER_AUTH_NONE },
		{ "stray parenthesis", { "mx.desk.example; dkim=fail ) x; dmarc=fail header.from=customer.example" },
		  "a@customer.example", MD_SENDER_AUTH_FAIL },
		{ "no From", { "mx.desk.example; dmarc=fail" }, NULL, MD_SENDER_AUTH_NONE },
		{ "empty", { "" }, "a@customer.example", MD_SENDER_AUTH_NONE },
	};
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		MdSenderAuth got = md_authres_verdict (cases[i].headers, trusted, cases[i].from);
		if (got != cases[i].expect)
			g_error ("%s: %s, expected %s", cases[i].name, md_sender_auth_name (got),
			         md_sender_auth_name (cases[i].expect));
	}
	/* A sender may sign with any number of DKIM keys, one result each
	 * ahead of the MTA's DMARC verdict in a header like rspamd's; and a
	 * value cut to fit must not end in the From domain it never named. */
	g_autoptr (GString) many = g_string_new ("mx.desk.example;");
	for (int i = 0; i < 40; i++)
		g_string_append_printf (many, " dkim=fail header.d=s%d.evil.example;", i);
	g_string_append (many, " dmarc=fail header.from=customer.example");
	const char *many_dkim[] = { many->str, NULL };
	g_assert_cmpint (md_authres_verdict (many_dkim, trusted, "a@customer.example"), ==, MD_SENDER_AUTH_FAIL);
	g_autofree char *pad = g_strnfill (255 - strlen ("\"") - strlen ("@customer.example"), 'x');
	g_autofree char *cut = g_strdup_printf ("mx.desk.example; spf=pass smtp.mailfrom=\"%s@customer.example\"@evil.example",
	                                        pad);
	const char *cut_mailfrom[] = { cut, NULL };
	g_assert_cmpint (md_authres_verdict (cut_mailfrom, trusted, "a@customer.example"), ==, MD_SENDER_AUTH_NONE);
	g_autofree char *cut2 = g_strdup_printf ("mx.desk.example; spf=pass smtp.mailfrom=%s@customer.example.evil.example",
	                                         pad);
	const char *cut_mailfrom2[] = { cut2, NULL };
	g_assert_cmpint (md_authres_verdict (cut_mailfrom2, trusted, "a@customer.example"), ==, MD_SENDER_AUTH_NONE);
	static const char *const none[] = { NULL };
	static const char *const fail[] = { "mx.desk.example; dmarc=fail", NULL };
	g_assert_cmpint (md_authres_verdict (fail, none, "a@customer.example"), ==, MD_SENDER_AUTH_NONE);
	g_assert_cmpint (md_authres_verdict (NULL, trusted, "a@customer.example"), ==, MD_SENDER_AUTH_NONE);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/token/vectors", test_token_vectors);
	g_test_add_func ("/token/cache", test_token_cache);
	g_test_add_func ("/token/address-classify", test_address_classify);
	g_test_add_func ("/token/equal", test_token_equal);
	g_test_add_func ("/token/ticket-keys", test_ticket_keys);
	g_test_add_func ("/thread/decide", test_thread_decide);
	g_test_add_func ("/thread/authres", test_authres_verdicts);
	g_test_add_func ("/thread/store-lookups", test_store_dedupe_and_threading);
	g_test_add_func ("/store/migration", test_schema_migration);
	g_test_add_func ("/store/from-empty-file", test_schema_from_empty_file);
	g_test_add_func ("/store/v1-to-v2", test_schema_v1_to_v2);
	g_test_add_func ("/store/person-ticket-list", test_person_ticket_list);
	g_test_add_func ("/store/savepoint-in-memory", test_store_savepoint_in_memory);
	g_test_add_func ("/store/durability", test_store_durability);
	g_test_add_func ("/store/full-text-once", test_store_full_text_once);
	g_test_add_func ("/store/thread-ids", test_store_thread_ids);
	g_test_add_func ("/store/person-ensure", test_store_person_ensure);
	return g_test_run ();
}
