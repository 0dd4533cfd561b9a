/* fuzz-calendar.c - libFuzzer target for the duration, hours and holiday
 * parsers, and for the arithmetic on whatever they accept.
 *
 * Build and run from the top of a configured tree (config.h):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Isrc \
 *     tests/fuzz/fuzz-calendar.c src/calendar.c src/md.c \
 *     $(pkg-config --cflags --libs glib-2.0) -o fuzz-calendar.fuzz
 *   mkdir -p /tmp/fuzz-calendar && ./fuzz-calendar.fuzz -max_total_time=60 /tmp/fuzz-calendar
 *
 * Input: one byte choosing the zone, four bytes of time, then duration,
 * hours and holidays separated by newlines.  Beyond "no crash, no leak"
 * it checks the promises of calendar.h: a due time of N bh has exactly N
 * working seconds behind it, openings are working instants, and errors
 * are MD_ERROR_INVALID with UTF-8 messages.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"
#include "calendar.h"

static const char *const zones[] = {
	"Europe/Kyiv", "UTC", "Asia/Tokyo", "America/Santiago",
	"Australia/Lord_Howe", "America/New_York", "Asia/Kathmandu",
};

#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

static void
check_error (GError *error)
{
	CHECK (error != NULL && error->domain == MD_ERROR && error->code == MD_ERROR_INVALID);
	CHECK (g_utf8_validate (error->message, -1, NULL));
}

static void
exercise (const MdCalendar *cal, gint64 t, const MdDuration *d)
{
	gint64 due = md_calendar_add (cal, t, d);
	CHECK (due == -1 || due >= t);
	if (due >= 0 && d->unit == MD_DURATION_BUSINESS_SECONDS)
		CHECK (md_calendar_business_seconds (cal, t, due) == d->amount);
	if (due >= 0 && d->unit == MD_DURATION_BUSINESS_DAYS && d->amount > 0)
		CHECK (due > t);
	gint64 opening = md_calendar_next_opening (cal, t);
	if (opening >= 0) {
		CHECK (opening >= t && md_calendar_is_working (cal, opening));
		CHECK (md_calendar_business_seconds (cal, t, opening) == 0);
	}
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	if (size < 5 || size > 4096)
		return 0;
	const char *zone = zones[data[0] % G_N_ELEMENTS (zones)];
	/* 2000-01-01 plus up to 136 years */
	gint64 t = 946684800 + (gint64) ((guint32) data[1] << 24 | data[2] << 16 | data[3] << 8 | data[4]);
	g_autofree char *text = g_strndup ((const char *) data + 5, size - 5);
	g_auto (GStrv) fields = g_strsplit (text, "\n", 3);
	const char *duration = fields[0] ? fields[0] : "";
	const char *hours = fields[0] && fields[1] ? fields[1] : "Mon-Fri 09:00-17:00";
	const char *holidays = fields[0] && fields[1] ? fields[2] : NULL;

	g_autoptr (GError) error = NULL;
	MdDuration d;
	gboolean have_duration = md_duration_parse (duration, &d, &error);
	if (have_duration) {
		g_autofree char *human = md_duration_format (&d);
		CHECK (human && *human);
	} else {
		check_error (error);
		g_clear_error (&error);
	}

	g_autoptr (MdCalendar) cal = md_calendar_new (zone, hours, holidays, &error);
	if (cal == NULL) {
		check_error (error);
		return 0;
	}
	MdDuration fallback = { MD_DURATION_BUSINESS_SECONDS, 8 * 3600 };
	exercise (cal, t, have_duration ? &d : &fallback);
	return 0;
}
