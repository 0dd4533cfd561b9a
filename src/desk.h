/* desk.h - one running desk: its configuration and everything loaded
 * from it (rules, spool, secret, addressing).  Read-only once opened, so
 * it is shared by every thread; each thread opens its own MdStore. */
#ifndef MD_DESK_H
#define MD_DESK_H

#include <glib.h>

#include "calendar.h"
#include "conf.h"
#include "forms.h"
#include "message.h"
#include "rules.h"
#include "spool.h"
#include "store.h"
#include "template.h"
#include "token.h"
#include "turn.h"

typedef struct {
	MdConf *conf;
	MdRules *rules;         /* read under rules_lock: SIGHUP swaps it */
	GRWLock rules_lock;
	MdSpool *spool;
	GBytes *secret;
	MdAddressing addressing;
	MdMessageLimits limits;
	char *db_path;
	char *rules_path;
	char *templates_path;
	char *desk_address;   /* intake@domain */

	MdTemplateSet *templates;
	MdForms *forms;         /* NULL when the desk has none; under rules_lock */
	char *forms_path;       /* NULL when none */
	MdCalendar *calendar;
	/* [sla] and [followup], parsed */
	MdDuration first_response[5];     /* indexed like md_priorities */
	gboolean has_first_response[5];
	MdDuration waiting_reminders[8];
	int n_waiting_reminders;
	MdDuration auto_resolve_after;
	MdDuration reopen_window;
	int ack_limit;                    /* acknowledgements per sender ... */
	gint64 ack_limit_period;          /* ... in this many seconds */
	/* Set by `serve` before it starts a thread, NULL elsewhere: the
	 * write turn its connections share (turn.h). */
	MdTurn *write_turn;
} MdDesk;

/* Everything md_desk_open checks, without opening anything: rules,
 * templates, forms, calendar, durations.  Every problem is reported, each as
 * "file:line: message" (MD_ERROR_CONFIG).  *WARNINGS_R (when WARNINGS_R is
 * not NULL) is set to what loads but is likely a mistake, one
 * "file: warning: message" a line, or NULL when nothing is: warnings
 * alone do not make the check fail. */
gboolean md_desk_check (MdConf *conf, char **warnings_r, GError **error);

/* Takes ownership of CONF.  Loads the rules and the secret and opens the
 * spool; fails with every problem found. Free with md_desk_free.  Run
 * as root on a data_dir that another user owns, the process becomes that
 * user (and its groups) first, so nothing it creates there is root's. */
MdDesk *md_desk_open (MdConf *conf, GError **error);
/* The same for commands that only read the database (ticket list and
 * show, outbox list, sla report): no rules, templates or intake forms
 * (NULL), so a mistake in one, being mended while serve runs the last
 * good set, does not keep an agent from the tickets. */
MdDesk *md_desk_open_reader (MdConf *conf, GError **error);
void md_desk_free (MdDesk *desk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdDesk, md_desk_free)

/* Classifies with the current rules, safe against a concurrent reload. */
void md_desk_classify (MdDesk *desk, const MdRuleInput *input, MdClassification *out);
gboolean md_desk_matches_recipient (MdDesk *desk, const char *address);
/* A reference to the current intake forms, or NULL when the desk has
 * none.  Release with md_forms_unref. */
MdForms *md_desk_forms (MdDesk *desk);
/* Loads the rules, templates and forms again; on any error the old ones
 * stay in force. */
gboolean md_desk_reload (MdDesk *desk, GError **error);

/* A connection to the desk's database; busy waits are bounded.  A
 * writable one shares the desk's write turn, if it has one. */
MdStore *md_desk_open_store (MdDesk *desk, gboolean read_only, GError **error);

/* A configured path, or when it is the default and missing, the copy
 * installed under $(pkgdatadir).  Free with g_free. */
char *md_desk_resolve_path (const char *configured, const char *fallback_default);

#endif
