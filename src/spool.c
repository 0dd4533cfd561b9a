/* spool.c - durable content-addressed files: tmp -> fsync -> rename ->
 * fsync(dir), the discipline of notmuch-insert and Maildir. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "md.h"
#include "spool.h"

struct _MdSpool {
	char *root;
	char *tmp_dir;
};

struct _MdSpoolWriter {
	MdSpool *spool;
	MdSpoolKind kind;
	char *tmp_path;
	int fd;
	gint64 size;
	gint64 max_size;
	GChecksum *sha;
};

void
md_set_errno_error (GError **error, int errsv, const char *what, const char *path)
{
	int code = (errsv == ENOSPC || errsv == EDQUOT) ? MD_ERROR_DISK_FULL : MD_ERROR_IO;
	g_set_error (error, MD_ERROR, code, "%s %s: %s", what, path, g_strerror (errsv));
}

static const char *
kind_dir (MdSpoolKind kind)
{
	return kind == MD_SPOOL_RAW ? "raw" : "blob";
}

static gboolean
make_dir (const char *path, GError **error)
{
	if (g_mkdir_with_parents (path, 0700) < 0) {
		md_set_errno_error (error, errno, "cannot create directory", path);
		return FALSE;
	}
	return TRUE;
}

static gboolean fsync_dir (const char *dir, GError **error);

/* raw/00 ... raw/ff, made durable once, here: a directory created for a
 * message's file would be an entry of raw/ that no fsync of the file or
 * of its own directory covers. */
static gboolean
make_raw_fanout (const char *raw, GError **error)
{
	gboolean created = FALSE;
	for (guint i = 0; i < 256; i++) {
		char name[3];
		g_snprintf (name, sizeof name, "%02x", i);
		g_autofree char *dir = g_build_filename (raw, name, NULL);
		if (mkdir (dir, 0700) == 0)
			created = TRUE;
		else if (errno != EEXIST) {
			md_set_errno_error (error, errno, "cannot create directory", dir);
			return FALSE;
		}
	}
	if (!created)
		return TRUE;
	g_autofree char *root = g_path_get_dirname (raw);
	return fsync_dir (raw, error) && fsync_dir (root, error);
}

MdSpool *
md_spool_open (const char *root, GError **error)
{
	g_autofree char *raw = g_build_filename (root, "raw", NULL);
	g_autofree char *blob = g_build_filename (root, "blob", NULL);
	g_autofree char *tmp = g_build_filename (root, "tmp", NULL);

	if (!make_dir (raw, error) || !make_dir (blob, error) || !make_dir (tmp, error) || !make_raw_fanout (raw, error))
		return NULL;
	MdSpool *spool = g_new0 (MdSpool, 1);
	spool->root = g_strdup (root);
	spool->tmp_dir = g_steal_pointer (&tmp);
	return spool;
}

void
md_spool_free (MdSpool *spool)
{
	if (!spool)
		return;
	g_free (spool->root);
	g_free (spool->tmp_dir);
	g_free (spool);
}

const char *
md_spool_root (const MdSpool *spool)
{
	return spool->root;
}

char *
md_spool_path (const MdSpool *spool, MdSpoolKind kind, const char *sha256_hex)
{
	char prefix[3] = { sha256_hex[0], sha256_hex[1], 0 };
	return g_build_filename (spool->root, kind_dir (kind), prefix, sha256_hex, NULL);
}

gboolean
md_spool_name_is_valid (const char *name)
{
	gsize n = 0;
	for (; name && name[n]; n++)
		if (!g_ascii_isxdigit (name[n]) || g_ascii_isupper (name[n]))
			return FALSE;
	return n == 64;
}

MdSpoolWriter *
md_spool_writer_new (MdSpool *spool, MdSpoolKind kind, gint64 max_size, GError **error)
{
	static gint counter;
	g_autofree char *name = g_strdup_printf ("%d.%" G_GINT64_FORMAT ".%d.%u", (int) getpid (),
	                                         g_get_real_time (), g_atomic_int_add (&counter, 1),
	                                         g_random_int ());
	g_autofree char *path = g_build_filename (spool->tmp_dir, name, NULL);
	int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		md_set_errno_error (error, errno, "cannot create", path);
		return NULL;
	}
	MdSpoolWriter *w = g_new0 (MdSpoolWriter, 1);
	w->spool = spool;
	w->kind = kind;
	w->tmp_path = g_steal_pointer (&path);
	w->fd = fd;
	w->max_size = max_size;
	w->sha = g_checksum_new (G_CHECKSUM_SHA256);
	return w;
}

gboolean
md_spool_writer_write (MdSpoolWriter *w, const void *buf, gsize len, GError **error)
{
	if (w->max_size > 0 && w->size + (gint64) len > w->max_size) {
		g_set_error (error, MD_ERROR, MD_ERROR_TOO_BIG,
		             "message exceeds the maximum size of %" G_GINT64_FORMAT " bytes", w->max_size);
		return FALSE;
	}
	const char *p = buf;
	gsize left = len;
	while (left > 0) {
		ssize_t n = write (w->fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			md_set_errno_error (error, errno, "cannot write", w->tmp_path);
			return FALSE;
		}
		p += n;
		left -= (gsize) n;
	}
	g_checksum_update (w->sha, buf, len);
	w->size += (gint64) len;
	return TRUE;
}

gint64
md_spool_writer_size (const MdSpoolWriter *w)
{
	return w->size;
}

static gboolean
fsync_dir (const char *dir, GError **error)
{
	int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		md_set_errno_error (error, errno, "cannot open directory", dir);
		return FALSE;
	}
	int rc = fsync (fd);
	int errsv = errno;
	close (fd);
	if (rc < 0) {
		md_set_errno_error (error, errsv, "cannot fsync directory", dir);
		return FALSE;
	}
	return TRUE;
}

gboolean
md_spool_writer_commit (MdSpoolWriter *w, char **sha256_hex_r, GError **error)
{
	gboolean durable = w->kind == MD_SPOOL_RAW;
	g_autofree char *hex = g_strdup (g_checksum_get_string (w->sha));
	g_autofree char *path = md_spool_path (w->spool, w->kind, hex);
	g_autofree char *dir = g_path_get_dirname (path);

	if (durable && fsync (w->fd) < 0) {
		md_set_errno_error (error, errno, "cannot fsync", w->tmp_path);
		goto fail;
	}
	if (close (w->fd) < 0) {
		w->fd = -1;
		md_set_errno_error (error, errno, "cannot close", w->tmp_path);
		goto fail;
	}
	w->fd = -1;
	if (!make_dir (dir, error))
		goto fail;
	/* Same hash, same bytes: an existing file is already what we wrote. */
	if (rename (w->tmp_path, path) < 0) {
		md_set_errno_error (error, errno, "cannot rename into", path);
		goto fail;
	}
	g_clear_pointer (&w->tmp_path, g_free);
	if (durable && !fsync_dir (dir, error))
		goto fail;
	md_spool_writer_abort (w);
	*sha256_hex_r = g_steal_pointer (&hex);
	return TRUE;
fail:
	md_spool_writer_abort (w);
	return FALSE;
}

/* The process a tmp/ name says wrote it ("PID.TIME.N.RANDOM", as
 * md_spool_writer_new names them), or 0 for a name of another shape. */
static pid_t
tmp_writer_pid (const char *name)
{
	char *end = NULL;
	gint64 pid = g_ascii_strtoll (name, &end, 10);
	return end && *end == '.' && pid > 0 && pid <= G_MAXINT ? (pid_t) pid : 0;
}

guint
md_spool_clean_tmp (MdSpool *spool, gint64 max_age)
{
	g_autoptr (GDir) dir = g_dir_open (spool->tmp_dir, 0, NULL);
	gint64 now = g_get_real_time () / G_USEC_PER_SEC;
	guint removed = 0;
	const char *name;

	if (!dir)
		return 0;
	while ((name = g_dir_read_name (dir))) {
		g_autofree char *path = g_build_filename (spool->tmp_dir, name, NULL);
		struct stat st;
		if (lstat (path, &st) < 0 || !S_ISREG (st.st_mode))
			continue;
		pid_t pid = tmp_writer_pid (name);
		/* kill(pid, 0): ESRCH means no such process; EPERM means one
		 * that is not ours, which may be a writer all the same. */
		gboolean writer_gone = pid && pid != getpid () && kill (pid, 0) < 0 && errno == ESRCH;
		if ((writer_gone || now - (gint64) st.st_mtime > max_age) && unlink (path) == 0)
			removed++;
	}
	return removed;
}

void
md_spool_writer_abort (MdSpoolWriter *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close (w->fd);
	if (w->tmp_path)
		unlink (w->tmp_path);
	g_free (w->tmp_path);
	g_checksum_free (w->sha);
	g_free (w);
}
