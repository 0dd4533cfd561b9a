/* calendar.c - business time: durations, working calendars and the
 * arithmetic on them.  calendar.h defines what the answers mean; here
 * the days are walked as local calendar days (GDate julian numbers) and
 * each working range is turned into real instants through the zone's
 * rules, so DST changes and holidays come out exact. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "md.h"
#include "calendar.h"

#define EPOCH_JULIAN 719163        /* GDate julian day of 1970-01-01 */
#define SEC_PER_DAY 86400
#define MAX_RANGES_PER_DAY 16
#define MAX_HOURS_LEN 4096
#define MAX_HOLIDAYS 1000
#define MAX_HOLIDAYS_LEN (MAX_HOLIDAYS * 16)
#define MAX_ZONE_LEN 256
#define MAX_DURATION_LEN 64
#define QUOTE_MAX 64               /* bytes of user input echoed in errors */

typedef struct {
	gint32 open, close;        /* seconds after local midnight; close <= 86400 */
} Range;

typedef struct {
	guint n;
	Range r[MAX_RANGES_PER_DAY];
} Hours;

/* What md_calendar_local_to_utc knows of recent days (steady_offset). */
#define STEADY_DAYS 64
#define STEADY_MARGIN (2 * SEC_PER_DAY)

typedef struct {
	guint32 day;               /* 0: none */
	gboolean steady;
	gint32 offset;
} DayOffset;

typedef struct {
	GMutex lock;               /* threads share a desk's calendar */
	DayOffset days[STEADY_DAYS];
} DayCache;

struct _MdCalendar {
	GTimeZone *zone;
	gint last_interval;        /* of the zone */
	Hours week[7];             /* 0 = Monday, as ISO 8601 */
	GArray *holidays;          /* sorted guint32 julian days */
	DayCache *cache;
};

/* One working range of one day as real instants [open, close). */
typedef struct {
	guint32 day;
	guint range;
	gint64 open, close;
} Window;

static const char *const day_names[7] = {
	"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
};

/* User input for an error message: valid UTF-8 and short. */
static char *
quoted (const char *s, gssize len)
{
	gsize n = len < 0 ? strlen (s) : (gsize) len;
	g_autofree char *valid = g_utf8_make_valid (s, MIN (n, QUOTE_MAX));
	return g_strdup_printf ("\"%s%s\"", valid, n > QUOTE_MAX ? "…" : "");
}

static const char *
skip_spaces (const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* ---- durations ---- */

static const struct {
	const char *name;
	gint64 factor;
	MdDurationUnit unit;
} duration_units[] = {
	{ "s", 1, MD_DURATION_SECONDS },
	{ "m", 60, MD_DURATION_SECONDS },
	{ "h", 3600, MD_DURATION_SECONDS },
	{ "d", SEC_PER_DAY, MD_DURATION_SECONDS },
	{ "bh", 3600, MD_DURATION_BUSINESS_SECONDS },
	{ "bd", 1, MD_DURATION_BUSINESS_DAYS },
};

static gboolean
duration_fail (GError **error, const char *text, const char *why)
{
	g_autofree char *q = quoted (text, -1);
	g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "duration %s: %s", q, why);
	return FALSE;
}

gboolean
md_duration_parse (const char *text, MdDuration *out, GError **error)
{
	if (text == NULL)
		text = "";
	if (strlen (text) > MAX_DURATION_LEN)
		return duration_fail (error, text, "too long");
	const char *p = skip_spaces (text);
	if (*p == '-')
		return duration_fail (error, text, "must not be negative");
	if (!g_ascii_isdigit (*p))
		return duration_fail (error, text,
		                      "expected a whole number and a unit: s, m, h, d, bh or bd (e.g. 4h, 24bh, 3bd)");
	gint64 n = 0;
	for (; g_ascii_isdigit (*p); p++) {
		n = n * 10 + (*p - '0');
		if (n > G_GINT64_CONSTANT (1000000000000))
			return duration_fail (error, text, "too large");
	}
	if (*p == '.' || *p == ',')
		return duration_fail (error, text, "use a whole number (e.g. 90m rather than 1.5h)");
	p = skip_spaces (p);
	const char *unit = p;
	while (g_ascii_isalpha (*p))
		p++;
	gsize unit_len = p - unit;
	if (*skip_spaces (p) != '\0')
		return duration_fail (error, text, "unexpected text after the unit");
	if (unit_len == 0)
		return duration_fail (error, text, "a unit is required: s, m, h, d, bh or bd");
	for (guint i = 0; i < G_N_ELEMENTS (duration_units); i++) {
		if (strlen (duration_units[i].name) != unit_len ||
		    g_ascii_strncasecmp (unit, duration_units[i].name, unit_len) != 0)
			continue;
		gint64 limit = duration_units[i].unit == MD_DURATION_BUSINESS_DAYS
		               ? MD_DURATION_MAX_DAYS
		               : (gint64) MD_DURATION_MAX_DAYS * SEC_PER_DAY / duration_units[i].factor;
		if (n > limit) {
			g_autofree char *why = g_strdup_printf ("too large (at most %d days)", MD_DURATION_MAX_DAYS);
			return duration_fail (error, text, why);
		}
		out->unit = duration_units[i].unit;
		out->amount = n * duration_units[i].factor;
		return TRUE;
	}
	return duration_fail (error, text, "unknown unit; use s, m, h, d, bh or bd");
}

char *
md_duration_format (const MdDuration *d)
{
	static const struct {
		gint64 seconds;
		const char *one, *many;
	} units[] = {
		{ SEC_PER_DAY, "day", "days" },
		{ 3600, "hour", "hours" },
		{ 60, "minute", "minutes" },
		{ 1, "second", "seconds" },
	};
	if (d->unit == MD_DURATION_BUSINESS_DAYS)
		return g_strdup_printf ("%" G_GINT64_FORMAT " business %s", d->amount,
		                        d->amount == 1 ? "day" : "days");
	gboolean business = d->unit == MD_DURATION_BUSINESS_SECONDS;
	/* business hours never become days: 24bh is not one working day */
	for (guint i = business ? 1 : 0; i < G_N_ELEMENTS (units); i++) {
		if (d->amount % units[i].seconds != 0 || (d->amount == 0 && units[i].seconds != 1))
			continue;
		gint64 n = d->amount / units[i].seconds;
		return g_strdup_printf ("%" G_GINT64_FORMAT " %s%s", n, business ? "business " : "",
		                        n == 1 ? units[i].one : units[i].many);
	}
	g_assert_not_reached ();
}

/* ---- weekly hours ---- */

typedef struct {
	guint index;               /* which comma-separated part, from 1 */
	const char *text;          /* that part */
	GError **error;
} Part;

static gboolean G_GNUC_PRINTF (2, 3)
part_fail (const Part *part, const char *fmt, ...)
{
	va_list ap;
	va_start (ap, fmt);
	g_autofree char *why = g_strdup_vprintf (fmt, ap);
	va_end (ap);
	g_autofree char *q = quoted (part->text, -1);
	g_set_error (part->error, MD_ERROR, MD_ERROR_INVALID,
	             "working hours, part %u %s: %s", part->index, q, why);
	return FALSE;
}

/* '-' or an en dash, as people paste "Mon–Fri 09:00–17:00". */
static const char *
skip_dash (const char *p)
{
	p = skip_spaces (p);
	if (*p == '-')
		return skip_spaces (p + 1);
	if (strncmp (p, "\xe2\x80\x93", 3) == 0)
		return skip_spaces (p + 3);
	return NULL;
}

static gboolean
parse_day (const Part *part, const char **pp, guint *day)
{
	const char *start = *pp, *p = start;
	while (g_ascii_isalpha (*p))
		p++;
	gsize len = p - start;
	for (guint i = 0; len >= 3 && i < 7; i++) {
		if ((len == 3 || len == strlen (day_names[i])) &&
		    g_ascii_strncasecmp (start, day_names[i], len) == 0) {
			*day = i;
			*pp = p;
			return TRUE;
		}
	}
	g_autofree char *q = quoted (start, MAX (len, 1));
	return part_fail (part, "%s is not a day (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)", q);
}

/* HH:MM, 00:00 to 23:59, or 24:00 when it ends a range. */
static gboolean
parse_time (const Part *part, const char **pp, gboolean is_end, gint32 *secs)
{
	const char *p = *pp;
	int h = 0, m = 0, hd = 0;
	for (; g_ascii_isdigit (*p) && hd < 3; p++, hd++)
		h = h * 10 + (*p - '0');
	gboolean ok = hd >= 1 && hd <= 2 && *p == ':' &&
	              g_ascii_isdigit (p[1]) && g_ascii_isdigit (p[2]) && !g_ascii_isdigit (p[3]);
	if (ok) {
		m = (p[1] - '0') * 10 + (p[2] - '0');
		p += 3;
		ok = m < 60 && (h < 24 || (h == 24 && m == 0));
	}
	if (!ok) {
		const char *end = *pp;
		while (*end && *end != ' ' && *end != '\t' && *end != '-')
			end++;
		g_autofree char *q = quoted (*pp, MAX (end - *pp, 1));
		return part_fail (part, "%s is not a time (expected HH:MM from 00:00 to 24:00)", q);
	}
	if (h == 24 && !is_end)
		return part_fail (part, "24:00 can only end a range");
	*secs = h * 3600 + m * 60;
	*pp = p;
	return TRUE;
}

static char *
format_range (const Range *r)
{
	return g_strdup_printf ("%02d:%02d-%02d:%02d", r->open / 3600, r->open / 60 % 60,
	                        r->close / 3600, r->close / 60 % 60);
}

/* "Mon-Fri 09:00-13:00 14:00-18:00" into week. */
static gboolean
parse_hours_part (const Part *part, Hours week[7])
{
	const char *p = skip_spaces (part->text);
	if (*p == '\0')
		return part_fail (part, "empty; expected days and hours such as Mon-Fri 09:00-17:00");
	guint first, last;
	if (!parse_day (part, &p, &first))
		return FALSE;
	last = first;
	const char *after_dash = skip_dash (p);
	if (after_dash && g_ascii_isalpha (*after_dash)) {
		p = after_dash;
		if (!parse_day (part, &p, &last))
			return FALSE;
	}
	if (*p != ' ' && *p != '\t')
		return part_fail (part, "expected a space and hours after the days, as in Mon-Fri 09:00-17:00");
	p = skip_spaces (p);
	guint n_ranges = 0;
	while (*p) {
		Range r;
		if (!parse_time (part, &p, FALSE, &r.open))
			return FALSE;
		if (!(p = skip_dash (p)))
			return part_fail (part, "expected '-' between the opening and closing time");
		if (!parse_time (part, &p, TRUE, &r.close))
			return FALSE;
		if (r.close <= r.open) {
			g_autofree char *s = format_range (&r);
			return part_fail (part, "%s closes before it opens; "
			                  "split hours past midnight over two days", s);
		}
		for (guint d = first;; d = (d + 1) % 7) {
			if (week[d].n == MAX_RANGES_PER_DAY)
				return part_fail (part, "more than %d ranges on one day", MAX_RANGES_PER_DAY);
			week[d].r[week[d].n++] = r;
			if (d == last)
				break;
		}
		n_ranges++;
		const char *next = skip_spaces (p);
		if (*next && next == p)
			return part_fail (part, "expected a space between ranges");
		p = next;
	}
	if (n_ranges == 0)
		return part_fail (part, "no hours after the days, as in Mon-Fri 09:00-17:00");
	return TRUE;
}

static int
range_cmp (const void *a, const void *b)
{
	const Range *x = a, *y = b;
	return (x->open > y->open) - (x->open < y->open);
}

/* Sort each day's ranges, merge touching ones, refuse overlaps. */
static gboolean
normalize_hours (Hours *hours, guint weekday, GError **error)
{
	qsort (hours->r, hours->n, sizeof hours->r[0], range_cmp);
	guint out = 0;
	for (guint i = 0; i < hours->n; i++) {
		Range *prev = out ? &hours->r[out - 1] : NULL;
		if (prev && hours->r[i].open < prev->close) {
			g_autofree char *a = format_range (prev);
			g_autofree char *b = format_range (&hours->r[i]);
			g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
			             "working hours: on %c%.2s, %s overlaps %s",
			             g_ascii_toupper (day_names[weekday][0]), day_names[weekday] + 1, b, a);
			return FALSE;
		}
		if (prev && hours->r[i].open == prev->close)
			prev->close = hours->r[i].close;
		else
			hours->r[out++] = hours->r[i];
	}
	hours->n = out;
	return TRUE;
}

static gboolean
parse_hours (const char *text, Hours week[7], GError **error)
{
	if (text == NULL || *skip_spaces (text) == '\0') {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
		             "working hours: none given; expected e.g. Mon-Fri 09:00-17:00");
		return FALSE;
	}
	if (strlen (text) > MAX_HOURS_LEN) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
		             "working hours: longer than %d bytes", MAX_HOURS_LEN);
		return FALSE;
	}
	g_auto (GStrv) parts = g_strsplit (text, ",", -1);
	for (guint i = 0; parts[i]; i++) {
		Part part = { i + 1, parts[i], error };
		g_strstrip (parts[i]);
		if (!parse_hours_part (&part, week))
			return FALSE;
	}
	for (guint d = 0; d < 7; d++)
		if (!normalize_hours (&week[d], d, error))
			return FALSE;
	return TRUE;
}

/* ---- holidays ---- */

static int
julian_cmp (const void *a, const void *b)
{
	guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
	return (x > y) - (x < y);
}

static gboolean
parse_holiday (const char *item, guint32 *julian)
{
	static const char shape[] = "dddd-dd-dd";
	if (strlen (item) != sizeof shape - 1)
		return FALSE;
	for (guint i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !g_ascii_isdigit (item[i]) : item[i] != shape[i])
			return FALSE;
	int y = atoi (item), m = atoi (item + 5), d = atoi (item + 8);
	if (y < 1970 || y > 2999 || !g_date_valid_dmy (d, m, y))
		return FALSE;
	GDate date;
	g_date_clear (&date, 1);
	g_date_set_dmy (&date, d, m, y);
	*julian = g_date_get_julian (&date);
	return TRUE;
}

static GArray *
parse_holidays (const char *text, GError **error)
{
	g_autoptr (GArray) days = g_array_new (FALSE, FALSE, sizeof (guint32));
	if (text == NULL || *skip_spaces (text) == '\0')
		return g_steal_pointer (&days);
	if (strlen (text) > MAX_HOLIDAYS_LEN) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
		             "holidays: longer than %d bytes", MAX_HOLIDAYS_LEN);
		return NULL;
	}
	g_auto (GStrv) items = g_strsplit (text, ",", -1);
	for (guint i = 0; items[i]; i++) {
		g_strstrip (items[i]);
		guint32 julian;
		if (!parse_holiday (items[i], &julian)) {
			g_autofree char *q = quoted (items[i], -1);
			g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
			             "holidays, item %u %s: %s", i + 1, q,
			             items[i][0] ? "not a date (expected YYYY-MM-DD, years 1970 to 2999)"
			                         : "empty (a stray comma?)");
			return NULL;
		}
		if (days->len == MAX_HOLIDAYS) {
			g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
			             "holidays: more than %d dates", MAX_HOLIDAYS);
			return NULL;
		}
		g_array_append_val (days, julian);
	}
	g_array_sort (days, julian_cmp);
	return g_steal_pointer (&days);
}

/* ---- the calendar ---- */

MdCalendar *
md_calendar_new (const char *zone, const char *hours, const char *holidays, GError **error)
{
	if (zone == NULL || *zone == '\0' || strlen (zone) > MAX_ZONE_LEN) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
		             "time zone: expected a name such as Europe/Kyiv");
		return NULL;
	}
	g_autoptr (MdCalendar) cal = g_new0 (MdCalendar, 1);
	cal->zone = g_time_zone_new_identifier (zone);
	if (cal->zone == NULL) {
		g_autofree char *q = quoted (zone, -1);
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID,
		             "time zone %s: unknown (expected an IANA name such as Europe/Kyiv)", q);
		return NULL;
	}
	cal->last_interval = g_time_zone_find_interval (cal->zone, G_TIME_TYPE_UNIVERSAL, G_MAXINT64);
	cal->cache = g_new0 (DayCache, 1);
	g_mutex_init (&cal->cache->lock);
	if (!parse_hours (hours, cal->week, error))
		return NULL;
	cal->holidays = parse_holidays (holidays, error);
	if (cal->holidays == NULL)
		return NULL;
	return g_steal_pointer (&cal);
}

void
md_calendar_free (MdCalendar *cal)
{
	if (cal == NULL)
		return;
	g_clear_pointer (&cal->zone, g_time_zone_unref);
	g_clear_pointer (&cal->holidays, g_array_unref);
	if (cal->cache) {
		g_mutex_clear (&cal->cache->lock);
		g_free (cal->cache);
	}
	g_free (cal);
}

GTimeZone *
md_calendar_zone (const MdCalendar *cal)
{
	return cal->zone;
}

static gboolean
in_range (gint64 t)
{
	return t >= 0 && t <= MD_CALENDAR_TIME_MAX;
}

/* The hours of a local day, or NULL on a day off. */
static const Hours *
hours_of (const MdCalendar *cal, guint32 day)
{
	const Hours *h = &cal->week[(day - 1) % 7];   /* julian day 1 was a Monday */
	if (h->n == 0)
		return NULL;
	/* bsearch on an empty array would get a NULL base: undefined */
	if (cal->holidays->len > 0 && bsearch (&day, cal->holidays->data, cal->holidays->len, sizeof day, julian_cmp))
		return NULL;
	return h;
}

/* The local day of t and its wall-clock seconds after local midnight. */
static guint32
local_day (const MdCalendar *cal, gint64 t, gint64 *secs)
{
	g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (t);
	g_autoptr (GDateTime) local = g_date_time_to_timezone (utc, cal->zone);
	gint64 wall = t + g_date_time_get_utc_offset (local) / G_USEC_PER_SEC;
	gint64 days = wall / SEC_PER_DAY - (wall % SEC_PER_DAY < 0);
	if (secs)
		*secs = wall - days * SEC_PER_DAY;
	return (guint32) (days + EPOCH_JULIAN);
}

/* Whether DAY is far from the zone's transitions, with its offset: when
 * one interval of the zone holds from STEADY_MARGIN before the day's
 * wall-clock midnight (taken as UTC) to as long after its end, and it
 * and its neighbours are offset by less than the margin, then every
 * wall-clock time of the day, 00:00 to 24:00, lies within the interval's
 * local bounds and outside its neighbours', so g_time_zone_adjust_time
 * answers that interval for either type and moves no time: the general
 * case of md_calendar_local_to_utc comes to wall - offset. */
static gboolean
find_steady_offset (const MdCalendar *cal, guint32 day, gint32 *offset_r)
{
	gint64 midnight = ((gint64) day - EPOCH_JULIAN) * SEC_PER_DAY;
	gint i = g_time_zone_find_interval (cal->zone, G_TIME_TYPE_UNIVERSAL, midnight - STEADY_MARGIN);
	if (i != g_time_zone_find_interval (cal->zone, G_TIME_TYPE_UNIVERSAL, midnight + SEC_PER_DAY + STEADY_MARGIN))
		return FALSE;
	for (gint j = MAX (i - 1, 0); j <= MIN (i + 1, cal->last_interval); j++) {
		gint32 offset = g_time_zone_get_offset (cal->zone, j);
		if (offset <= -STEADY_MARGIN || offset >= STEADY_MARGIN)
			return FALSE;
	}
	*offset_r = g_time_zone_get_offset (cal->zone, i);
	return TRUE;
}

/* find_steady_offset, remembered for the calendar's recent days: GLib
 * searches a zone's transitions one by one (Europe/Kyiv has ~180), and
 * the deadline and reminders of every new ticket walk the same few days. */
static gboolean
steady_offset (const MdCalendar *cal, guint32 day, gint32 *offset_r)
{
	DayOffset *slot = &cal->cache->days[day % STEADY_DAYS];
	g_mutex_lock (&cal->cache->lock);
	DayOffset known = *slot;
	g_mutex_unlock (&cal->cache->lock);
	if (known.day != day) {
		known.day = day;
		known.steady = find_steady_offset (cal, day, &known.offset);
		g_mutex_lock (&cal->cache->lock);
		*slot = known;
		g_mutex_unlock (&cal->cache->lock);
	}
	*offset_r = known.offset;
	return known.steady;
}

/* The instant a local day shows a wall-clock time (0 to 24:00): a time
 * the zone skips maps to the change itself, a repeated one to its first
 * occurrence. */
gint64
md_calendar_local_to_utc (const MdCalendar *cal, guint32 day, gint64 secs)
{
	gint64 wall = ((gint64) day - EPOCH_JULIAN) * SEC_PER_DAY + secs;
	gint32 offset;
	if (secs >= 0 && secs <= SEC_PER_DAY && steady_offset (cal, day, &offset))
		return wall - offset;
	gint64 as_dst = wall, as_std = wall;
	gint i_dst = g_time_zone_adjust_time (cal->zone, G_TIME_TYPE_DAYLIGHT, &as_dst);
	gint i_std = g_time_zone_adjust_time (cal->zone, G_TIME_TYPE_STANDARD, &as_std);
	return MIN (as_dst - g_time_zone_get_offset (cal->zone, i_dst),
	            as_std - g_time_zone_get_offset (cal->zone, i_std));
}

/* The first non-empty window from (day, range) on, up to last_day, that
 * closes after `after`. */
static gboolean
next_window (const MdCalendar *cal, guint32 day, guint range, gint64 after,
             guint32 last_day, Window *w)
{
	for (; day <= last_day; day++, range = 0) {
		const Hours *h = hours_of (cal, day);
		for (; h && range < h->n; range++) {
			w->day = day;
			w->range = range;
			w->open = md_calendar_local_to_utc (cal, day, h->r[range].open);
			w->close = md_calendar_local_to_utc (cal, day, h->r[range].close);
			if (w->close > w->open && w->close > after)
				return TRUE;
		}
	}
	return FALSE;
}

/* The window containing t, if t is within hours. */
static gboolean
window_at (const MdCalendar *cal, gint64 t, Window *w)
{
	guint32 today = local_day (cal, t, NULL);
	return next_window (cal, today - 1, 0, t, today + 1, w) && w->open <= t;
}

gboolean
md_calendar_is_working (const MdCalendar *cal, gint64 t)
{
	Window w;
	return in_range (t) && window_at (cal, t, &w);
}

gint64
md_calendar_next_opening (const MdCalendar *cal, gint64 t)
{
	if (!in_range (t))
		return -1;
	guint32 today = local_day (cal, t, NULL);
	Window w;
	if (!next_window (cal, today - 1, 0, t, today + MD_CALENDAR_HORIZON_DAYS, &w))
		return -1;
	gint64 opening = MAX (w.open, t);
	return in_range (opening) ? opening : -1;
}

gint64
md_calendar_business_seconds (const MdCalendar *cal, gint64 from, gint64 to)
{
	if (!in_range (from) || !in_range (to))
		return -1;
	if (to <= from)
		return 0;
	guint32 day = local_day (cal, from, NULL) - 1, last_day = local_day (cal, to, NULL) + 1;
	guint range = 0;
	gint64 total = 0;
	Window w;
	while (next_window (cal, day, range, from, last_day, &w) && w.open < to) {
		total += MIN (w.close, to) - MAX (w.open, from);
		day = w.day;
		range = w.range + 1;
	}
	return total;
}

static gint64
add_business_seconds (const MdCalendar *cal, gint64 t, gint64 amount)
{
	guint32 day = local_day (cal, t, NULL) - 1, last_day = day + 1 + MD_CALENDAR_HORIZON_DAYS;
	guint range = 0;
	Window w;
	while (next_window (cal, day, range, t, last_day, &w)) {
		gint64 start = MAX (w.open, t);
		if (amount <= w.close - start)
			return start + amount;
		amount -= w.close - start;
		t = w.close;
		day = w.day;
		range = w.range + 1;
	}
	return -1;
}

/* The last working wall-clock time of a day at or before secs, or the
 * day's first opening when secs comes before all its hours. */
static gint64
clamp_to_hours (const Hours *h, gint64 secs)
{
	gint64 best = h->r[0].open;
	for (guint i = 0; i < h->n && h->r[i].open <= secs; i++)
		best = MIN (secs, h->r[i].close);
	return best;
}

static gint64
add_business_days (const MdCalendar *cal, gint64 t, gint64 days)
{
	gint64 wall;
	guint32 day = local_day (cal, t, &wall);
	const Hours *h = hours_of (cal, day);
	/* Where t stands in business time.  Before the day's opening or on a
	 * day off, the closing of the previous working day; from the last
	 * closing on, this day's: both mean "at the end of a working day". */
	if (h == NULL || wall < h->r[0].open) {
		day--;
		wall = SEC_PER_DAY;
	} else if (wall >= h->r[h->n - 1].close) {
		wall = SEC_PER_DAY;
	} else {
		wall = clamp_to_hours (h, wall);   /* a break counts from its start */
	}
	guint32 last_day = day + MD_CALENDAR_HORIZON_DAYS;
	for (gint64 n = 0; n < days;) {
		if (++day > last_day)
			return -1;
		if (hours_of (cal, day))
			n++;
	}
	return md_calendar_local_to_utc (cal, day, clamp_to_hours (hours_of (cal, day), wall));
}

gint64
md_calendar_add (const MdCalendar *cal, gint64 t, const MdDuration *d)
{
	if (!in_range (t) || d->amount < 0)
		return -1;
	if (d->amount == 0)
		return t;
	gint64 due;
	switch (d->unit) {
	case MD_DURATION_SECONDS:
		due = d->amount <= MD_CALENDAR_TIME_MAX - t ? t + d->amount : -1;
		break;
	case MD_DURATION_BUSINESS_SECONDS:
		due = add_business_seconds (cal, t, d->amount);
		break;
	case MD_DURATION_BUSINESS_DAYS:
		due = add_business_days (cal, t, d->amount);
		break;
	default:
		return -1;
	}
	return in_range (due) ? due : -1;
}
