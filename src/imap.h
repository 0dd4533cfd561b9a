/* imap.h - IMAP ingest (DESIGN 2, 4, 5): each [imap.NAME] section is one
 * mailbox polled with libetpan.  New mail is found by UID (UIDVALIDITY
 * and the last UID handled are kept in the store), fetched with
 * BODY.PEEK[], spooled, ingested, and only after the commit moved to
 * processed_folder (or flagged \Seen); a message ingest refuses goes to
 * failed_folder.  A crash between commit and move re-fetches the message
 * next time and dedupe makes it a no-op; without MOVE, a copy a crash
 * left in processed_folder is looked for first, so none is made twice.
 *
 * libetpan blocks, so every mailbox has a thread of its own, never the
 * main loop's; each opens its own MdStore. */
#ifndef MD_IMAP_H
#define MD_IMAP_H

#include <glib.h>

#include "desk.h"

typedef struct _MdImapPoller MdImapPoller;

/* Starts one thread per configured mailbox (none configured: a poller
 * with no threads).  Each thread reconnects with capped exponential
 * back-off on any trouble, so one bad mailbox never stops the others.
 * Fails only on configuration errors (bad url, poll_interval), with
 * MD_ERROR_CONFIG.  DESK must outlive the poller.  Stop and free with
 * md_imap_stop. */
MdImapPoller *md_imap_start (MdDesk *desk, GError **error);

/* Tells every thread to stop, interrupts their network waits and joins
 * them.  Threads stop within about a second unless one is inside a
 * connect(), which its network timeout bounds.  NULL is fine. */
void md_imap_stop (MdImapPoller *poller);

/* check-config: what serve and fetch would refuse in one [imap.NAME]
 * beyond the loader's checks (a bad poll_interval or keepalive);
 * each problem goes to REPORT with its key. */
void md_imap_conf_check (const MdImapConf *conf, MdConfProblemFunc report, gpointer data);

/* `maildesk fetch [NAME]`: for each mailbox (or the one named), connect,
 * ingest everything new, and log out.  Every mailbox is tried; on
 * failure the error names each one that failed, one per line, and its
 * code is MD_ERROR_CONFIG when any failure needs a human (bad
 * configuration, unreadable password file, login refused, certificate
 * not trusted, unknown mailbox), else that of the first failure. */
gboolean md_imap_fetch_once (MdDesk *desk, const char *name, GError **error);

#endif
