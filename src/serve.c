/* serve.c - `maildesk serve`: the daemon.  The main loop moves bytes
 * (LMTP sessions); parsing runs on the writer's pool and storing on its
 * writer thread (writer.c).  Signals arrive as main-loop events:
 * SIGTERM/SIGINT stop accepting, let in-flight transactions finish
 * (bounded) and exit 0; SIGHUP reloads the rules, keeping the old set if
 * the new one has errors. */
#include "config.h"

#include <glib-unix.h>
#include <stdio.h>
#include <sys/resource.h>

#include "checkpointer.h"
#include "cli.h"
#include "imap.h"
#include "ingest.h"
#include "lmtp.h"
#include "md.h"
#include "outbox.h"
#include "schedule.h"
#include "writer.h"

#define DRAIN_TIMEOUT_US (15 * G_USEC_PER_SEC)
/* spool/tmp: looked through at start and this often; a file there is
 * another process's unfinished write unless that process is gone or it
 * has not been written to for TMP_MAX_AGE. */
#define TMP_CLEAN_SECONDS 3600
#define TMP_MAX_AGE (24 * 3600)
/* Descriptors: a session holds its socket, and its spool file while a
 * message arrives; the rest of the daemon (databases, the parsing pool's
 * files, IMAP, SMTP, listeners) stays within the reserve. */
#define FDS_PER_SESSION 2
#define FDS_RESERVED 128

typedef struct {
	MdDesk *desk;
	MdCheckpointer *checkpointer;
	MdWriter *writer;
	MdLmtpServer *lmtp;
	MdOutboxSender *sender;
	MdImapPoller *imap;
	MdScheduler *scheduler;
	GMainLoop *loop;
	gint64 drain_deadline;
	gint closing;      /* atomic: no new ingests */
	gint submitting;   /* atomic: ingests being handed to the writer */
} Daemon;

/* ---- LMTP application: the engine's callbacks ---- */

static gboolean
app_check_recipient (gpointer app, const char *address, const char *const *accepted, GError **error)
{
	Daemon *d = app;
	return md_ingest_check_recipient (d->desk, address, accepted, error);
}

typedef struct {
	MdLmtpTransaction *tx;
	guint n_recipients;
} Pending;

/* Every recipient of P hears ERROR; frees P. */
static void
answer_error (Pending *p, const GError *error)
{
	GError **errors = g_new0 (GError *, p->n_recipients);
	for (guint i = 0; i < p->n_recipients; i++)
		errors[i] = g_error_copy (error);
	md_lmtp_transaction_done (p->tx, errors, NULL);
	g_free (p);
}

/* On the writer thread, after the commit: one answer per recipient. */
static void
on_ingested (MdIngestJob *job, const GError *error, gpointer user_data)
{
	Pending *p = user_data;
	if (error && !md_error_is_temporary (error) && !g_error_matches (error, MD_ERROR, MD_ERROR_EMPTY) &&
	    !g_error_matches (error, MD_ERROR, MD_ERROR_TOO_BIG)) {
		/* Past RCPT, only the message itself may be refused for good;
		 * anything else (a row that vanished, say) is our trouble, and
		 * the MTA keeps the mail while someone looks. */
		g_autoptr (GError) ours = g_error_new (MD_ERROR, MD_ERROR_INTERNAL, "%s", error->message);
		answer_error (p, ours);
		return;
	}
	if (error) {
		answer_error (p, error);
		return;
	}
	g_autofree const char **info = g_new0 (const char *, p->n_recipients + 1);
	const MdIngestResult *r = md_ingest_result (job);
	for (guint i = 0; i < p->n_recipients; i++)
		info[i] = r->duplicate ? "duplicate" : r->key;
	md_lmtp_transaction_done (p->tx, NULL, info);
	g_free (p);
}

static void
app_deliver (gpointer app, MdLmtpTransaction *tx, const char *sender, const char *const *recipients,
             const char *raw_sha256, gint64 size)
{
	Daemon *d = app;
	Pending *p = g_new0 (Pending, 1);
	MdEnvelope env = { sender, recipients };

	p->tx = tx;
	p->n_recipients = g_strv_length ((char **) recipients);
	/* On the engine's worker thread, which may still be here when a
	 * shutdown that timed out stops the writer: counted, so the writer
	 * outlives it, or told to come back later. */
	g_atomic_int_inc (&d->submitting);
	if (g_atomic_int_get (&d->closing)) {
		g_autoptr (GError) closing = g_error_new (MD_ERROR, MD_ERROR_DB_BUSY, "the desk is shutting down");
		answer_error (p, closing);
	} else {
		md_writer_submit (d->writer, md_ingest_job_new (d->desk, raw_sha256, size, &env), on_ingested, p);
	}
	g_atomic_int_add (&d->submitting, -1);
}

static const MdLmtpCallbacks lmtp_callbacks = { app_check_recipient, app_deliver };

static void
wake_sender (gpointer sender)
{
	md_outbox_sender_wake (sender);
}

/* After an ingest commit: its mail goes out, and timers it armed count. */
static void
after_commit (gpointer data)
{
	Daemon *d = data;
	md_outbox_sender_wake (d->sender);
	if (d->scheduler)
		md_scheduler_wake (d->scheduler);
}

/* What crashed writers (a deliver killed by its MTA's time limit, this
 * daemon under kill -9) left in spool/tmp, which nothing else removes. */
static gboolean
clean_tmp (gpointer data)
{
	Daemon *d = data;
	guint removed = md_spool_clean_tmp (d->desk->spool, TMP_MAX_AGE);
	if (removed)
		g_message ("serve: removed %u unfinished file%s from the spool's tmp", removed, removed == 1 ? "" : "s");
	return G_SOURCE_CONTINUE;
}

/* ---- signals ---- */

static gboolean
drain_tick (gpointer data)
{
	Daemon *d = data;
	guint active = md_lmtp_server_open_transactions (d->lmtp);
	if (active == 0 || g_get_monotonic_time () > d->drain_deadline) {
		if (active)
			g_warning ("serve: %u transactions still unanswered at shutdown; their MTAs will retry", active);
		g_main_loop_quit (d->loop);
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static gboolean
on_stop_signal (gpointer data)
{
	Daemon *d = data;
	if (d->drain_deadline)
		return G_SOURCE_CONTINUE;  /* already draining */
	g_message ("serve: stopping; no new connections");
	md_lmtp_server_drain (d->lmtp);
	d->drain_deadline = g_get_monotonic_time () + DRAIN_TIMEOUT_US;
	g_timeout_add (50, drain_tick, d);
	return G_SOURCE_CONTINUE;
}

static gboolean
on_reload_signal (gpointer data)
{
	Daemon *d = data;
	g_autoptr (GError) error = NULL;
	if (md_desk_reload (d->desk, &error))
		g_message ("serve: reloaded rules from %s", d->desk->rules_path);
	else
		g_warning ("serve: reload failed, keeping the old rules:\n%s", error->message);
	return G_SOURCE_CONTINUE;
}

/* WANTED sessions, or as many as the descriptor limit holds, after
 * raising its soft limit to the hard one.  Past the limit accept(2)
 * fails with EMFILE, and the listeners rest (lmtp.c) while the crowd
 * waits unanswered.  Kept within it, the session over the limit gets
 * 421 4.3.2 at once. */
static guint
fit_to_fd_limit (guint wanted)
{
	struct rlimit rl;

	if (getrlimit (RLIMIT_NOFILE, &rl) < 0)
		return wanted;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = { rl.rlim_max, rl.rlim_max };
		if (setrlimit (RLIMIT_NOFILE, &raised) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= FDS_RESERVED + (rlim_t) wanted * FDS_PER_SESSION)
		return wanted;
	guint fit = rl.rlim_cur > FDS_RESERVED + FDS_PER_SESSION
	            ? (guint) ((rl.rlim_cur - FDS_RESERVED) / FDS_PER_SESSION) : 1;
	g_warning ("serve: max_connections %u lowered to %u: the limit on open files is %llu "
	           "(raise it, e.g. LimitNOFILE= in the systemd unit)",
	           wanted, fit, (unsigned long long) rl.rlim_cur);
	return fit;
}

static MdLmtpServer *
start_lmtp (Daemon *d, GError **error)
{
	MdConf *conf = d->desk->conf;
	MdLmtpConfig cfg = {
		.hostname = conf->domain,
		.max_message_size = conf->max_message_size,
		.max_recipients = (guint) conf->max_recipients,
		.idle_timeout_ms = (guint) conf->idle_timeout * 1000,
		.max_connections = fit_to_fd_limit ((guint) conf->max_connections),
		.unix_mode = md_conf_unix_mode (conf),
		.unix_group = conf->unix_group,
		.trace = g_getenv ("MAILDESK_TRACE") != NULL,
	};
	g_autoptr (MdLmtpServer) s = md_lmtp_server_new (&cfg, d->desk->spool, &lmtp_callbacks, d, error);
	if (!s)
		return NULL;
	for (int i = 0; conf->listen[i]; i++)
		if (!md_lmtp_server_listen (s, conf->listen[i], error))
			return NULL;
	const char *const *addrs = md_lmtp_server_addresses (s);
	for (int i = 0; addrs && addrs[i]; i++)
		g_message ("serve: LMTP listening on %s", addrs[i]);
	return g_steal_pointer (&s);
}

/* Starts every part, in an order where each one's consumers exist;
 * FALSE (with the error) leaves the started ones for daemon_stop. */
static gboolean
daemon_start (Daemon *d, GError **error)
{
	d->loop = g_main_loop_new (NULL, FALSE);
	/* Before any connection: the sender, the scheduler and the IMAP
	 * pollers queue for their writes behind the writer's current batch
	 * instead of polling for a lock it is never seen to leave. */
	d->desk->write_turn = md_turn_new ();
	if (!(d->checkpointer = md_checkpointer_start (d->desk, error)) ||
	    !(d->writer = md_writer_start (d->desk, d->checkpointer, error)) ||
	    !(d->sender = md_outbox_sender_start (d->desk, error)))
		return FALSE;
	/* Mail queued by an ingest goes out as soon as its commit is done. */
	md_writer_set_commit_hook (d->writer, after_commit, d);
	if (!(d->lmtp = start_lmtp (d, error)))
		return FALSE;
	/* IMAP pollers after the listeners: the engine sets the umask while it binds. */
	if (!(d->imap = md_imap_start (d->desk, error)) || !(d->scheduler = md_scheduler_start (d->desk, error)))
		return FALSE;
	md_scheduler_set_on_queued (d->scheduler, wake_sender, d->sender);
	return TRUE;
}

/* How the WAL fared, for whoever wonders about its size or the writer's
 * pace. */
static void
log_checkpoints (Daemon *d)
{
	MdCheckpointerStats st;
	if (!d->checkpointer)
		return;
	md_checkpointer_get_stats (d->checkpointer, &st);
	g_message ("serve: checkpoints passes=%" G_GUINT64_FORMAT " tails=%" G_GUINT64_FORMAT
	           " wal_restarts=%" G_GUINT64_FORMAT " max_wal_pages=%u", st.passes, st.tails, st.wal_restarts,
	           st.max_frames);
}

/* Stops whatever runs, producers before consumers; NULL parts are fine. */
static void
daemon_stop (Daemon *d)
{
	md_imap_stop (d->imap);
	/* The writer before the sessions: answers still queued reach them.
	 * Not while a worker hands it a message (bounded: a parse). */
	g_atomic_int_set (&d->closing, 1);
	for (int i = 0; i < 3000 && g_atomic_int_get (&d->submitting) > 0; i++)
		g_usleep (10 * 1000);
	/* and before the scheduler and the sender: each of its commits wakes
	 * them (after_commit), those of what a drain that ran out left
	 * queued too, after the main loop has stopped. */
	md_writer_stop (d->writer);
	log_checkpoints (d);
	md_checkpointer_stop (d->checkpointer);
	if (d->scheduler)
		md_scheduler_stop (d->scheduler);
	if (d->lmtp)
		md_lmtp_server_free (d->lmtp);
	md_outbox_sender_stop (d->sender);
	g_main_loop_unref (d->loop);
}

int
md_cmd_serve (int argc, char **argv)
{
	if (!md_cli_parse ("serve", NULL, "Run the daemon.", NULL, &argc, &argv) ||
	    !md_cli_no_operands ("serve", argc, argv, NULL))
		return MD_EX_USAGE;
	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_CONFIG;
	g_autoptr (GError) error = NULL;
	Daemon d = { .desk = desk };

	clean_tmp (&d);  /* before the listeners: what is in tmp/ now is no session's */
	/* Caught from before the listeners until all has stopped: a stop
	 * asked for as soon as the port answers, or asked again while
	 * stopping, is the graceful one, not the default's sudden death.
	 * Handled only once the main loop runs. */
	guint term = g_unix_signal_add (SIGTERM, on_stop_signal, &d);
	guint intr = g_unix_signal_add (SIGINT, on_stop_signal, &d);
	if (!daemon_start (&d, &error)) {
		md_cli_error (error);
		daemon_stop (&d);
		g_source_remove (term);
		g_source_remove (intr);
		return md_error_is_temporary (error) && !g_error_matches (error, MD_ERROR, MD_ERROR_CONFIG)
		       ? MD_EX_TEMPFAIL : MD_EX_CONFIG;
	}
	guint hup = g_unix_signal_add (SIGHUP, on_reload_signal, &d);
	guint cleaner = g_timeout_add_seconds (TMP_CLEAN_SECONDS, clean_tmp, &d);
	/* Relative paths follow the working directory: say which files the
	 * desk really uses, forms included (a missing default means none). */
	g_message ("serve: desk %s, database %s, rules %s, forms %s", desk->desk_address, desk->db_path,
	           desk->rules_path, desk->forms_path ? desk->forms_path : "none");

	g_main_loop_run (d.loop);

	g_source_remove (hup);
	g_source_remove (cleaner);
	daemon_stop (&d);
	g_source_remove (term);
	g_source_remove (intr);
	g_message ("serve: stopped");
	return MD_EX_OK;
}
