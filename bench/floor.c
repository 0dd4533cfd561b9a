/* bench/floor.c - the floor DESIGN 5 sets under issue 3's ratio: an LMTP
 * server that does, before each 250, only what DESIGN 5.1, 5.3, 5.9 and
 * 10 require of every message and nothing maildesk adds (no rules, no
 * ticket, no history, no timers, no acknowledgement):
 *
 *   - the raw message written to its content-addressed spool file by
 *     maildesk's own src/spool.c (tmp file, fsync, rename into
 *     raw/XX/SHA256, fsync of the directory);
 *   - parsed with GMime;
 *   - one row per message committed in SQLite (WAL, synchronous=FULL),
 *     the commit shared by whatever sessions are waiting (group commit).
 *
 * bench/lmtp.sh drives it with the same client, at the same moment, as
 * maildesk and smtp-sink; its rate against smtp-sink's is the highest
 * ratio any program honouring DESIGN could show on this machine.
 *
 *   bench/floor DIR PORT
 *
 * One thread per connection (the load is at most a few dozen sessions);
 * the protocol is just enough for bench/lmtp: LHLO, MAIL, RCPT, DATA,
 * RSET, NOOP, QUIT, pipelined. */
#include "config.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spool.h"

#define MAX_MESSAGE (1024 * 1024)

static const char *root;
static MdSpool *spool;
static sqlite3 *db;
static sqlite3_stmt *insert_row;

/* The group commit: sessions queue a Pending and sleep; the committer
 * takes everything queued, commits it as one transaction, wakes them. */
typedef struct {
	char sha[65];
	char *message_id;
	gsize size;
	gboolean done;
} Pending;

static GMutex commit_lock;
static GCond work_queued;   /* the committer waits on it */
static GCond batch_done;    /* sessions wait on it */
static GPtrArray *queued;

static void
die (const char *what)
{
	fprintf (stderr, "floor: %s: %s\n", what, g_strerror (errno));
	exit (1);
}

/* The spool maildesk itself writes through (src/spool.c): tmp file,
 * fsync, rename into raw/XX/SHA256, fsync of the directory. */
static void
spool_durably (const GString *raw, char sha[65])
{
	g_autoptr (GError) error = NULL;
	g_autoptr (MdSpoolWriter) w = md_spool_writer_new (spool, MD_SPOOL_RAW, MAX_MESSAGE, &error);
	g_autofree char *hex = NULL;
	if (!w || !md_spool_writer_write (w, raw->str, raw->len, &error) ||
	    !md_spool_writer_commit (g_steal_pointer (&w), &hex, &error)) {
		fprintf (stderr, "floor: %s\n", error->message);
		exit (1);
	}
	memcpy (sha, hex, 65);
}

static char *
parse_message_id (const GString *raw)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer (raw->str, raw->len);
	GMimeParser *parser = g_mime_parser_new_with_stream (stream);
	GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
	char *id = NULL;
	if (message) {
		/* Touch what ingest reads first: the text part's decoded content. */
		GMimeObject *body = g_mime_message_get_body (message);
		if (GMIME_IS_TEXT_PART (body))
			g_free (g_mime_text_part_get_text (GMIME_TEXT_PART (body)));
		id = g_strdup (g_mime_message_get_message_id (message));
		g_object_unref (message);
	}
	g_object_unref (parser);
	g_object_unref (stream);
	return id ? id : g_strdup ("");
}

static void
commit_durably (Pending *p)
{
	g_mutex_lock (&commit_lock);
	g_ptr_array_add (queued, p);
	g_cond_signal (&work_queued);
	while (!p->done)
		g_cond_wait (&batch_done, &commit_lock);
	g_mutex_unlock (&commit_lock);
}

static gpointer
committer (gpointer unused)
{
	(void) unused;
	for (;;) {
		g_mutex_lock (&commit_lock);
		while (queued->len == 0)
			g_cond_wait (&work_queued, &commit_lock);
		g_autoptr (GPtrArray) batch = queued;
		queued = g_ptr_array_new ();
		g_mutex_unlock (&commit_lock);

		if (sqlite3_exec (db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
			die ("BEGIN");
		for (guint i = 0; i < batch->len; i++) {
			Pending *p = batch->pdata[i];
			sqlite3_bind_text (insert_row, 1, p->sha, -1, SQLITE_STATIC);
			sqlite3_bind_text (insert_row, 2, p->message_id, -1, SQLITE_STATIC);
			sqlite3_bind_int64 (insert_row, 3, (sqlite3_int64) p->size);
			if (sqlite3_step (insert_row) != SQLITE_DONE)
				die (sqlite3_errmsg (db));
			sqlite3_reset (insert_row);
		}
		if (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			die ("COMMIT");

		g_mutex_lock (&commit_lock);
		for (guint i = 0; i < batch->len; i++)
			((Pending *) batch->pdata[i])->done = TRUE;
		g_cond_broadcast (&batch_done);
		g_mutex_unlock (&commit_lock);
	}
	return NULL;
}

typedef struct {
	int fd;
	char buf[65536];
	gsize start, end;
} Conn;

/* One line without its CRLF, or NULL at end of stream. */
static char *
read_line (Conn *c, gsize *len)
{
	for (;;) {
		char *nl = memchr (c->buf + c->start, '\n', c->end - c->start);
		if (nl) {
			char *line = c->buf + c->start;
			*len = (gsize) (nl - line);
			if (*len > 0 && line[*len - 1] == '\r')
				(*len)--;
			line[*len] = '\0';
			c->start = (gsize) (nl - c->buf) + 1;
			return line;
		}
		if (c->start > 0) {
			memmove (c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		if (c->end == sizeof c->buf)
			return NULL;
		ssize_t n = read (c->fd, c->buf + c->end, sizeof c->buf - c->end);
		if (n <= 0)
			return NULL;
		c->end += (gsize) n;
	}
}

static void
reply (Conn *c, const char *text)
{
	gsize len = strlen (text);
	if (write (c->fd, text, len) != (ssize_t) len)
		return;
}

static gboolean
receive_data (Conn *c, GString *raw)
{
	gsize len;
	char *line;
	g_string_truncate (raw, 0);
	while ((line = read_line (c, &len)) != NULL) {
		if (len == 1 && line[0] == '.')
			return TRUE;
		if (raw->len + len + 2 > MAX_MESSAGE)
			return FALSE;
		if (line[0] == '.')
			line++, len--;
		g_string_append_len (raw, line, (gssize) len);
		g_string_append_len (raw, "\r\n", 2);
	}
	return FALSE;
}

static gpointer
session (gpointer data)
{
	g_autofree Conn *c = data;
	g_autoptr (GString) raw = g_string_sized_new (8192);
	guint recipients = 0;
	gsize len;
	char *line;

	reply (c, "220 floor LMTP\r\n");
	while ((line = read_line (c, &len)) != NULL) {
		if (g_ascii_strncasecmp (line, "LHLO", 4) == 0)
			reply (c, "250-floor\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n");
		else if (g_ascii_strncasecmp (line, "MAIL", 4) == 0) {
			recipients = 0;
			reply (c, "250 2.1.0 Ok\r\n");
		} else if (g_ascii_strncasecmp (line, "RCPT", 4) == 0) {
			recipients++;
			reply (c, "250 2.1.5 Ok\r\n");
		} else if (g_ascii_strncasecmp (line, "DATA", 4) == 0) {
			reply (c, "354 End data with <CR><LF>.<CR><LF>\r\n");
			if (!receive_data (c, raw))
				break;
			Pending p = { .size = raw->len };
			spool_durably (raw, p.sha);
			p.message_id = parse_message_id (raw);
			commit_durably (&p);
			g_free (p.message_id);
			for (guint i = 0; i < recipients; i++)
				reply (c, "250 2.0.0 Ok\r\n");
		} else if (g_ascii_strncasecmp (line, "QUIT", 4) == 0) {
			reply (c, "221 2.0.0 Bye\r\n");
			break;
		} else
			reply (c, "250 2.0.0 Ok\r\n");
	}
	close (c->fd);
	return NULL;
}

static void
open_store (void)
{
	g_autofree char *path = g_strdup_printf ("%s/floor.db", root);
	if (sqlite3_open (path, &db) != SQLITE_OK)
		die (path);
	if (sqlite3_exec (db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                  "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY,"
	                  " raw_sha256 TEXT NOT NULL, message_id TEXT NOT NULL, size INTEGER NOT NULL)",
	                  NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2 (db, "INSERT INTO messages (raw_sha256, message_id, size) VALUES (?, ?, ?)",
	                        -1, &insert_row, NULL) != SQLITE_OK)
		die (sqlite3_errmsg (db));
}

int
main (int argc, char **argv)
{
	if (argc != 3) {
		fprintf (stderr, "usage: floor DIR PORT\n");
		return 2;
	}
	root = argv[1];
	g_mime_init ();
	g_autoptr (GError) error = NULL;
	spool = md_spool_open (root, &error);
	if (!spool) {
		fprintf (stderr, "floor: %s\n", error->message);
		return 1;
	}
	open_store ();
	queued = g_ptr_array_new ();
	g_thread_unref (g_thread_new ("committer", committer, NULL));

	int listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt (listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) atoi (argv[2])),
	                          .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
	if (listener < 0 || bind (listener, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (listener, 512) < 0)
		die ("listen");
	for (;;) {
		int fd = accept4 (listener, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die ("accept");
		}
		/* Replies to pipelined commands are separate writes: without
		 * this, Nagle holds each behind the client's delayed ACK. */
		setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		Conn *c = g_new0 (Conn, 1);
		c->fd = fd;
		g_thread_unref (g_thread_new ("session", session, c));
	}
}
