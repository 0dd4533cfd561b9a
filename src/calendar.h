/* calendar.h - business time (DESIGN 4 [calendar], [sla], [followup]; 9):
 * durations such as `4h`, `24bh` and `3bd`, and a working calendar made
 * of a time zone, weekly hours and holidays, with the arithmetic the SLA
 * and follow-up scheduler needs.
 *
 * Working hours are local wall-clock hours in the calendar's zone, so a
 * 09:00-17:00 day is 09:00-17:00 in summer and in winter.  Each working
 * range of a day becomes a window of real instants [open, close); a range
 * that spans a DST change counts the seconds that really elapse (a Sunday
 * 00:00-24:00 in Europe/Kyiv is 23 hours in March and 25 in October).  A
 * wall-clock time the change skips means the instant of the change; one
 * it repeats means its first occurrence.
 *
 * Business hours: t + N bh is the earliest instant x >= t with N working
 * seconds between t and x.  Time outside hours does not count, so a
 * ticket from the weekend starts its clock at Monday's opening, and work
 * that ends exactly at a closing ends there (Friday 09:00 + 8bh is Friday
 * 17:00, not Monday 09:00).  Thus business_seconds (t, add (t, N bh)) = N.
 *
 * Business days: N bd is counted in working days (days with hours that
 * are not holidays) on the local calendar, and lands on the Nth one:
 *  - t within its day's span of hours (first opening to last closing,
 *    breaks included): the same wall-clock time on the Nth following
 *    working day; a time in a break counts from the break's start.
 *    Wednesday 11:00 + 3bd = Monday 11:00.
 *  - t on a day off, before its day's opening or from its closing on:
 *    the closing of the Nth working day that opens after t.  Friday
 *    17:00 or 20:00, Saturday, and Monday 07:00 + 1bd are all due Monday
 *    17:00, the end of the next business day (Friday 16:59:59 is due
 *    Monday 16:59:59, so the rule is continuous at the closing).
 *  - When the Nth day's hours do not contain that wall-clock time (days
 *    differ: Mon-Thu until 18:00, Fri until 15:00), the result is the
 *    last working instant of that day before it (Thursday 16:30 + 1bd =
 *    Friday 15:00; a time in a break goes back to the break's start), or
 *    the day's first opening if the time is before all its hours.
 *  So N bd is never later than the Nth working day, and an operator can
 *  read it as "by this time on that day, or by its close".
 *
 * Calendar durations (s, m, h, d) are plain elapsed seconds: `3d` is 72
 * real hours even across a DST change.  A zero duration of any unit adds
 * nothing.
 *
 * Times are Unix seconds from 0 (1970) up to MD_CALENDAR_TIME_MAX (3000).
 * Functions returning a time return -1 when an input or the result is
 * outside that range, or when the answer lies more than
 * MD_CALENDAR_HORIZON_DAYS (about 50 years) of days past t (a sparse
 * calendar and a huge duration), so every search terminates.
 */
#ifndef MD_CALENDAR_H
#define MD_CALENDAR_H

#include <glib.h>

#define MD_CALENDAR_TIME_MAX G_GINT64_CONSTANT (32503680000)   /* 3000-01-01T00:00:00Z */
#define MD_CALENDAR_HORIZON_DAYS 18262                          /* 50 years */

/* Limits on what md_duration_parse accepts: 3660 days (ten years) of
 * seconds or business seconds, 3660 days or business days. */
#define MD_DURATION_MAX_DAYS 3660

typedef enum {
	MD_DURATION_SECONDS,           /* s, m, h, d: elapsed seconds */
	MD_DURATION_BUSINESS_SECONDS,  /* bh: working seconds */
	MD_DURATION_BUSINESS_DAYS,     /* bd: working days */
} MdDurationUnit;

typedef struct {
	MdDurationUnit unit;
	gint64 amount;                 /* seconds, or days for BUSINESS_DAYS */
} MdDuration;

/* Parse `30s`, `30m`, `4h`, `3d`, `24bh` or `3bd`: a whole number and a
 * unit (case ignored; spaces around and between allowed).  Fails with
 * MD_ERROR_INVALID on anything else, negatives and values over the limit. */
gboolean md_duration_parse (const char *text, MdDuration *out, GError **error);

/* "4 hours", "30 minutes", "24 business hours", "1 business day".
 * Free with g_free. */
char *md_duration_format (const MdDuration *d);

typedef struct _MdCalendar MdCalendar;

/* A calendar from its three configuration values (DESIGN 4 [calendar]):
 *  zone:     an IANA name ("Europe/Kyiv") or anything
 *            g_time_zone_new_identifier() knows; unknown names fail;
 *  hours:    comma-separated parts, each days then one or more ranges:
 *            "Mon-Thu 09:00-13:00 14:00-18:00, Fri 09:00-15:00, Sat 10:00-12:00".
 *            Days are Mon..Sun or full English names, one day or a range
 *            that may wrap ("Sun-Thu"); times are HH:MM, 24:00 only as an
 *            end; ranges of a day must not overlap (touching ones merge);
 *            a range must not cross midnight (write it as two days);
 *  holidays: comma-separated local dates YYYY-MM-DD, or NULL/empty.
 * Fails with MD_ERROR_INVALID and a message that names the value, the
 * part and what is wrong in it, for the config checker to prefix with
 * file:line.  Free with md_calendar_free. */
MdCalendar *md_calendar_new (const char *zone, const char *hours,
                             const char *holidays, GError **error);
void md_calendar_free (MdCalendar *cal);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdCalendar, md_calendar_free)

/* The calendar's zone; owned by cal. */
GTimeZone *md_calendar_zone (const MdCalendar *cal);

/* t plus d as described above, or -1. */
gint64 md_calendar_add (const MdCalendar *cal, gint64 t, const MdDuration *d);

/* Working seconds in [from, to); 0 if to <= from; -1 if either is out of
 * range.  Walks the days between: a year takes about 2 ms. */
gint64 md_calendar_business_seconds (const MdCalendar *cal, gint64 from, gint64 to);

/* The instant local day DAY (a GDate julian day) shows the wall-clock
 * time SECS after its midnight (0 to 86400): a time the zone skips maps
 * to the change itself, a repeated one to its first occurrence. */
gint64 md_calendar_local_to_utc (const MdCalendar *cal, guint32 day, gint64 secs);

/* Whether t is within working hours (windows are [open, close)). */
gboolean md_calendar_is_working (const MdCalendar *cal, gint64 t);

/* The earliest working instant >= t: t itself during hours, else the next
 * opening; -1 if none within the horizon. */
gint64 md_calendar_next_opening (const MdCalendar *cal, gint64 t);

#endif
