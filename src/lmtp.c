/* lmtp.c - the LMTP server's transport: listeners from a `listen` string
 * (TCP, IPv6, Unix sockets) with an accepting source each, one connection object
 * per client moving bytes between its socket and its session
 * (lmtp-session.c), the idle timer and the connection limit.
 *
 * Non-blocking I/O on pollable streams: a connection reads only while
 * its session has room (none while a delivery is pending, so pipelined
 * commands wait in the socket), writes replies as soon as they exist, and
 * lets the session go on only while the kernel takes its output.
 */
#include "config.h"

#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <grp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "md.h"
#include "lmtp-session.h"

#define READ_CHUNK 16384
#define MAX_LINE_LENGTH_LIMIT 65536
#define MIN_LINE_LENGTH 64

typedef struct {
	gint ref;                 /* the server's list, and a callback running */
	MdLmtpServer *server;
	GSocketConnection *conn;
	GPollableInputStream *in;
	GPollableOutputStream *out;
	MdLmtpSession *session;
	GSource *timer;           /* idle timeout */
	GSource *readable;        /* while the session has room and no reply waits */
	GSource *writable;        /* while the kernel refuses our output */
	GString *unsent;          /* replies the kernel has not taken yet */
	gboolean peer_done;       /* the client sent EOF: answer what it sent, then close */
	gboolean closed;
	const char *close_reason;
	guint8 buf[READ_CHUNK];
} MdLmtpConn;

/* ---- the server's reference count ---- */

MdLmtpServer *
md_lmtp_server_ref (MdLmtpServer *s)
{
	g_atomic_int_inc (&s->ref);
	return s;
}

void
md_lmtp_server_unref (MdLmtpServer *s)
{
	if (!g_atomic_int_dec_and_test (&s->ref))
		return;
	g_free ((char *) s->cfg.hostname);
	g_free ((char *) s->cfg.unix_group);
	g_ptr_array_unref (s->addresses);
	g_ptr_array_unref (s->unix_paths);
	g_main_context_unref (s->context);
	g_free (s);
}

/* ---- connections ---- */

static MdLmtpConn *
conn_ref (MdLmtpConn *c)
{
	c->ref++;
	return c;
}

static void
conn_unref (MdLmtpConn *c)
{
	if (--c->ref > 0)
		return;
	g_assert (c->closed);
	g_string_free (c->unsent, TRUE);
	g_object_unref (c->conn);
	g_free (c);
}

static void
drop_source (GSource **source)
{
	if (*source) {
		g_source_destroy (*source);
		g_clear_pointer (source, g_source_unref);
	}
}

static void
conn_close (MdLmtpConn *c, const char *reason)
{
	if (c->closed)
		return;
	c->closed = TRUE;
	drop_source (&c->timer);
	drop_source (&c->readable);
	drop_source (&c->writable);
	c->server->connections = g_list_remove (c->server->connections, c);
	c->server->n_connections--;
	md_lmtp_session_free (&c->session, c->close_reason ? c->close_reason : reason);
	g_io_stream_close (G_IO_STREAM (c->conn), NULL, NULL);
	conn_unref (c);
}

static void conn_pump (MdLmtpConn *c);

static void
conn_arm_timer (MdLmtpConn *c)
{
	if (md_lmtp_session_waiting (c->session))
		g_source_set_ready_time (c->timer, -1);
	else
		g_source_set_ready_time (c->timer, g_get_monotonic_time ()
		                         + (gint64) c->server->cfg.idle_timeout_ms * 1000);
}

static gboolean
on_readable (GObject *stream, gpointer data)
{
	MdLmtpConn *c = conn_ref (data);
	g_autoptr (GError) error = NULL;
	gsize room = MIN (md_lmtp_session_input_room (c->session), sizeof c->buf);
	gssize n = room ? g_pollable_input_stream_read_nonblocking (c->in, c->buf, room, NULL, &error) : 0;

	if (room == 0 || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
		;
	else if (n < 0)
		conn_close (c, "error");
	else if (n == 0) {
		c->peer_done = TRUE;
		conn_pump (c);
	} else {
		md_lmtp_session_input (c->session, c->buf, (gsize) n);
		conn_arm_timer (c);
		conn_pump (c);
	}
	conn_unref (c);
	return G_SOURCE_CONTINUE;
}

static gboolean
on_writable (GObject *stream, gpointer data)
{
	MdLmtpConn *c = conn_ref (data);

	drop_source (&c->writable);
	conn_arm_timer (c);
	conn_pump (c);
	conn_unref (c);
	return G_SOURCE_REMOVE;
}

/* Hands the unsent replies to the kernel without blocking; FALSE if the
 * connection broke (and is closed). */
static gboolean
conn_write (MdLmtpConn *c)
{
	while (c->unsent->len > 0 && !c->writable) {
		g_autoptr (GError) error = NULL;
		gssize n = g_pollable_output_stream_write_nonblocking (c->out, c->unsent->str, c->unsent->len, NULL,
		                                                       &error);
		if (n > 0) {
			g_string_erase (c->unsent, 0, n);
		} else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
			c->writable = g_pollable_output_stream_create_source (c->out, NULL);
			g_source_set_callback (c->writable, (GSourceFunc) (void (*) (void)) on_writable, c, NULL);
			g_source_attach (c->writable, c->server->context);
		} else {
			conn_close (c, "error");
			return FALSE;
		}
	}
	return TRUE;
}

/* Sends what the session has to say, lets it go on while the kernel takes
 * the output, reads while it has room, closes once it is done. */
static void
conn_pump (MdLmtpConn *c)
{
	while (!c->closed) {
		GString *out = md_lmtp_session_output (c->session);
		g_string_append_len (c->unsent, out->str, (gssize) out->len);
		g_string_truncate (out, 0);
		if (!conn_write (c) || c->unsent->len > 0)
			break;  /* closed, or on_writable will be back */
		if (md_lmtp_session_closing (c->session)) {
			conn_close (c, "quit");
			break;
		}
		md_lmtp_session_input (c->session, NULL, 0);  /* in case output had backed up */
		if (md_lmtp_session_output (c->session)->len == 0)
			break;
	}
	if (c->closed)
		return;
	if (c->peer_done) {
		drop_source (&c->readable);
		if (c->unsent->len == 0 && !md_lmtp_session_waiting (c->session))
			conn_close (c, "eof");
		return;
	}
	/* A client that does not read its replies is not read either: what
	 * it pipelines waits in the kernel, not in our memory. */
	gboolean want_input = md_lmtp_session_input_room (c->session) > 0 && c->unsent->len == 0;
	if (want_input && !c->readable) {
		c->readable = g_pollable_input_stream_create_source (c->in, NULL);
		g_source_set_callback (c->readable, (GSourceFunc) (void (*) (void)) on_readable, c, NULL);
		g_source_attach (c->readable, c->server->context);
	} else if (!want_input)
		drop_source (&c->readable);
}

static void
conn_wake (gpointer owner)
{
	MdLmtpConn *c = conn_ref (owner);
	conn_arm_timer (c);
	conn_pump (c);
	conn_unref (c);
}

static gboolean
on_idle_timeout (gpointer data)
{
	MdLmtpConn *c = conn_ref (data);

	if (!c->closed && !md_lmtp_session_waiting (c->session)) {
		c->close_reason = "timeout";
		md_lmtp_session_timeout (c->session);
		if (c->unsent->len > 0)  /* a client that does not read its replies gets no 421 */
			conn_close (c, "timeout");
		else
			conn_pump (c);
	}
	conn_unref (c);
	return G_SOURCE_CONTINUE;
}

static gboolean
timer_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
	g_source_set_ready_time (source, -1);
	return callback (data);
}

static GSourceFuncs timer_funcs = { NULL, NULL, timer_dispatch, NULL, NULL, NULL };

static char *
address_to_string (GSocketAddress *address)
{
	if (G_IS_INET_SOCKET_ADDRESS (address)) {
		GInetSocketAddress *inet = G_INET_SOCKET_ADDRESS (address);
		g_autofree char *ip = g_inet_address_to_string (g_inet_socket_address_get_address (inet));
		guint16 port = g_inet_socket_address_get_port (inet);
		if (g_socket_address_get_family (address) == G_SOCKET_FAMILY_IPV6)
			return g_strdup_printf ("[%s]:%u", ip, port);
		return g_strdup_printf ("%s:%u", ip, port);
	}
	if (G_IS_UNIX_SOCKET_ADDRESS (address)) {
		const char *path = g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (address));
		return g_strdup_printf ("unix:%s", *path ? path : "");
	}
	return g_strdup ("unknown");
}

static void
on_refusal_sent (GObject *source, GAsyncResult *result, gpointer data)
{
	GSocketConnection *conn = data;

	g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL);
	g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
	g_object_unref (conn);
}

static void
on_incoming (MdLmtpServer *s, GSocketConnection *conn)
{
	g_autoptr (GSocketAddress) remote = g_socket_connection_get_remote_address (conn, NULL);
	g_autofree char *peer = remote ? address_to_string (remote) : g_strdup ("unknown");

	if (s->n_connections >= s->cfg.max_connections) {
		/* Our own refusal text lives as long as the write: keep it in the connection. */
		char *text = g_strdup_printf ("421 4.3.2 %s Too many connections, try again later\r\n", s->cfg.hostname);
		g_object_set_data_full (G_OBJECT (conn), "md-refusal", text, g_free);
		g_message ("lmtp refused address=%s reason=too-many-connections limit=%u", peer, s->cfg.max_connections);
		g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (conn)), text, strlen (text),
		                                 G_PRIORITY_DEFAULT, NULL, on_refusal_sent, g_object_ref (conn));
		return;
	}
	MdLmtpConn *c = g_new0 (MdLmtpConn, 1);
	c->ref = 1;
	c->server = s;
	c->conn = g_object_ref (conn);
	c->in = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (G_IO_STREAM (conn)));
	c->out = G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (G_IO_STREAM (conn)));
	c->unsent = g_string_new (NULL);
	c->session = md_lmtp_session_new (s, peer, conn_wake, c);
	c->timer = g_source_new (&timer_funcs, sizeof (GSource));
	g_source_set_callback (c->timer, on_idle_timeout, c, NULL);
	g_source_attach (c->timer, s->context);
	s->connections = g_list_prepend (s->connections, c);
	s->n_connections++;
	conn_arm_timer (c);
	conn_wake (c);
}

/* ---- accepting ---- */

/* A listening socket and the main-loop source that accepts on it.  Not
 * GSocketService: when accept(2) fails for want of descriptors (EMFILE),
 * it tries again at once and warns each time, a busy loop that writes
 * the log full.  Here every listener rests a second instead. */
typedef struct {
	MdLmtpServer *server;
	GSocket *sock;
	GSource *source;
} Listener;

#define ACCEPT_PAUSE_MS 1000
#define ACCEPTS_PER_WAKE 32

static gboolean on_acceptable (GSocket *sock, GIOCondition cond, gpointer data);

static void
listener_arm (Listener *l)
{
	if (l->source)
		return;
	l->source = g_socket_create_source (l->sock, G_IO_IN, NULL);
	g_source_set_callback (l->source, (GSourceFunc) (GCallback) on_acceptable, l, NULL);
	g_source_attach (l->source, l->server->context);
}

static void
listener_disarm (Listener *l)
{
	if (!l->source)
		return;
	g_source_destroy (l->source);
	g_clear_pointer (&l->source, g_source_unref);
}

static void
listener_free (gpointer data)
{
	Listener *l = data;

	listener_disarm (l);
	g_socket_close (l->sock, NULL);
	g_object_unref (l->sock);
	g_free (l);
}

static gboolean
resume_accepting (gpointer data)
{
	MdLmtpServer *s = data;

	g_clear_pointer (&s->accept_resume, g_source_unref);
	for (guint i = 0; i < s->listeners->len; i++)
		listener_arm (s->listeners->pdata[i]);
	return G_SOURCE_REMOVE;
}

static void
pause_accepting (MdLmtpServer *s, int errsv)
{
	g_warning ("lmtp: cannot accept a connection: %s; not accepting for %d ms (connections: %u)",
	           g_strerror (errsv), ACCEPT_PAUSE_MS, s->n_connections);
	for (guint i = 0; i < s->listeners->len; i++)
		listener_disarm (s->listeners->pdata[i]);
	if (s->accept_resume)
		return;
	s->accept_resume = g_timeout_source_new (ACCEPT_PAUSE_MS);
	g_source_set_callback (s->accept_resume, resume_accepting, s, NULL);
	g_source_attach (s->accept_resume, s->context);
}

static gboolean
on_acceptable (GSocket *sock, GIOCondition cond, gpointer data)
{
	Listener *l = data;
	MdLmtpServer *s = l->server;

	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		int fd = accept4 (g_socket_get_fd (sock), NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			int errsv = errno;
			/* Nothing more waiting; or that client is gone already (the
			 * next one is accepted at once, so no loop). */
			if (errsv == EAGAIN || errsv == EWOULDBLOCK)
				return G_SOURCE_CONTINUE;
			if (errsv == EINTR || errsv == ECONNABORTED || errsv == EPROTO || errsv == EPERM)
				continue;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM, and the unforeseen: rest
			 * (this source is destroyed; returning from it is allowed) */
			pause_accepting (s, errsv);
			return G_SOURCE_REMOVE;
		}
		g_autoptr (GError) error = NULL;
		g_autoptr (GSocket) client = g_socket_new_from_fd (fd, &error);
		if (!client) {
			close (fd);
			g_warning ("lmtp: cannot use an accepted connection: %s", error->message);
			continue;
		}
		g_autoptr (GSocketConnection) conn = g_socket_connection_factory_create_connection (client);
		on_incoming (s, conn);
	}
	return G_SOURCE_CONTINUE;
}

/* ---- listeners ---- */

static GSocket *
bind_socket (GSocketAddress *address, GError **error)
{
	GSocketFamily family = g_socket_address_get_family (address);
	g_autoptr (GSocket) sock = g_socket_new (family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);

	if (!sock)
		return NULL;
	/* [::]:port means IPv6 only; 0.0.0.0:port is said separately. */
	if (family == G_SOCKET_FAMILY_IPV6 && !g_socket_set_option (sock, IPPROTO_IPV6, IPV6_V6ONLY, 1, error))
		return NULL;
	if (!g_socket_bind (sock, address, family != G_SOCKET_FAMILY_UNIX, error))
		return NULL;
	g_socket_set_listen_backlog (sock, 128);
	if (!g_socket_listen (sock, error))
		return NULL;
	return g_steal_pointer (&sock);
}

/* A socket file nobody answers on is left over from a crash: replace it.
 * Anything else at the path is not ours to remove. */
static gboolean
clear_stale_socket (const char *path, GError **error)
{
	struct stat st;

	if (lstat (path, &st) < 0) {
		if (errno == ENOENT)
			return TRUE;
		md_set_errno_error (error, errno, "cannot stat", path);
		return FALSE;
	}
	if (!S_ISSOCK (st.st_mode)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s exists and is not a socket", path);
		return FALSE;
	}
	g_autoptr (GSocket) probe = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
	                                          G_SOCKET_PROTOCOL_DEFAULT, error);
	g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
	g_autoptr (GError) connect_error = NULL;
	if (!probe)
		return FALSE;
	if (g_socket_connect (probe, address, NULL, &connect_error)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: a server is already listening there", path);
		return FALSE;
	}
	if (!g_error_matches (connect_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s: %s", path, connect_error->message);
		return FALSE;
	}
	if (unlink (path) < 0 && errno != ENOENT) {
		md_set_errno_error (error, errno, "cannot remove stale socket", path);
		return FALSE;
	}
	return TRUE;
}

/* The MTA's group (Postfix's lmtp client runs as postfix) may connect.
 * A daemon can give the socket only to a group it belongs to. */
static gboolean
give_to_group (const char *path, const char *group, GError **error)
{
	if (!group)
		return TRUE;
	struct group *g = getgrnam (group);
	if (!g) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "unix:%s: no group named \"%s\"", path, group);
		return FALSE;
	}
	if (chown (path, (uid_t) -1, g->gr_gid) < 0) {
		int errsv = errno;
		g_set_error (error, MD_ERROR, MD_ERROR_IO, "unix:%s: cannot give the socket to group %s: %s", path,
		             group, g_strerror (errsv));
		return FALSE;
	}
	return TRUE;
}

static GSocket *
bind_unix (MdLmtpServer *s, const char *path, GError **error)
{
	if (path[0] != '/' || strlen (path) >= 108) {  /* sizeof sun_path */
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "unix:%s: need an absolute path under 108 bytes", path);
		return NULL;
	}
	if (!clear_stale_socket (path, error))
		return NULL;
	g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
	/* Created owner-only, so no one connects before the chmod. umask is
	 * per process; listeners are set up before other threads exist. */
	mode_t old_mask = umask (0177);
	GSocket *sock = bind_socket (address, error);
	umask (old_mask);
	if (sock && chmod (path, s->cfg.unix_mode) < 0) {
		md_set_errno_error (error, errno, "cannot chmod", path);
		unlink (path);
		g_clear_object (&sock);
	}
	if (sock && !give_to_group (path, s->cfg.unix_group, error)) {
		unlink (path);
		g_clear_object (&sock);
	}
	return sock;
}

/* host:port, [v6]:port or *:port: the host (free with g_free) and port. */
static gboolean
split_host_port (const char *entry, char **host_r, guint16 *port_r)
{
	g_autofree char *host = NULL;
	const char *port_text;
	guint64 port;

	if (entry[0] == '[') {
		const char *close = strchr (entry, ']');
		if (!close || close[1] != ':')
			return FALSE;
		host = g_strndup (entry + 1, (gsize) (close - entry - 1));
		port_text = close + 2;
		if (!g_hostname_is_ip_address (host) || !strchr (host, ':'))
			return FALSE;
	} else {
		const char *colon = strrchr (entry, ':');
		if (!colon || colon == entry || memchr (entry, ':', (gsize) (colon - entry)))
			return FALSE;
		host = g_strndup (entry, (gsize) (colon - entry));
		port_text = colon + 1;
	}
	if (!g_ascii_string_to_unsigned (port_text, 10, 0, 65535, &port, NULL))
		return FALSE;
	*host_r = g_steal_pointer (&host);
	*port_r = (guint16) port;
	return TRUE;
}

gboolean
md_lmtp_listen_check (const char *entry, GError **error)
{
	g_autofree char *host = NULL;
	guint16 port;

	if (g_str_has_prefix (entry, "unix:")) {
		const char *path = entry + 5;
		if (path[0] != '/' || strlen (path) >= 108) {  /* sizeof sun_path */
			g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "listen \"%s\": need an absolute path under 108 bytes",
			             entry);
			return FALSE;
		}
		return TRUE;
	}
	if (!split_host_port (entry, &host, &port) || !*host) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG,
		             "listen \"%s\": expected host:port, [ipv6]:port or unix:/path", entry);
		return FALSE;
	}
	return TRUE;
}

/* The socket addresses an inet entry names; "*" is every address. */
static GList *
resolve_inet (const char *entry, GError **error)
{
	g_autofree char *host = NULL;
	guint16 port;

	if (!split_host_port (entry, &host, &port)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG,
		             "listen \"%s\": expected host:port, [ipv6]:port or unix:/path", entry);
		return NULL;
	}
	if (g_str_equal (host, "*"))
		return g_list_append (g_list_append (NULL, g_inet_socket_address_new_from_string ("0.0.0.0", port)),
		                      g_inet_socket_address_new_from_string ("::", port));
	if (g_hostname_is_ip_address (host))
		return g_list_append (NULL, g_inet_socket_address_new_from_string (host, port));
	g_autoptr (GResolver) resolver = g_resolver_get_default ();
	g_autoptr (GError) resolve_error = NULL;
	GList *ips = g_resolver_lookup_by_name (resolver, host, NULL, &resolve_error);
	if (!ips) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "listen %s: %s", entry, resolve_error->message);
		return NULL;
	}
	GList *addresses = NULL;
	for (GList *l = ips; l; l = l->next)
		addresses = g_list_append (addresses, g_inet_socket_address_new (l->data, port));
	g_resolver_free_addresses (ips);
	return addresses;
}

static gboolean
bind_entry (MdLmtpServer *s, const char *entry, GPtrArray *sockets, GPtrArray *paths, GError **error)
{
	if (g_str_has_prefix (entry, "unix:")) {
		GSocket *sock = bind_unix (s, entry + 5, error);
		if (!sock)
			return FALSE;
		g_ptr_array_add (sockets, sock);
		g_ptr_array_add (paths, g_strdup (entry + 5));
		return TRUE;
	}
	GList *addresses = resolve_inet (entry, error);
	gboolean ok = addresses != NULL;
	for (GList *l = addresses; l && ok; l = l->next) {
		g_autoptr (GError) bind_error = NULL;
		GSocket *sock = bind_socket (l->data, &bind_error);
		if (sock)
			g_ptr_array_add (sockets, sock);
		else {
			g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "listen %s: %s", entry, bind_error->message);
			ok = FALSE;
		}
	}
	g_list_free_full (addresses, g_object_unref);
	return ok;
}

static void
refresh_addresses (MdLmtpServer *s, GPtrArray *sockets)
{
	g_ptr_array_remove_index (s->addresses, s->addresses->len - 1);  /* the NULL */
	for (guint i = 0; i < sockets->len; i++) {
		g_autoptr (GSocketAddress) local = g_socket_get_local_address (sockets->pdata[i], NULL);
		g_ptr_array_add (s->addresses, local ? address_to_string (local) : g_strdup ("unknown"));
	}
	g_ptr_array_add (s->addresses, NULL);
}

gboolean
md_lmtp_server_listen (MdLmtpServer *s, const char *listen_spec, GError **error)
{
	g_auto (GStrv) entries = g_strsplit (listen_spec, ",", 0);
	g_autoptr (GPtrArray) sockets = g_ptr_array_new_with_free_func (g_object_unref);
	g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	gboolean ok = TRUE;
	guint n = 0;

	for (char **e = entries; *e && ok; e++) {
		g_strstrip (*e);
		if (**e == '\0')
			continue;
		ok = bind_entry (s, *e, sockets, paths, error);
		n++;
	}
	if (ok && n == 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "listen: no address given");
		ok = FALSE;
	}
	if (!ok) {
		for (guint i = 0; i < sockets->len; i++)
			g_socket_close (sockets->pdata[i], NULL);
		for (guint i = 0; i < paths->len; i++)
			unlink (paths->pdata[i]);
		return FALSE;
	}
	for (guint i = 0; i < sockets->len; i++) {
		Listener *l = g_new0 (Listener, 1);
		l->server = s;
		l->sock = g_object_ref (sockets->pdata[i]);
		g_ptr_array_add (s->listeners, l);
		if (!s->accept_resume)
			listener_arm (l);
	}
	for (guint i = 0; i < paths->len; i++)
		g_ptr_array_add (s->unix_paths, g_strdup (paths->pdata[i]));
	refresh_addresses (s, sockets);
	for (guint i = 0; i + 1 < s->addresses->len; i++)
		g_info ("lmtp listening address=%s", (const char *) s->addresses->pdata[i]);
	return TRUE;
}

const char *const *
md_lmtp_server_addresses (MdLmtpServer *s)
{
	return (const char *const *) s->addresses->pdata;
}

void
md_lmtp_server_stop_accepting (MdLmtpServer *s)
{
	g_ptr_array_set_size (s->listeners, 0);
	if (s->accept_resume) {
		g_source_destroy (s->accept_resume);
		g_clear_pointer (&s->accept_resume, g_source_unref);
	}
	for (guint i = 0; i < s->unix_paths->len; i++)
		unlink (s->unix_paths->pdata[i]);
	g_ptr_array_set_size (s->unix_paths, 0);
	g_ptr_array_set_size (s->addresses, 0);
	g_ptr_array_add (s->addresses, NULL);
}

guint
md_lmtp_server_active_transactions (MdLmtpServer *s)
{
	return s->active_transactions;
}

void
md_lmtp_server_drain (MdLmtpServer *s)
{
	md_lmtp_server_stop_accepting (s);
	s->draining = TRUE;
}

guint
md_lmtp_server_open_transactions (MdLmtpServer *s)
{
	guint open = s->active_transactions;
	for (GList *l = s->connections; l; l = l->next) {
		MdLmtpConn *c = l->data;
		open += c->session && md_lmtp_session_in_transaction (c->session);
	}
	return open;
}

guint
md_lmtp_server_connections (MdLmtpServer *s)
{
	return s->n_connections;
}

MdLmtpServer *
md_lmtp_server_new (const MdLmtpConfig *cfg, MdSpool *spool, const MdLmtpCallbacks *cb, gpointer app,
                    GError **error)
{
	if (cfg->max_line_length && (cfg->max_line_length < MIN_LINE_LENGTH
	                             || cfg->max_line_length > MAX_LINE_LENGTH_LIMIT)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "max_line_length must be within %d..%d",
		             MIN_LINE_LENGTH, MAX_LINE_LENGTH_LIMIT);
		return NULL;
	}
	if (cfg->max_message_size < 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "max_message_size must not be negative");
		return NULL;
	}
	MdLmtpServer *s = g_new0 (MdLmtpServer, 1);
	s->ref = 1;
	s->cfg = *cfg;
	s->cfg.hostname = g_strdup (cfg->hostname ? cfg->hostname : g_get_host_name ());
	s->cfg.unix_group = g_strdup (cfg->unix_group);
	if (!s->cfg.max_recipients)
		s->cfg.max_recipients = 100;   /* RFC 5321 4.5.3.1.8: at least 100 */
	if (!s->cfg.max_line_length)
		s->cfg.max_line_length = 1000; /* RFC 5321 4.5.3.1.4 and .6 */
	if (!s->cfg.idle_timeout_ms)
		s->cfg.idle_timeout_ms = 300000; /* RFC 5321 4.5.3.2.7 */
	if (!s->cfg.max_connections)
		s->cfg.max_connections = 256;
	if (!s->cfg.unix_mode)
		s->cfg.unix_mode = 0660;
	s->spool = spool;
	s->cb = *cb;
	s->app = app;
	s->context = g_main_context_ref_thread_default ();
	s->addresses = g_ptr_array_new_with_free_func (g_free);
	g_ptr_array_add (s->addresses, NULL);
	s->unix_paths = g_ptr_array_new_with_free_func (g_free);
	s->listeners = g_ptr_array_new_with_free_func (listener_free);
	return s;
}

void
md_lmtp_server_free (MdLmtpServer *s)
{
	if (!s)
		return;
	md_lmtp_server_stop_accepting (s);
	g_clear_pointer (&s->listeners, g_ptr_array_unref);
	while (s->connections) {
		MdLmtpConn *c = conn_ref (s->connections->data);
		/* One try to say goodbye, without waiting on a slow reader. */
		c->close_reason = "shutdown";
		if (c->unsent->len == 0) {
			md_lmtp_session_shutdown (c->session);
			conn_pump (c);
		}
		conn_close (c, "shutdown");
		conn_unref (c);
	}
	md_lmtp_server_unref (s);
}
