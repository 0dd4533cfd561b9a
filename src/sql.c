/* sql.c - the few SQLite statement helpers every store module uses:
 * binding and reading text, running a statement of no rows, reading a
 * column of ids.  One copy, so the modules that keep their own tables
 * (outbox, timers, purge) read and write them as the store does. */
#include "config.h"

#include "sql.h"

/* Bound, not copied: every statement runs and is reset before its
 * caller returns, and md_store_statement clears the bindings before the
 * next use, so SQLite never reads the text after the caller's strings
 * are gone (a copy was a malloc and a memcpy per value, a message body
 * among them). */
void
md_sql_bind_text (sqlite3_stmt *s, int i, const char *text)
{
	if (text)
		sqlite3_bind_text (s, i, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null (s, i);
}

char *
md_sql_col_text (sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text (s, i);
	return t ? g_strdup ((const char *) t) : NULL;
}

gboolean
md_sql_step_done (MdStore *store, sqlite3_stmt *s, const char *what, GError **error)
{
	int rc = sqlite3_step (s);
	sqlite3_reset (s);
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, what);
		return FALSE;
	}
	return TRUE;
}

GArray *
md_sql_ids (MdStore *store, sqlite3_stmt *s, const char *what, GError **error)
{
	GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint64));
	int rc;
	while ((rc = sqlite3_step (s)) == SQLITE_ROW) {
		gint64 id = sqlite3_column_int64 (s, 0);
		g_array_append_val (ids, id);
	}
	sqlite3_reset (s);
	if (rc != SQLITE_DONE) {
		md_store_set_error (store, error, what);
		g_array_unref (ids);
		return NULL;
	}
	return ids;
}
