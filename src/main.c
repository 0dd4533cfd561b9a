/* main.c - `maildesk` entry point: global options and the subcommand
 * table, in the style of git and notmuch. */
#include "config.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "md.h"
#include "message.h"

MdCliGlobals md_cli;

typedef struct {
	const char *name;
	int (*run) (int argc, char **argv);
	const char *summary;
} Command;

static const Command commands[] = {
	{ "serve", md_cmd_serve, "run the daemon" },
	{ "deliver", md_cmd_deliver, "ingest one message from standard input" },
	{ "fetch", md_cmd_fetch, "poll the IMAP mailboxes once and exit" },
	{ "ticket", md_cmd_ticket, "list, show, set or reply to tickets" },
	{ "agent", md_cmd_agent, "add or remove agents" },
	{ "org", md_cmd_org, "add organizations and members" },
	{ "classify", md_cmd_classify, "classify a message from standard input; stores nothing" },
	{ "outbox", md_cmd_outbox, "send due mail now, or list outgoing mail" },
	{ "tick", md_cmd_tick, "run due scheduler work once (SLA reminders, follow-ups, auto-resolve)" },
	{ "sla", md_cmd_sla, "first-response figures per priority (sla report)" },
	{ "purge", md_cmd_purge, "delete old resolved tickets, or erase a person (--dry-run first)" },
	{ "check-config", md_cmd_check_config, "validate configuration, rules and templates" },
};

static void
usage (FILE *out)
{
	fprintf (out, "Usage: maildesk [-c FILE] COMMAND [ARGS]\n\nCommands:\n");
	for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
		fprintf (out, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf (out, "\nSee maildesk(8).\n");
}

/* When ARGV[*I] is -c FILE, -cFILE, --config FILE or --config=FILE:
 * sets the configuration path, steps *I over a separate FILE and
 * returns 1; 0 when it is another argument; -1 when FILE is missing. */
static int
config_option (int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (!strcmp (a, "-c") || !strcmp (a, "--config")) {
		if (*i + 1 >= argc)
			return -1;
		md_cli.config_path = argv[++*i];
	} else if (g_str_has_prefix (a, "--config=")) {
		md_cli.config_path = a + strlen ("--config=");
	} else if (!strncmp (a, "-c", 2)) {
		/* -cFILE, as getopt(3) takes it */
		md_cli.config_path = a + 2;
	} else {
		return 0;
	}
	return 1;
}

int
main (int argc, char **argv)
{
	setlocale (LC_ALL, "");
	/* GOption's usage lines start with the program's name; without this
	 * it takes the subcommand's argv[0] ("Usage: list [OPTION…] ticket list"). */
	g_set_prgname ("maildesk");
	/* Everything maildesk creates holds customers' mail or the desk's
	 * secret: owner only, whatever umask it was started with.  The LMTP
	 * socket gets its mode from the engine (lmtp.h: unix_mode). */
	umask (077);
	/* A peer closing its socket is an error to handle, not a reason to die. */
	signal (SIGPIPE, SIG_IGN);
	md_message_init ();

	/* Global options come before the command name. */
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		int config = config_option (argc, argv, &i);
		if (config < 0) {
			fprintf (stderr, "maildesk: %s needs a FILE\n", argv[i]);
			usage (stderr);
			return MD_EX_USAGE;
		} else if (config > 0) {
			continue;
		} else if (!strcmp (argv[i], "-h") || !strcmp (argv[i], "--help")) {
			usage (stdout);
			return MD_EX_OK;
		} else if (!strcmp (argv[i], "--version")) {
			printf ("maildesk %s\n", PACKAGE_VERSION);
			return MD_EX_OK;
		} else {
			fprintf (stderr, "maildesk: unknown option %s\n", argv[i]);
			usage (stderr);
			return MD_EX_USAGE;
		}
	}
	if (i >= argc) {
		usage (stderr);
		return MD_EX_USAGE;
	}
	/* ... and also after it (`maildesk deliver -c FILE`, as pipe lines
	 * are often written), where the command's own parser accepts it
	 * (md_cli_parse): noted now, since some commands open the desk
	 * before they parse their options. */
	for (int j = i + 1; j < argc && strcmp (argv[j], "--") != 0; j++)
		(void) config_option (argc, argv, &j);
	g_autoptr (GError) clock_error = NULL;
	if (!md_now_check (&clock_error)) {
		fprintf (stderr, "maildesk: %s\n", clock_error->message);
		return MD_EX_USAGE;
	}
	for (gsize c = 0; c < G_N_ELEMENTS (commands); c++)
		if (strcmp (argv[i], commands[c].name) == 0)
			return commands[c].run (argc - i, argv + i);
	fprintf (stderr, "maildesk: unknown command \"%s\"\n", argv[i]);
	usage (stderr);
	return MD_EX_USAGE;
}
