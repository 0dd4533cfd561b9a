/* cli.h - the subcommands of the `maildesk` binary (DESIGN 3).  Each
 * md_cmd_* takes the arguments after its name and returns an exit code;
 * main.c holds the table and the global options. */
#ifndef MD_CLI_H
#define MD_CLI_H

#include "conf.h"
#include "desk.h"

typedef struct {
	const char *config_path;  /* -c, or NULL for the default search */
} MdCliGlobals;

extern MdCliGlobals md_cli;

/* Loads the configuration named by -c (or found by default), printing
 * every problem to stderr.  NULL on failure. */
MdConf *md_cli_load_conf (void);
/* Configuration, rules, spool and secret; NULL (after printing) on failure. */
MdDesk *md_cli_open_desk (void);
/* The same for a command that only reads the database (md_desk_open_reader). */
MdDesk *md_cli_open_reader (void);
/* Parses subcommand options; on error prints usage and returns FALSE. */
gboolean md_cli_parse (const char *name, const char *params, const char *summary, GOptionEntry *entries,
                       int *argc, char ***argv);
/* For a command that takes no operands: FALSE, after saying which one
 * was left over, when ARGC counts any beyond the command's name (an
 * argument silently ignored is a mistake nobody sees, e.g. a recipient
 * given to deliver without --recipient). */
gboolean md_cli_no_operands (const char *name, int argc, char **argv, const char *hint);
/* A command's usage, for a command given no verb or an unknown one:
 * on stdout with exit 0 when ARGV[1] asks for it (-h, --help), else on
 * stderr with exit 64. */
int md_cli_usage (int argc, char **argv, const char *usage);
/* Prints an error once, as "maildesk: message". */
void md_cli_error (const GError *error);
/* An age given to OPTION: days as a bare number ("30"), or elapsed time
 * as a configuration duration ("30d", "12h"); business units are refused
 * (a window that moved with holidays would not compare from one run to
 * the next).  Prints the problem and returns FALSE on anything else. */
gboolean md_cli_parse_age (const char *option, const char *text, gint64 *seconds_r);

/* JSON output (json-glib): a string member or null; a time member as
 * ISO 8601 UTC, null when 0; the document printed pretty on stdout. */
typedef struct _JsonBuilder JsonBuilder;
void md_json_add_string (JsonBuilder *b, const char *name, const char *value);
void md_json_add_time (JsonBuilder *b, const char *name, gint64 t);
void md_json_print (JsonBuilder *b);
/* A JSON array printed an element at a time, as md_json_print prints a
 * whole one, so that memory holds one element, not the list: element
 * INDEX (from 0) is B's root; then the end, after N elements. */
void md_json_print_element (JsonBuilder *b, guint index);
void md_json_print_array_end (guint n);

int md_cmd_deliver (int argc, char **argv);
int md_cmd_ticket (int argc, char **argv);
int md_cmd_agent (int argc, char **argv);
int md_cmd_org (int argc, char **argv);
int md_cmd_classify (int argc, char **argv);
int md_cmd_check_config (int argc, char **argv);
int md_cmd_serve (int argc, char **argv);
int md_cmd_outbox (int argc, char **argv);
int md_cmd_fetch (int argc, char **argv);
int md_cmd_tick (int argc, char **argv);
int md_cmd_sla (int argc, char **argv);
int md_cmd_purge (int argc, char **argv);

#endif
