/* test-calendar.c - durations and business time, against instants worked
 * out by hand (Europe/Kyiv is +02:00 in winter, +03:00 from the last
 * Sunday of March 01:00Z to the last Sunday of October 01:00Z). */
#include "config.h"

#include <string.h>

#include "md.h"
#include "calendar.h"

#define KYIV "Europe/Kyiv"
#define OFFICE "Mon-Fri 09:00-17:00"
#define HOLIDAYS "2026-12-25, 2027-01-01"
/* several ranges a day, days of different length */
#define SHIFTS "Mon-Thu 09:00-13:00 14:00-18:00, Fri 09:00-15:00, Sat 10:00-12:00"

static gint64
at (const char *iso)
{
	g_autoptr (GDateTime) dt = g_date_time_new_from_iso8601 (iso, NULL);
	g_assert_nonnull (dt);
	return g_date_time_to_unix (dt);
}

static MdCalendar *
calendar (const char *zone, const char *hours, const char *holidays)
{
	g_autoptr (GError) error = NULL;
	MdCalendar *cal = md_calendar_new (zone, hours, holidays, &error);
	g_assert_no_error (error);
	g_assert_nonnull (cal);
	return cal;
}

static void
assert_instant (gint64 got, const char *expected_utc, const char *what)
{
	g_autofree char *iso = got < 0 ? g_strdup ("-1") : md_time_iso_utc (got);
	if (g_strcmp0 (iso, expected_utc) != 0)
		g_error ("%s: got %s, expected %s", what, iso, expected_utc);
}

/* ---- durations ---- */

static void
test_duration_parse_good (void)
{
	static const struct {
		const char *text;
		MdDurationUnit unit;
		gint64 amount;
	} cases[] = {
		{ "30s", MD_DURATION_SECONDS, 30 },
		{ "30m", MD_DURATION_SECONDS, 1800 },
		{ "4h", MD_DURATION_SECONDS, 14400 },
		{ "3d", MD_DURATION_SECONDS, 259200 },
		{ "24bh", MD_DURATION_BUSINESS_SECONDS, 86400 },
		{ "3bd", MD_DURATION_BUSINESS_DAYS, 3 },
		{ "10bd", MD_DURATION_BUSINESS_DAYS, 10 },
		{ " 4h ", MD_DURATION_SECONDS, 14400 },
		{ "4 h", MD_DURATION_SECONDS, 14400 },
		{ "24BH", MD_DURATION_BUSINESS_SECONDS, 86400 },
		{ "007m", MD_DURATION_SECONDS, 420 },
		{ "0m", MD_DURATION_SECONDS, 0 },
		{ "3660d", MD_DURATION_SECONDS, G_GINT64_CONSTANT (316224000) },
		{ "87840bh", MD_DURATION_BUSINESS_SECONDS, G_GINT64_CONSTANT (316224000) },
		{ "3660bd", MD_DURATION_BUSINESS_DAYS, 3660 },
	};
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (GError) error = NULL;
		MdDuration d = { 0, -1 };
		g_test_message ("%s", cases[i].text);
		g_assert_true (md_duration_parse (cases[i].text, &d, &error));
		g_assert_no_error (error);
		g_assert_cmpint (d.unit, ==, cases[i].unit);
		g_assert_cmpint (d.amount, ==, cases[i].amount);
	}
}

static void
test_duration_parse_bad (void)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		{ NULL, "whole number" },
		{ "", "whole number" },
		{ "   ", "whole number" },
		{ "h", "whole number" },
		{ "bd3", "whole number" },
		{ "+4h", "whole number" },
		{ "4", "unit is required" },
		{ "-4h", "negative" },
		{ " -1bd", "negative" },
		{ "4x", "unknown unit" },
		{ "4b", "unknown unit" },
		{ "4hh", "unknown unit" },
		{ "4.5h", "whole number" },
		{ "4,5h", "whole number" },
		{ "4 b h", "after the unit" },
		{ "4h 30m", "after the unit" },
		{ "4h\n", "after the unit" },
		{ "99999999999999999999h", "too large" },
		{ "3661d", "too large" },
		{ "87841bh", "too large" },
		{ "3661bd", "too large" },
		{ "316224001s", "too large" },
		{ "00000000000000000000000000000000000000000000000000000000000000001h", "too long" },
	};
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (GError) error = NULL;
		MdDuration d;
		g_test_message ("%s", cases[i].text ? cases[i].text : "(null)");
		g_assert_false (md_duration_parse (cases[i].text, &d, &error));
		g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
		g_assert_nonnull (strstr (error->message, cases[i].why));
		g_assert_true (g_utf8_validate (error->message, -1, NULL));
	}
}

static void
test_duration_format (void)
{
	static const struct {
		MdDuration d;
		const char *text;
	} cases[] = {
		{ { MD_DURATION_SECONDS, 14400 }, "4 hours" },
		{ { MD_DURATION_SECONDS, 3600 }, "1 hour" },
		{ { MD_DURATION_SECONDS, 1800 }, "30 minutes" },
		{ { MD_DURATION_SECONDS, 90 }, "90 seconds" },
		{ { MD_DURATION_SECONDS, 1 }, "1 second" },
		{ { MD_DURATION_SECONDS, 0 }, "0 seconds" },
		{ { MD_DURATION_SECONDS, 259200 }, "3 days" },
		{ { MD_DURATION_SECONDS, 86400 }, "1 day" },
		{ { MD_DURATION_BUSINESS_SECONDS, 86400 }, "24 business hours" },
		{ { MD_DURATION_BUSINESS_SECONDS, 3600 }, "1 business hour" },
		{ { MD_DURATION_BUSINESS_SECONDS, 1800 }, "30 business minutes" },
		{ { MD_DURATION_BUSINESS_DAYS, 3 }, "3 business days" },
		{ { MD_DURATION_BUSINESS_DAYS, 1 }, "1 business day" },
	};
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *text = md_duration_format (&cases[i].d);
		g_assert_cmpstr (text, ==, cases[i].text);
	}
}

/* ---- calendars that do not parse ---- */

static void
test_calendar_errors (void)
{
	static const struct {
		const char *zone, *hours, *holidays, *why;
	} cases[] = {
		{ "Mars/Olympus", OFFICE, NULL, "time zone \"Mars/Olympus\": unknown" },
		{ "", OFFICE, NULL, "time zone" },
		{ NULL, OFFICE, NULL, "time zone" },
		{ KYIV, NULL, NULL, "working hours: none given" },
		{ KYIV, "", NULL, "working hours: none given" },
		{ KYIV, " \t", NULL, "working hours: none given" },
		{ KYIV, "Mon", NULL, "part 1 \"Mon\": expected a space and hours" },
		{ KYIV, "Mon-Fri", NULL, "expected a space and hours" },
		{ KYIV, "Mon-Fri ", NULL, "expected a space and hours" },
		{ KYIV, "Funday 09:00-17:00", NULL, "\"Funday\" is not a day" },
		{ KYIV, "Mo-Fr 09:00-17:00", NULL, "\"Mo\" is not a day" },
		{ KYIV, "09:00-17:00", NULL, "\"0\" is not a day" },
		{ KYIV, "Mon-Fri 9-17", NULL, "\"9\" is not a time" },
		{ KYIV, "Mon-Fri 09:60-17:00", NULL, "\"09:60\" is not a time" },
		{ KYIV, "Mon-Fri 09:00-24:30", NULL, "\"24:30\" is not a time" },
		{ KYIV, "Mon-Fri 009:00-17:00", NULL, "is not a time" },
		{ KYIV, "Mon-Fri 09:00-17:000", NULL, "is not a time" },
		{ KYIV, "Mon-Fri 24:00-24:00", NULL, "24:00 can only end a range" },
		{ KYIV, "Mon-Fri 17:00-09:00", NULL, "17:00-09:00 closes before it opens" },
		{ KYIV, "Mon-Fri 09:00-09:00", NULL, "closes before it opens" },
		{ KYIV, "Mon-Fri 09:00 17:00", NULL, "expected '-'" },
		{ KYIV, "Mon-Fri 09:00-17:00 x", NULL, "\"x\" is not a time" },
		{ KYIV, "Mon-Fri 09:00-13:00 12:00-17:00", NULL, "on Mon, 12:00-17:00 overlaps 09:00-13:00" },
		{ KYIV, "Mon-Fri 09:00-17:00, Wed 10:00-11:00", NULL, "on Wed, 10:00-11:00 overlaps 09:00-17:00" },
		{ KYIV, "Mon-Fri 09:00-17:00,", NULL, "part 2 \"\": empty" },
		{ KYIV, "Mon-Fri 09:00-17:00, Sat 10:00-25:00", NULL, "part 2 \"Sat 10:00-25:00\": \"25:00\" is not a time" },
		{ KYIV, "Mon 00:00-01:00 01:00-02:00 02:00-03:00 03:00-04:00 04:00-05:00 05:00-06:00 "
		        "06:00-07:00 07:00-08:00 08:00-09:00 09:00-10:00 10:00-11:00 11:00-12:00 "
		        "12:00-13:00 13:00-14:00 14:00-15:00 15:00-16:00 16:00-17:00", NULL, "more than 16 ranges" },
		{ KYIV, OFFICE, "2026-02-30", "holidays, item 1 \"2026-02-30\": not a date" },
		{ KYIV, OFFICE, "2026-12-25, 26.12.2026", "item 2 \"26.12.2026\": not a date" },
		{ KYIV, OFFICE, "2026-12-25,", "item 2 \"\": empty" },
		{ KYIV, OFFICE, "1969-12-31", "not a date" },
		{ KYIV, OFFICE, "2026-1-5", "not a date" },
	};
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (GError) error = NULL;
		g_test_message ("%s | %s | %s", cases[i].zone, cases[i].hours, cases[i].holidays);
		g_autoptr (MdCalendar) cal = md_calendar_new (cases[i].zone, cases[i].hours,
		                                              cases[i].holidays, &error);
		g_assert_null (cal);
		g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
		if (!strstr (error->message, cases[i].why))
			g_error ("message “%s” lacks “%s”", error->message, cases[i].why);
	}

	/* bounded input */
	g_autoptr (GError) error = NULL;
	g_autofree char *long_hours = g_strnfill (5000, 'M');
	g_assert_null (md_calendar_new (KYIV, long_hours, NULL, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	g_clear_error (&error);
	g_autoptr (GString) many = g_string_new ("");
	for (guint i = 0; i < 1001; i++)
		g_string_append_printf (many, "%s%d-01-01", i ? ", " : "", 1970 + i);
	g_assert_null (md_calendar_new (KYIV, OFFICE, many->str, &error));
	g_assert_error (error, MD_ERROR, MD_ERROR_INVALID);
	g_assert_nonnull (strstr (error->message, "more than 1000"));
}

/* ---- working or not, and the next opening ---- */

static void
test_calendar_opening (void)
{
	static const struct {
		const char *zone, *hours, *holidays, *t;
		gboolean working;
		const char *next_opening;
	} cases[] = {
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T09:00:00+02:00", TRUE, "2026-11-13T07:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T16:59:59+02:00", TRUE, "2026-11-13T14:59:59Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T17:00:00+02:00", FALSE, "2026-11-16T07:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-14T12:00:00+02:00", FALSE, "2026-11-16T07:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-16T08:59:59+02:00", FALSE, "2026-11-16T07:00:00Z" },
		/* Friday holiday, then the Monday after it */
		{ KYIV, OFFICE, HOLIDAYS, "2026-12-25T10:00:00+02:00", FALSE, "2026-12-28T07:00:00Z" },
		{ KYIV, OFFICE, "2026-12-25, 2026-12-28", "2026-12-24T18:00:00+02:00", FALSE, "2026-12-29T07:00:00Z" },
		/* summer time: 09:00 local is 06:00Z */
		{ KYIV, OFFICE, NULL, "2026-03-28T12:00:00+02:00", FALSE, "2026-03-30T06:00:00Z" },
		/* a range starting in the hour the clocks skip opens at the change */
		{ KYIV, "Sun 03:30-05:00", NULL, "2026-03-29T02:30:00+02:00", FALSE, "2026-03-29T01:00:00Z" },
		/* ... and one in the hour they repeat at its first occurrence */
		{ KYIV, "Sun 03:30-05:00", NULL, "2026-10-25T00:00:00Z", FALSE, "2026-10-25T00:30:00Z" },
		{ KYIV, "Sun 03:30-05:00", NULL, "2026-10-25T01:29:00Z", TRUE, "2026-10-25T01:29:00Z" },
		{ KYIV, "Sun 03:30-05:00", NULL, "2026-10-25T03:00:00Z", FALSE, "2026-11-01T01:30:00Z" },
		/* day ranges that wrap the week, 24:00, en dashes, full names */
		{ "UTC", "Sun-Tue 10:00-24:00", NULL, "2026-11-15T23:59:59Z", TRUE, "2026-11-15T23:59:59Z" },
		{ "UTC", "Sun-Tue 10:00-24:00", NULL, "2026-11-16T00:00:00Z", FALSE, "2026-11-16T10:00:00Z" },
		{ "UTC", "Sun-Tue 10:00-24:00", NULL, "2026-11-17T23:00:00Z", TRUE, "2026-11-17T23:00:00Z" },
		{ "UTC", "Sun-Tue 10:00-24:00", NULL, "2026-11-18T00:00:00Z", FALSE, "2026-11-22T10:00:00Z" },
		{ "UTC", "Mon\xe2\x80\x93" "Fri 09:00\xe2\x80\x93" "17:00", NULL, "2026-11-13T16:00:00Z", TRUE, "2026-11-13T16:00:00Z" },
		{ "UTC", "monday - FRIDAY  9:00 - 17:00", NULL, "2026-11-14T16:00:00Z", FALSE, "2026-11-16T09:00:00Z" },
		/* lunch break */
		{ "UTC", SHIFTS, NULL, "2026-11-16T13:00:00Z", FALSE, "2026-11-16T14:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-13T15:00:00Z", FALSE, "2026-11-14T10:00:00Z" },
		/* touching ranges merged */
		{ "UTC", "Mon 09:00-12:00 12:00-17:00", NULL, "2026-11-16T12:00:00Z", TRUE, "2026-11-16T12:00:00Z" },
	};
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (MdCalendar) cal = calendar (cases[i].zone, cases[i].hours, cases[i].holidays);
		gint64 t = at (cases[i].t);
		g_autofree char *what = g_strdup_printf ("%s | %s at %s", cases[i].zone, cases[i].hours, cases[i].t);
		if (md_calendar_is_working (cal, t) != cases[i].working)
			g_error ("%s: is_working should be %d", what, cases[i].working);
		assert_instant (md_calendar_next_opening (cal, t), cases[i].next_opening, what);
	}
}

/* ---- adding durations ---- */

typedef struct {
	const char *zone, *hours, *holidays, *start, *duration, *expected;
} AddCase;

static void
run_add_cases (const AddCase *cases, guint n)
{
	for (guint i = 0; i < n; i++) {
		const AddCase *c = &cases[i];
		g_autoptr (MdCalendar) cal = calendar (c->zone, c->hours, c->holidays);
		g_autoptr (GError) error = NULL;
		MdDuration d;
		g_assert_true (md_duration_parse (c->duration, &d, &error));
		g_autofree char *what = g_strdup_printf ("%s | %s | %s: %s + %s", c->zone, c->hours,
		                                         c->holidays, c->start, c->duration);
		assert_instant (md_calendar_add (cal, at (c->start), &d), c->expected, what);
	}
}

static void
test_add_business_hours (void)
{
	static const AddCase cases[] = {
		/* DESIGN 9: Friday 16:00 + 24bh is Wednesday 16:00 */
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T16:00:00+02:00", "24bh", "2026-11-18T14:00:00Z" },
		/* ... across the spring and autumn changes of 2026 and 2027 */
		{ KYIV, OFFICE, HOLIDAYS, "2026-03-27T16:00:00+02:00", "24bh", "2026-04-01T13:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-10-23T16:00:00+03:00", "24bh", "2026-10-28T14:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2027-03-26T16:00:00+02:00", "24bh", "2027-03-31T13:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2027-10-29T16:00:00+03:00", "24bh", "2027-11-03T14:00:00Z" },
		/* opened on Saturday: the clock starts Monday 09:00 and the
		 * third working day ends at its closing */
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-14T10:00:00+02:00", "24bh", "2026-11-18T15:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T09:00:00+02:00", "8bh", "2026-11-13T15:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T17:00:00+02:00", "30m", "2026-11-13T15:30:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T17:00:00+02:00", "0bh", "2026-11-13T15:00:00Z" },
		/* holidays: Christmas on a Friday, New Year too, and a Monday */
		{ KYIV, OFFICE, HOLIDAYS, "2026-12-24T16:00:00+02:00", "24bh", "2026-12-30T14:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-12-31T12:00:00+02:00", "8bh", "2027-01-04T10:00:00Z" },
		{ KYIV, OFFICE, "2026-12-28", "2026-12-25T16:00:00+02:00", "8bh", "2026-12-29T14:00:00Z" },
		/* zones without DST */
		{ "Asia/Tokyo", OFFICE, NULL, "2026-03-27T16:00:00+09:00", "24bh", "2026-04-01T07:00:00Z" },
		{ "Asia/Tokyo", OFFICE, NULL, "2026-10-23T16:00:00+09:00", "24bh", "2026-10-28T07:00:00Z" },
		{ "UTC", OFFICE, NULL, "2026-03-27T16:00:00Z", "24bh", "2026-04-01T16:00:00Z" },
		/* several ranges a day */
		{ "UTC", SHIFTS, NULL, "2026-11-12T17:00:00Z", "8bh", "2026-11-14T11:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-16T12:30:00Z", "2bh", "2026-11-16T15:30:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-16T12:00:00Z", "1bh", "2026-11-16T13:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-16T13:00:00Z", "1bh", "2026-11-16T15:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-14T11:30:00Z", "1bh", "2026-11-16T09:30:00Z" },
		/* hours that span the change count the real seconds: Sunday has
		 * 23 hours in March and 25 in October */
		{ KYIV, "Sun 00:00-24:00", NULL, "2026-03-29T00:00:00+02:00", "22bh", "2026-03-29T20:00:00Z" },
		{ KYIV, "Sun 00:00-24:00", NULL, "2026-03-29T00:00:00+02:00", "24bh", "2026-04-04T22:00:00Z" },
		{ KYIV, "Sun 00:00-24:00", NULL, "2026-10-25T00:00:00+03:00", "24bh", "2026-10-25T21:00:00Z" },
		{ KYIV, "Sun 00:00-24:00", NULL, "2027-10-31T00:00:00+03:00", "25bh", "2027-10-31T22:00:00Z" },
		{ KYIV, "Sun 02:00-05:00", NULL, "2026-03-29T02:00:00+02:00", "2bh", "2026-03-29T02:00:00Z" },
		{ KYIV, "Sun 02:00-05:00", NULL, "2026-10-25T02:00:00+03:00", "4bh", "2026-10-25T03:00:00Z" },
		/* P1: four calendar hours, over midnight and over the change */
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T22:30:00+02:00", "4h", "2026-11-14T00:30:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-03-29T01:30:00+02:00", "4h", "2026-03-29T03:30:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-10-01T12:00:00Z", "30d", "2026-10-31T12:00:00Z" },
	};
	run_add_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_add_business_days (void)
{
	static const AddCase cases[] = {
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-11T11:00:00+02:00", "3bd", "2026-11-16T09:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T09:00:00+02:00", "1bd", "2026-11-16T07:00:00Z" },
		/* outside hours: the end of the Nth working day */
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-14T10:00:00+02:00", "3bd", "2026-11-18T15:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T20:00:00+02:00", "1bd", "2026-11-16T15:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T17:00:00+02:00", "1bd", "2026-11-16T15:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T16:59:59+02:00", "1bd", "2026-11-16T14:59:59Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-16T07:00:00+02:00", "1bd", "2026-11-16T15:00:00Z" },
		/* ten days over Christmas, and over the spring and autumn changes */
		{ KYIV, OFFICE, HOLIDAYS, "2026-12-14T10:00:00+02:00", "10bd", "2026-12-29T08:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-03-25T10:00:00+02:00", "10bd", "2026-04-08T07:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2026-10-23T12:00:00+03:00", "3bd", "2026-10-28T10:00:00Z" },
		{ KYIV, OFFICE, HOLIDAYS, "2027-10-29T12:00:00+03:00", "10bd", "2027-11-12T10:00:00Z" },
		/* holiday on the Monday */
		{ KYIV, OFFICE, "2026-12-28", "2026-12-25T11:00:00+02:00", "1bd", "2026-12-29T09:00:00Z" },
		{ "Asia/Tokyo", OFFICE, NULL, "2026-03-27T16:00:00+09:00", "3bd", "2026-04-01T07:00:00Z" },
		/* days of different length */
		{ "UTC", SHIFTS, NULL, "2026-11-12T16:30:00Z", "1bd", "2026-11-13T15:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-12T13:30:00Z", "1bd", "2026-11-13T13:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-13T14:00:00Z", "1bd", "2026-11-14T12:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-14T11:00:00Z", "1bd", "2026-11-16T11:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-16T08:00:00Z", "1bd", "2026-11-16T18:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-13T16:00:00Z", "2bd", "2026-11-16T18:00:00Z" },
		{ "UTC", SHIFTS, NULL, "2026-11-14T09:00:00Z", "2bd", "2026-11-16T18:00:00Z" },
		{ "UTC", "Mon-Fri 10:00-18:00, Sat 12:00-14:00", NULL, "2026-11-13T11:00:00Z", "1bd", "2026-11-14T12:00:00Z" },
	};
	run_add_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_add_bounds (void)
{
	g_autoptr (MdCalendar) office = calendar (KYIV, OFFICE, HOLIDAYS);
	g_autoptr (MdCalendar) sparse = calendar ("UTC", "Sat 10:00-10:01", NULL);
	MdDuration hours = { MD_DURATION_BUSINESS_SECONDS, 3600 };
	MdDuration many_hours = { MD_DURATION_BUSINESS_SECONDS, G_GINT64_CONSTANT (316224000) };
	MdDuration many_days = { MD_DURATION_BUSINESS_DAYS, 3660 };
	MdDuration week = { MD_DURATION_SECONDS, 7 * 86400 };
	MdDuration negative = { MD_DURATION_SECONDS, -1 };
	gint64 t = at ("2026-11-13T12:00:00Z");

	g_assert_cmpint (md_calendar_add (office, -5, &hours), ==, -1);
	g_assert_cmpint (md_calendar_add (office, MD_CALENDAR_TIME_MAX + 1, &hours), ==, -1);
	g_assert_cmpint (md_calendar_add (office, MD_CALENDAR_TIME_MAX - 3600, &week), ==, -1);
	g_assert_cmpint (md_calendar_add (office, t, &negative), ==, -1);
	/* a minute a week for ten years of hours, 70 years of days: past the
	 * horizon, and it ends */
	g_assert_cmpint (md_calendar_add (sparse, t, &many_hours), ==, -1);
	g_assert_cmpint (md_calendar_add (sparse, t, &many_days), ==, -1);
	/* the largest durations still work on a normal calendar */
	g_assert_cmpint (md_calendar_add (office, t, &many_days), >, t);
	g_assert_cmpint (md_calendar_business_seconds (office, -1, t), ==, -1);
	g_assert_cmpint (md_calendar_next_opening (office, -1), ==, -1);
	g_assert_false (md_calendar_is_working (office, -1));
	g_assert_true (md_calendar_zone (office) != NULL);
	g_assert_cmpstr (g_time_zone_get_identifier (md_calendar_zone (office)), ==, KYIV);
}

/* ---- working time between two instants ---- */

static void
test_business_seconds (void)
{
	static const struct {
		const char *zone, *hours, *holidays, *from, *to;
		gint64 seconds;
	} cases[] = {
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T16:00:00+02:00", "2026-11-16T10:00:00+02:00", 7200 },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T10:00:00+02:00", "2026-11-13T11:30:00+02:00", 5400 },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-16T10:00:00+02:00", "2026-11-13T10:00:00+02:00", 0 },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-14T10:00:00+02:00", "2026-11-14T20:00:00+02:00", 0 },
		{ KYIV, OFFICE, HOLIDAYS, "2026-11-13T16:00:00+02:00", "2026-11-18T16:00:00+02:00", 86400 },
		/* weekend plus holidays */
		{ KYIV, OFFICE, HOLIDAYS, "2026-12-24T16:00:00+02:00", "2026-12-29T10:00:00+02:00", 36000 },
		{ KYIV, OFFICE, "2026-12-25, 2026-12-28", "2026-12-24T16:00:00+02:00", "2026-12-29T10:00:00+02:00", 7200 },
		/* eight hours a day on both sides of the change */
		{ KYIV, OFFICE, NULL, "2026-03-27T09:00:00+02:00", "2026-03-30T17:00:00+03:00", 57600 },
		{ KYIV, OFFICE, NULL, "2026-10-23T09:00:00+03:00", "2026-10-26T17:00:00+02:00", 57600 },
		/* whole Sundays: 23 and 25 hours */
		{ KYIV, "Sun 00:00-24:00", NULL, "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z", 82800 },
		{ KYIV, "Sun 00:00-24:00", NULL, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z", 90000 },
		{ KYIV, "Sun 00:00-24:00", NULL, "2027-03-27T00:00:00Z", "2027-03-29T00:00:00Z", 82800 },
		{ KYIV, "Sun 00:00-24:00", NULL, "2027-10-30T00:00:00Z", "2027-11-01T00:00:00Z", 90000 },
		/* night hours over the change, and ends inside the changed hour */
		{ KYIV, "Sun 02:00-05:00", NULL, "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z", 7200 },
		{ KYIV, "Sun 02:00-05:00", NULL, "2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z", 14400 },
		{ KYIV, "Sun 03:30-05:00", NULL, "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z", 3600 },
		{ KYIV, "Sun 03:30-05:00", NULL, "2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z", 9000 },
		{ "Asia/Tokyo", OFFICE, NULL, "2026-03-27T16:00:00+09:00", "2026-03-30T10:00:00+09:00", 7200 },
		{ "UTC", SHIFTS, NULL, "2026-11-16T00:00:00Z", "2026-11-22T00:00:00Z", 144000 },
		{ "UTC", SHIFTS, NULL, "2026-11-16T12:30:00Z", "2026-11-16T14:30:00Z", 3600 },
	};
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr (MdCalendar) cal = calendar (cases[i].zone, cases[i].hours, cases[i].holidays);
		g_test_message ("%s | %s: %s .. %s", cases[i].zone, cases[i].hours, cases[i].from, cases[i].to);
		g_assert_cmpint (md_calendar_business_seconds (cal, at (cases[i].from), at (cases[i].to)),
		                 ==, cases[i].seconds);
	}
}

/* add and business_seconds agree: the due time of N bh is the first
 * instant with N working seconds behind it, for instants all over two
 * years that include both DST changes. */
static void
test_add_inverse (void)
{
	static const struct {
		const char *zone, *hours, *holidays;
	} calendars[] = {
		{ KYIV, OFFICE, HOLIDAYS },
		{ KYIV, "Mon-Sun 00:00-24:00", NULL },
		{ KYIV, "Sat-Mon 02:30-03:30 03:45-04:15", NULL },
		{ "UTC", SHIFTS, NULL },
		{ "America/Santiago", "Sat-Sun 00:00-01:00 23:00-24:00, Mon-Fri 08:00-20:00", NULL },
		{ "Australia/Lord_Howe", "Sun 01:00-03:00", NULL },
	};
	g_autoptr (GRand) rand = g_rand_new_with_seed (20261025);
	gint64 base = at ("2026-01-01T00:00:00Z");
	for (guint c = 0; c < G_N_ELEMENTS (calendars); c++) {
		g_autoptr (MdCalendar) cal = calendar (calendars[c].zone, calendars[c].hours,
		                                       calendars[c].holidays);
		for (guint i = 0; i < 300; i++) {
			gint64 t = base + g_rand_int_range (rand, 0, 2 * 366 * 86400);
			MdDuration d = { MD_DURATION_BUSINESS_SECONDS, g_rand_int_range (rand, 0, 100 * 3600) };
			gint64 due = md_calendar_add (cal, t, &d);
			g_assert_cmpint (due, >=, t);
			g_assert_cmpint (md_calendar_business_seconds (cal, t, due), ==, d.amount);
			if (d.amount > 0)
				g_assert_true (md_calendar_is_working (cal, due - 1));
			gint64 opening = md_calendar_next_opening (cal, t);
			g_assert_cmpint (opening, >=, t);
			g_assert_true (md_calendar_is_working (cal, opening));
			g_assert_cmpint (md_calendar_business_seconds (cal, t, opening), ==, 0);

			MdDuration days = { MD_DURATION_BUSINESS_DAYS, g_rand_int_range (rand, 1, 15) };
			due = md_calendar_add (cal, t, &days);
			g_assert_cmpint (due, >, t);
		}
	}
}

/* md_calendar_local_to_utc as GLib answers it for any day: both readings
 * of the wall-clock time, the earlier instant. */
static gint64
local_to_utc_by_glib (GTimeZone *zone, guint32 day, gint64 secs)
{
	gint64 as_dst = ((gint64) day - 719163) * 86400 + secs, as_std = as_dst;
	gint i_dst = g_time_zone_adjust_time (zone, G_TIME_TYPE_DAYLIGHT, &as_dst);
	gint i_std = g_time_zone_adjust_time (zone, G_TIME_TYPE_STANDARD, &as_std);
	return MIN (as_dst - g_time_zone_get_offset (zone, i_dst), as_std - g_time_zone_get_offset (zone, i_std));
}

/* The calendar takes a day far from the zone's transitions as one offset
 * all day (remembered per day): every day of 25 years, in zones with
 * DST, changes at midnight (Santiago, Beirut), half-hour ones, a skipped
 * day (Apia, December 2011), two changes a month apart (Casablanca's
 * Ramadan) and none,
 * against GLib's answer, with the cache cold, warm and overwritten. */
static void
test_local_to_utc_steady_days (void)
{
	static const char *const zones[] = {
		KYIV, "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Africa/Casablanca",
		"America/Santiago", "Asia/Beirut", "America/St_Johns", "Asia/Kathmandu", "Antarctica/Troll", "UTC",
		"+05:30",
	};
	static const gint64 secs[] = { 0, 1, 1800, 3599, 3600, 5400, 7200, 9000, 10800, 14400, 43200, 82800, 86399, 86400 };
	GDate first, last;
	g_date_clear (&first, 1);
	g_date_clear (&last, 1);
	g_date_set_dmy (&first, 1, 1, 2005);
	g_date_set_dmy (&last, 31, 12, 2029);
	for (guint z = 0; z < G_N_ELEMENTS (zones); z++) {
		g_autoptr (MdCalendar) cal = calendar (zones[z], OFFICE, NULL);
		GTimeZone *zone = md_calendar_zone (cal);
		guint checked = 0;
		for (int pass = 0; pass < 3; pass++) {
			/* pass 1 reads each day again; pass 2 walks backwards, each
			 * day evicting the one 64 days after it */
			for (guint32 k = g_date_get_julian (&first); k <= g_date_get_julian (&last); k++) {
				guint32 day = pass == 2 ? g_date_get_julian (&last) - (k - g_date_get_julian (&first)) : k;
				for (gsize i = 0; i < G_N_ELEMENTS (secs); i++) {
					gint64 expected = local_to_utc_by_glib (zone, day, secs[i]);
					gint64 got = md_calendar_local_to_utc (cal, day, secs[i]);
					if (got != expected)
						g_error ("%s, julian day %u, %" G_GINT64_FORMAT " s: got %" G_GINT64_FORMAT
						         ", GLib says %" G_GINT64_FORMAT, zones[z], day, secs[i], got, expected);
					checked++;
				}
			}
		}
		g_assert_cmpuint (checked, >, 0);
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/duration/parse-good", test_duration_parse_good);
	g_test_add_func ("/duration/parse-bad", test_duration_parse_bad);
	g_test_add_func ("/duration/format", test_duration_format);
	g_test_add_func ("/calendar/errors", test_calendar_errors);
	g_test_add_func ("/calendar/opening", test_calendar_opening);
	g_test_add_func ("/calendar/add-business-hours", test_add_business_hours);
	g_test_add_func ("/calendar/add-business-days", test_add_business_days);
	g_test_add_func ("/calendar/add-bounds", test_add_bounds);
	g_test_add_func ("/calendar/business-seconds", test_business_seconds);
	g_test_add_func ("/calendar/add-inverse", test_add_inverse);
	g_test_add_func ("/calendar/local-to-utc-steady-days", test_local_to_utc_steady_days);
	return g_test_run ();
}
