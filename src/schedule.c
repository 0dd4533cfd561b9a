/* schedule.c - placeholder until the scheduler lands (issue 6): timers
 * are not armed yet, so no SLA reminder or follow-up is sent. */
#include "config.h"

#include "schedule.h"

gboolean
md_schedule_ticket (MdDesk *desk, MdStore *store, const MdTicket *ticket, GError **error)
{
	return TRUE;
}
