/* turn.h - the write turn that `serve`'s own database connections share.
 *
 * SQLite gives its write lock to whichever connection asks at the moment
 * it is free; a connection that finds it taken polls (the busy handler
 * sleeps 1, 2, 5 ... 100 ms between tries).  The writer thread of `serve`
 * commits batch after batch under load, so the lock is almost never free
 * when the outbox sender or the scheduler looks, and they waited for the
 * end of a burst.  Within one process the connections can instead queue:
 * each write transaction of a connection that shares a turn first takes
 * a ticket and waits to be served in order (a fair ticket lock), so a
 * waiting thread is handed the turn as soon as the current transaction
 * ends, and the writer's next batch waits for that one short write and
 * then takes whatever arrived meanwhile.  Other processes (the CLI) still
 * meet the SQLite lock and its busy timeout. */
#ifndef MD_TURN_H
#define MD_TURN_H

#include <glib.h>

typedef struct _MdTurn MdTurn;

MdTurn *md_turn_new (void);
void md_turn_free (MdTurn *turn);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdTurn, md_turn_free)

/* Waits for every earlier taker to give the turn back, then holds it. */
void md_turn_take (MdTurn *turn);
void md_turn_give (MdTurn *turn);
/* Whether some thread holds the turn or waits for it right now. */
gboolean md_turn_busy (MdTurn *turn);

#endif
