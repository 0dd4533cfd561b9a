/* md.c - the shared error domain, exit-code mapping, the clock, and small
 * helpers every module uses (one-line text, directory trees, threads). */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include "md.h"

G_DEFINE_QUARK (maildesk-error-quark, md_error)

gboolean
md_error_is_temporary (const GError *error)
{
	if (!error || error->domain != MD_ERROR)
		return TRUE;
	switch ((MdErrorCode) error->code) {
	case MD_ERROR_EMPTY:
	case MD_ERROR_TOO_BIG:
	case MD_ERROR_NO_USER:
	case MD_ERROR_BAD_DOMAIN:
	case MD_ERROR_BAD_TOKEN:
	case MD_ERROR_INVALID:
	case MD_ERROR_DENIED:
	case MD_ERROR_NOT_FOUND:
		return FALSE;
	case MD_ERROR_CONFIG:
	case MD_ERROR_INTERNAL:
	case MD_ERROR_DB_BUSY:
	case MD_ERROR_DISK_FULL:
	case MD_ERROR_IO:
	case MD_ERROR_SPLIT:
		return TRUE;
	}
	return TRUE;
}

int
md_error_to_exit_code (const GError *error)
{
	if (!error)
		return MD_EX_OK;
	if (error->domain == MD_ERROR) {
		switch ((MdErrorCode) error->code) {
		case MD_ERROR_NO_USER:
		case MD_ERROR_BAD_DOMAIN:
		case MD_ERROR_BAD_TOKEN:
			return MD_EX_NOUSER;
		default:
			break;
		}
	}
	return md_error_is_temporary (error) ? MD_EX_TEMPFAIL : MD_EX_DATAERR;
}

/* MAILDESK_NOW, when set, and the time it says (NULL when it says none). */
static GDateTime *
env_now (const char **text_r)
{
	const char *now = g_getenv ("MAILDESK_NOW");
	*text_r = now && *now ? now : NULL;
	if (!*text_r)
		return NULL;
	g_autoptr (GTimeZone) utc = g_time_zone_new_utc ();
	return g_date_time_new_from_iso8601 (now, utc);
}

gboolean
md_now_check (GError **error)
{
	const char *text;
	g_autoptr (GDateTime) dt = env_now (&text);
	if (text && !dt) {
		g_set_error (error, MD_ERROR, MD_ERROR_INVALID, "MAILDESK_NOW=%s is not an ISO 8601 time "
		             "(e.g. 2026-12-01T09:30:00+02:00; without an offset, UTC)", text);
		return FALSE;
	}
	return TRUE;
}

gint64
md_now (void)
{
	const char *text;
	g_autoptr (GDateTime) dt = env_now (&text);
	if (dt)
		return g_date_time_to_unix (dt);
	if (text)
		g_warning ("MAILDESK_NOW=%s is not an ISO 8601 time; using the real clock", text);
	return g_get_real_time () / G_USEC_PER_SEC;
}

char *
md_time_iso_utc (gint64 t)
{
	g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (t);
	return dt ? g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup ("");
}

void
md_remove_tree (const char *path)
{
	g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
	const char *name;

	while (dir && (name = g_dir_read_name (dir))) {
		g_autofree char *child = g_build_filename (path, name, NULL);
		if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
			md_remove_tree (child);
		else
			g_unlink (child);
	}
	g_rmdir (path);
}

void
md_thread_lower_priority (const char *what)
{
#ifdef __linux__
	/* setpriority on a thread id: per thread on Linux (NPTL) */
	pid_t tid = (pid_t) syscall (SYS_gettid);
	int now = getpriority (PRIO_PROCESS, (id_t) tid);
	if (now < 10 && setpriority (PRIO_PROCESS, (id_t) tid, 10) < 0)
		g_warning ("%s: cannot lower the thread's priority: %s", what, g_strerror (errno));
#else
	(void) what;
#endif
}

char *
md_sha256_hex (const void *data, gsize len)
{
	static const char hex[] = "0123456789abcdef";
	guint8 digest[32];
	if (gnutls_hash_fast (GNUTLS_DIG_SHA256, data, len, digest) < 0)
		return g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);
	char *out = g_malloc (2 * sizeof digest + 1);
	for (gsize i = 0; i < sizeof digest; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0xf];
	}
	out[2 * sizeof digest] = '\0';
	return out;
}

gboolean
md_address_looks_valid (const char *s)
{
	const char *at = s ? strchr (s, '@') : NULL;
	return at && at != s && at[1] && !strchr (at + 1, '@') && !strpbrk (s, " \t\r\n<>,;\"#");
}

char *
md_text_one_line (const char *text, gsize max_chars)
{
	if (!text)
		return g_strdup ("");
	g_autofree char *repaired = g_utf8_validate (text, -1, NULL) ? NULL : g_utf8_make_valid (text, -1);
	const char *valid = repaired ? repaired : text;
	GString *out = g_string_sized_new (strlen (valid));
	gboolean space = FALSE;
	gsize chars = 0;
	for (const char *c = valid; *c && chars < max_chars; c = g_utf8_next_char (c)) {
		/* ASCII without the Unicode tables: the white space there
		 * other than ' ' is all control characters */
		gboolean ascii = !((guchar) *c & 0x80);
		gunichar u = ascii ? (guchar) *c : g_utf8_get_char (c);
		if (ascii ? u <= 0x20 || u == 0x7f
		          : g_unichar_iscntrl (u) || g_unichar_isspace (u) || u == 0x2028 || u == 0x2029) {
			space = out->len > 0;
			continue;
		}
		if (space) {
			g_string_append_c (out, ' ');
			chars++;
		}
		space = FALSE;
		g_string_append_len (out, c, g_utf8_next_char (c) - c);
		chars++;
	}
	return g_string_free (out, FALSE);
}

#define PASSWORD_FILE_MAX 16384  /* bytes */

char *
md_password_read (const char *path, GError **error)
{
	g_autoptr (GError) local = NULL;
	g_autofree char *text = NULL;
	gsize len = 0;
	GStatBuf st;

	if (g_stat (path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG,
		             "password_file %s may be read by others (mode %04o): chmod 600 it", path,
		             (unsigned) (st.st_mode & 07777));
		return NULL;
	}
	if (!g_file_get_contents (path, &text, &len, &local)) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "cannot read password_file: %s", local->message);
		return NULL;
	}
	/* Bounded, but room for an OAuth 2.0 access token: Microsoft's JWTs
	 * run to several KB with their group claims. */
	if (len > PASSWORD_FILE_MAX || memchr (text, '\0', len)) {
		md_password_free (g_steal_pointer (&text));
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "password_file %s is not a password or token", path);
		return NULL;
	}
	text[strcspn (text, "\r\n")] = '\0';
	if (!*text) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "password_file %s is empty", path);
		return NULL;
	}
	return g_steal_pointer (&text);
}

void
md_password_free (char *password)
{
	if (password) {
		memset (password, 0, strlen (password));
		g_free (password);
	}
}
