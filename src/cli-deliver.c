/* cli-deliver.c - `maildesk deliver`: one message from standard input,
 * for MTAs that pipe (Postfix pipe(8), procmail, fdm).  Exit codes are
 * sysexits(3), as the MTA expects (DESIGN 3). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "ingest.h"
#include "md.h"

/* Spools standard input; over max_size or empty is refused. */
static gboolean
spool_stdin (MdDesk *desk, char **sha_r, gint64 *size_r, GError **error)
{
	g_autoptr (MdSpoolWriter) w = md_spool_writer_new (desk->spool, MD_SPOOL_RAW,
	                                                   desk->conf->max_message_size, error);
	char buf[65536];

	if (!w)
		return FALSE;
	for (;;) {
		ssize_t n = read (STDIN_FILENO, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			md_set_errno_error (error, errno, "cannot read", "standard input");
			return FALSE;
		}
		if (!md_spool_writer_write (w, buf, (gsize) n, error))
			return FALSE;
	}
	*size_r = md_spool_writer_size (w);
	if (*size_r == 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_EMPTY, "empty message refused");
		return FALSE;
	}
	return md_spool_writer_commit (g_steal_pointer (&w), sha_r, error);
}

int
md_cmd_deliver (int argc, char **argv)
{
	g_auto (GStrv) recipients = NULL;
	g_autofree char *sender = NULL;
	GOptionEntry entries[] = {
		{ "recipient", 'r', 0, G_OPTION_ARG_STRING_ARRAY, &recipients, "envelope recipient (repeatable)", "ADDR" },
		{ "sender", 'f', 0, G_OPTION_ARG_STRING, &sender, "envelope sender", "ADDR" },
		{ NULL },
	};
	if (!md_cli_parse ("deliver", "[ADDR...]", "Ingest one message from standard input.", entries, &argc, &argv))
		return MD_EX_USAGE;
	/* Operands are recipients too, as sendmail(8) and dovecot-lda take
	 * them: a pipe line written `maildesk deliver ${recipient}` files
	 * the mail where its address says, not at the intake. */
	g_autoptr (GPtrArray) rcpts = g_ptr_array_new ();
	for (int i = 0; recipients && recipients[i]; i++)
		g_ptr_array_add (rcpts, recipients[i]);
	for (int i = 1; i < argc; i++)
		g_ptr_array_add (rcpts, argv[i]);
	g_ptr_array_add (rcpts, NULL);
	const char *const *all = (const char *const *) rcpts->pdata;

	g_autoptr (MdDesk) desk = md_cli_open_desk ();
	if (!desk)
		return MD_EX_TEMPFAIL;  /* the MTA keeps the mail while the desk is misconfigured */

	g_autoptr (GError) error = NULL;
	for (int i = 0; all[i]; i++) {
		if (!md_ingest_check_recipient (desk, all[i], NULL, &error)) {
			md_cli_error (error);
			return md_error_to_exit_code (error);
		}
	}
	/* Addressed to several tickets: one ingest per ticket, as LMTP gets
	 * it (452 4.5.3 splits it over transactions), but all committed at
	 * once, since here there is no MTA to send the rest later. */
	g_autoptr (GPtrArray) groups = md_ingest_group_recipients (desk, all);
	guint n = MAX (groups->len, 1);
	g_autofree MdEnvelope *envs = g_new0 (MdEnvelope, n);
	for (guint i = 0; i < n; i++) {
		envs[i].sender = sender;
		envs[i].recipients = i < groups->len ? (const char *const *) ((GPtrArray *) groups->pdata[i])->pdata : NULL;
	}
	g_autofree char *sha = NULL;
	gint64 size = 0;
	g_autofree MdIngestResult *results = g_new0 (MdIngestResult, n);
	g_autoptr (MdStore) store = NULL;

	if (!spool_stdin (desk, &sha, &size, &error) || !(store = md_desk_open_store (desk, FALSE, &error)) ||
	    !md_ingest_each (desk, store, sha, size, envs, n, results, &error)) {
		md_cli_error (error);
		return md_error_to_exit_code (error);
	}
	for (guint i = 0; i < n; i++) {
		if (results[i].duplicate)
			printf ("duplicate\n");
		else if (results[i].key)
			printf ("%s\n", results[i].key);
		g_free (results[i].key);
	}
	return MD_EX_OK;
}
