/* spool.h - content-addressed, durable file storage for raw messages and
 * attachment bodies.
 *
 * Layout under the spool root: raw/ab/abcdef...  (SHA-256 hex of the
 * bytes), blob/ab/abcdef... for attachments, tmp/ for files being written.
 * A file is written to tmp/ (O_EXCL), optionally fsync'd, renamed to its
 * hash name and its directory fsync'd: a name in raw/ or blob/ always
 * holds the complete bytes it is named after.
 */
#ifndef MD_SPOOL_H
#define MD_SPOOL_H

#include <glib.h>

typedef struct _MdSpool MdSpool;
typedef struct _MdSpoolWriter MdSpoolWriter;

typedef enum {
	MD_SPOOL_RAW,   /* received messages; always fsync'd */
	MD_SPOOL_BLOB,  /* attachments; derivable from raw, not fsync'd */
} MdSpoolKind;

/* Creates the directories when missing. Free with md_spool_free. */
MdSpool *md_spool_open (const char *root, GError **error);
void md_spool_free (MdSpool *spool);
const char *md_spool_root (const MdSpool *spool);

/* Path of a stored file by kind and hash; free with g_free. */
char *md_spool_path (const MdSpool *spool, MdSpoolKind kind, const char *sha256_hex);
/* Whether NAME is one the spool gives (64 lowercase hex digits), and so
 * safe to make a path of. */
gboolean md_spool_name_is_valid (const char *name);

/* Streaming writer.  Bytes go to a temporary file as they arrive and are
 * hashed on the way; nothing is held in memory.  max_size 0 = unbounded;
 * beyond it md_spool_writer_write fails with MD_ERROR_TOO_BIG. */
MdSpoolWriter *md_spool_writer_new (MdSpool *spool, MdSpoolKind kind, gint64 max_size, GError **error);
gboolean md_spool_writer_write (MdSpoolWriter *w, const void *buf, gsize len, GError **error);
gint64 md_spool_writer_size (const MdSpoolWriter *w);
/* Makes the file durable under its hash name.  On success *sha256_hex_r
 * (free with g_free) names it; the writer is freed either way. */
gboolean md_spool_writer_commit (MdSpoolWriter *w, char **sha256_hex_r, GError **error);
/* Drops the temporary file and frees the writer; NULL is fine. */
void md_spool_writer_abort (MdSpoolWriter *w);

/* Removes what a writer left in tmp/ when it died (kill -9, a crash, a
 * power cut): files whose writing process is gone, and any file not
 * written to for MAX_AGE seconds (a pid from before a reboot may be
 * reused).  A live writer's file is left alone.  Returns how many went. */
guint md_spool_clean_tmp (MdSpool *spool, gint64 max_age);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdSpool, md_spool_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdSpoolWriter, md_spool_writer_abort)

/* Maps an errno from write/fsync/rename to MD_ERROR_DISK_FULL or MD_ERROR_IO. */
void md_set_errno_error (GError **error, int errsv, const char *what, const char *path);

#endif
