/* sql.h - the few SQLite statement helpers every store module uses
 * (store.c, outbox.c, schedule.c, purge.c).  For those modules only:
 * the rest of maildesk sees the store through store.h, which keeps
 * SQLite out of its interface. */
#ifndef MD_SQL_H
#define MD_SQL_H

#include <glib.h>
#include <sqlite3.h>

#include "store.h"

/* Statements are the store's cached ones: going out of scope resets them. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, md_store_statement_release)

/* TEXT, or null when NULL.  Bound, not copied: the caller's string must
 * outlive the statement's run (see sql.c). */
void md_sql_bind_text (sqlite3_stmt *s, int i, const char *text);
/* Column I as a new string, NULL for null.  Free with g_free. */
char *md_sql_col_text (sqlite3_stmt *s, int i);
/* Runs S, a statement that returns no rows, and resets it; on failure
 * sets ERROR, with WHAT naming what failed. */
gboolean md_sql_step_done (MdStore *store, sqlite3_stmt *s, const char *what, GError **error);
/* Runs S and collects its first column of every row, as gint64, then
 * resets it.  NULL with ERROR set (WHAT naming the query) on failure;
 * free with g_array_unref. */
GArray *md_sql_ids (MdStore *store, sqlite3_stmt *s, const char *what, GError **error);

#endif
