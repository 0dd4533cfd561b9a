/* turn.c - a fair ticket lock: the write turn of turn.h.  Takers are
 * served in the order they asked, so a thread that writes once in a
 * while is never passed over by one that writes back to back. */
#include "config.h"

#include "turn.h"

struct _MdTurn {
	GMutex lock;
	GCond served;
	guint64 next;     /* the ticket the next taker gets */
	guint64 serving;  /* the ticket that holds the turn */
};

MdTurn *
md_turn_new (void)
{
	MdTurn *turn = g_new0 (MdTurn, 1);
	g_mutex_init (&turn->lock);
	g_cond_init (&turn->served);
	return turn;
}

void
md_turn_free (MdTurn *turn)
{
	if (!turn)
		return;
	g_mutex_clear (&turn->lock);
	g_cond_clear (&turn->served);
	g_free (turn);
}

void
md_turn_take (MdTurn *turn)
{
	g_mutex_lock (&turn->lock);
	guint64 ticket = turn->next++;
	while (turn->serving != ticket)
		g_cond_wait (&turn->served, &turn->lock);
	g_mutex_unlock (&turn->lock);
}

void
md_turn_give (MdTurn *turn)
{
	g_mutex_lock (&turn->lock);
	turn->serving++;
	/* every waiter checks its ticket; only the next one goes on */
	g_cond_broadcast (&turn->served);
	g_mutex_unlock (&turn->lock);
}

gboolean
md_turn_busy (MdTurn *turn)
{
	g_mutex_lock (&turn->lock);
	gboolean busy = turn->next != turn->serving;
	g_mutex_unlock (&turn->lock);
	return busy;
}
