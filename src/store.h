/* store.h - everything maildesk keeps, behind one interface (DESIGN 10).
 *
 * SQLite today: WAL, synchronous=FULL, the schema versioned and migrated
 * forward at open, every statement prepared with bound parameters.  One
 * MdStore is one connection, used by one thread at a time.  Times are
 * Unix seconds (UTC); 0 means "not set" and shows as null in JSON. */
#ifndef MD_STORE_H
#define MD_STORE_H

#include <glib.h>

#include "turn.h"

typedef struct _MdStore MdStore;

#define MD_STORE_SCHEMA_VERSION 5

typedef enum {
	MD_STORE_READ_WRITE = 0,
	MD_STORE_READ_ONLY = 1 << 0,
} MdStoreFlags;

/* Opens (creating and migrating when writable) DATA_DIR/maildesk.db.
 * busy_timeout_ms bounds waiting for another writer; past it a write
 * fails with MD_ERROR_DB_BUSY. Free with md_store_close. */
MdStore *md_store_open (const char *db_path, MdStoreFlags flags, int busy_timeout_ms, GError **error);
void md_store_close (MdStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdStore, md_store_close)

int md_store_schema_version (MdStore *store);

/* For a connection whose commits answer no one (the outbox sender's
 * claims and marks): commits reach the WAL without an fsync each, and
 * are made durable by the next checkpoint or fsync'd commit of any
 * connection.  A power cut may lose the last marks, which at-least-once
 * delivery allows (DESIGN 10 asks synchronous=FULL of what answers a
 * sender). */
gboolean md_store_lazy_commits (MdStore *store, GError **error);

/* Makes md_store_begin take TURN (turn.h) before SQLite's lock, until
 * the commit or rollback: for the connections of one process, which then
 * get to write in the order they asked.  TURN must outlive STORE.  Writes
 * outside md_store_begin do not take it (they are served by SQLite's busy
 * handler, fairly or not). */
void md_store_share_turn (MdStore *store, MdTurn *turn);
/* Whether md_store_begin would wait for another connection of the
 * process now (FALSE without a shared turn).  A hint: it may change. */
gboolean md_store_would_wait (MdStore *store);

/* Transactions.  begin takes the write lock at once (BEGIN IMMEDIATE).
 * Savepoints nest inside a transaction so one failed ingest in a group
 * commit leaves the others in place. */
gboolean md_store_begin (MdStore *store, GError **error);
gboolean md_store_commit (MdStore *store, GError **error);
void md_store_rollback (MdStore *store);
gboolean md_store_savepoint (MdStore *store, GError **error);
gboolean md_store_release (MdStore *store, GError **error);
void md_store_rollback_to (MdStore *store);

/* Checkpoints: copying the WAL back into the database.  Every connection
 * does it itself once a commit leaves the WAL 4,000 pages long (16 MiB).
 * The daemon's writer hands that work to a thread of its own
 * (checkpointer.c): set_wal_hook has HOOK called on STORE's thread after
 * each of STORE's commits, with the frames the WAL then holds; STORE
 * still checkpoints itself past 4,000 pages, so the WAL stays bounded
 * however the hook fares.  A NULL hook restores the default. */
typedef void (*MdStoreWalHook) (MdStore *store, guint frames, gpointer user_data);
void md_store_set_wal_hook (MdStore *store, MdStoreWalHook hook, gpointer user_data);
/* PASSIVE copies the frames no reader still needs, waiting for no one.
 * RESTART also waits, 10 ms at most, for writers and for readers of the
 * WAL, so that all of it is copied and the next transaction starts the
 * WAL over (if nobody stayed longer).  *FRAMES_R is the frames in the
 * WAL, *COPIED_R how many of them are now in the database.
 * MD_ERROR_DB_BUSY when another connection is checkpointing, or when
 * RESTART waited in vain (what could be copied was). */
typedef enum {
	MD_STORE_CHECKPOINT_PASSIVE,
	MD_STORE_CHECKPOINT_RESTART,
} MdStoreCheckpoint;
gboolean md_store_checkpoint (MdStore *store, MdStoreCheckpoint mode, guint *frames_r, guint *copied_r,
                              GError **error);

/* ---- people and organizations ---- */
typedef struct {
	gint64 id;
	char *email;
	char *name;
	gboolean is_agent;
	gboolean bouncing;
} MdPerson;
void md_person_free (MdPerson *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdPerson, md_person_free)

/* Finds or creates the person with this address (case-insensitive);
 * a known name is kept, a missing one filled in. */
gboolean md_store_person_ensure (MdStore *store, const char *email, const char *name, gint64 *id_r, GError **error);
/* NULL with MD_ERROR_NOT_FOUND when absent. Free with md_person_free. */
MdPerson *md_store_person_get (MdStore *store, gint64 id, GError **error);
MdPerson *md_store_person_find (MdStore *store, const char *email, GError **error);
gboolean md_store_agent_add (MdStore *store, const char *email, const char *name, gint64 *id_r, GError **error);
/* Takes agent standing from EMAIL (lowercase); *REMOVED_R says whether it
 * had any in the database.  The [desk] agents of the configuration are
 * not the store's to take. */
gboolean md_store_agent_remove (MdStore *store, const char *email, gboolean *removed_r, GError **error);
/* Ids of the tickets assigned to EMAIL that are not resolved, in id
 * order; free with g_array_unref. */
GArray *md_store_assigned_open_tickets (MdStore *store, const char *email, GError **error);
gboolean md_store_set_bouncing (MdStore *store, const char *email, gboolean bouncing, GError **error);

/* Adds organization NAME (or finds it) and maps DOMAIN (may be NULL) to
 * it; a DOMAIN another organization has is refused (MD_ERROR_DENIED,
 * naming it) and nothing is added. */
gboolean md_store_org_add (MdStore *store, const char *name, const char *domain, gint64 *id_r, GError **error);
gboolean md_store_org_add_member (MdStore *store, gint64 org_id, const char *email, GError **error);
/* The organization of a person: by membership, else by the domain of
 * their address. 0 when none. */
gint64 md_store_org_of (MdStore *store, const char *email, GError **error);
/* The organization named NAME (without case), 0 when none. */
gint64 md_store_org_find (MdStore *store, const char *name, GError **error);
/* Name of an organization, or NULL; free with g_free. */
char *md_store_org_name (MdStore *store, gint64 org_id);
gboolean md_store_org_is_member (MdStore *store, gint64 org_id, const char *email);
/* Emails of an organization's members (by membership), every one of them
 * however many (each once: an address is one person); free with
 * g_ptr_array_unref. */
GPtrArray *md_store_org_members (MdStore *store, gint64 org_id, GError **error);
/* Emails of every agent, however many (each once); free with
 * g_ptr_array_unref. */
GPtrArray *md_store_agents (MdStore *store, GError **error);

/* ---- tickets ---- */
typedef struct {
	gint64 id;
	char *subject;
	const char *category;    /* canonical static names from catalog.h */
	const char *priority;
	const char *status;
	gint64 requester_id;     /* 0 when the sender is unknown */
	char *requester;         /* email, filled by get */
	char *requester_name;    /* their name as the desk knows it, or NULL; filled by get */
	gint64 organization_id;
	char *organization;      /* name, filled by get */
	gboolean shared;
	gint64 assignee_id;
	char *assignee;          /* email, filled by get */
	char *assignee_name;     /* their name as the desk knows it, or NULL; filled by get */
	gint64 created_at, updated_at;
	gint64 first_response_due, first_response_at, resolved_at;
	gint64 status_changed_at;
	gint64 due_at;           /* delivery estimate (intake forms) */
	gint64 linked_ticket_id; /* the resolved ticket this one follows up */
	gint64 merged_into_id;   /* the ticket this one was merged into, or 0 */
	char *flag;              /* "needs human: ...", "quarantined", ... or NULL */
	char *tags;              /* comma-separated, or NULL */
	/* Not stored: while set, md_schedule_ticket leaves the timers alone
	 * and whoever set it arms them once it is done changing the ticket. */
	gboolean timers_held;
} MdTicket;
void md_ticket_free (MdTicket *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdTicket, md_ticket_free)

/* Moves SOURCE's messages (and their Message-IDs), participants and the
 * fields INTO lacks to INTO, makes SOURCE's requester (when another) a
 * participant of INTO, and marks SOURCE, and what was merged into it,
 * merged into INTO.  Statuses, history and timers are the caller's. */
gboolean md_store_ticket_merge (MdStore *store, const MdTicket *source, const MdTicket *into, GError **error);
/* Inserts t (id ignored) and sets t->id. */
gboolean md_store_ticket_insert (MdStore *store, MdTicket *t, GError **error);
/* Writes every field of t back. */
gboolean md_store_ticket_update (MdStore *store, const MdTicket *t, GError **error);
/* Writes back t's status, status_changed_at and resolved_at only, for a
 * caller whose other changes to t are written already. */
gboolean md_store_ticket_update_status (MdStore *store, const MdTicket *t, GError **error);
MdTicket *md_store_ticket_get (MdStore *store, gint64 id, GError **error);

typedef struct {
	const char *status;     /* NULL = any */
	const char *category;
	const char *priority;
	const char *requester;  /* with org_id: tickets this person may see */
	gint64 org_id;
	int limit;              /* 0 = no limit */
	gboolean with_due_at;   /* only open tickets with a delivery estimate */
	gboolean open_first;    /* with requester: unresolved first, each newest first; else id order */
	gboolean open_only;     /* only unresolved tickets */
	const char *assignee;   /* only tickets assigned to this address; "" = only unassigned ones */
	gint64 organization_id; /* only this organization's tickets; 0 = any */
	gboolean flagged_only;  /* only tickets with a flag (held for a human) */
} MdTicketFilter;
/* MdTicket* in id order (or as FILTER's open_first says); free with
 * g_ptr_array_unref. */
GPtrArray *md_store_ticket_list (MdStore *store, const MdTicketFilter *filter, GError **error);
/* FUNC for each ticket of md_store_ticket_list, in id order, as it is
 * read: a list as long as the desk is old never stands in memory whole.
 * FUNC owns the ticket, and must not use the store. */
typedef void (*MdTicketFunc) (MdTicket *ticket, gpointer data);
gboolean md_store_ticket_foreach (MdStore *store, const MdTicketFilter *filter, MdTicketFunc func, gpointer data,
                                  GError **error);

/* Ids of a requester's tickets, newest first, at most LIMIT, leaving out
 * EXCEPT (through the requester index, whatever the desk's size).
 * gint64 ids; free with g_array_unref. */
GArray *md_store_requester_tickets (MdStore *store, gint64 requester_id, gint64 except, guint limit, GError **error);

gboolean md_store_participant_add (MdStore *store, gint64 ticket_id, gint64 person_id, GError **error);
gboolean md_store_is_participant (MdStore *store, gint64 ticket_id, const char *email);
/* Takes EMAIL (lowercase) off every ticket it takes part in; the ids of
 * those tickets, in id order.  Free with g_array_unref. */
GArray *md_store_participations_end (MdStore *store, const char *email, GError **error);
/* Emails, free with g_ptr_array_unref. */
GPtrArray *md_store_participants (MdStore *store, gint64 ticket_id, GError **error);

/* ---- messages, attachments, message-ids ---- */
typedef struct {
	char *filename;
	char *content_type;
	gint64 size;
	char *sha256;
	int depth;
	gboolean is_inline;
} MdStoredAttachment;

typedef struct {
	gint64 id;
	gint64 ticket_id;        /* 0: kept but attached to no ticket (dropped, orphan bounce) */
	gboolean outgoing;
	char *message_id;        /* Message-ID without <>, or NULL */
	char *from_addr;
	char *from_name;
	char *subject;
	gboolean internal;
	char *flag;              /* "unverified sender", "unverified agent", "needs human", "bounce", ... */
	char *body;              /* trimmed text */
	char *full_text;         /* untrimmed text; NULL on insert: the same as body */
	char *raw_sha256;        /* raw message in the spool */
	gint64 raw_size;
	gint64 created_at;
	GPtrArray *attachments;  /* MdStoredAttachment* */
} MdStoredMessage;
void md_stored_message_free (MdStoredMessage *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdStoredMessage, md_stored_message_free)

/* Inserts m with its attachments and its Message-ID; sets m->id. */
gboolean md_store_message_insert (MdStore *store, MdStoredMessage *m, GError **error);
/* Messages of a ticket in order; free with g_ptr_array_unref. */
GPtrArray *md_store_ticket_messages (MdStore *store, gint64 ticket_id, GError **error);

/* Message-IDs of a ticket's thread for References: the first message's
 * and the newest ones, oldest first, at most MAX.  CUSTOMER_SIDE: only
 * what the customer side has seen, the desk's mail and mail not from an
 * agent (an agent's own mail reaches customers only as the desk's copy,
 * and its Message-ID names the agent's machine).  Free with
 * g_ptr_array_unref. */
GPtrArray *md_store_ticket_thread_ids (MdStore *store, gint64 ticket_id, guint max, gboolean customer_side,
                                       GError **error);

/* Dedupe: the message row already holding this key ("<msgid>" or "sha256:HEX"), 0 if none. */
gint64 md_store_seen (MdStore *store, const char *dedupe_key, GError **error);
gboolean md_store_mark_seen (MdStore *store, const char *dedupe_key, gint64 message_row_id, GError **error);
/* The ticket a stored message row belongs to; 0 when none. */
gint64 md_store_message_ticket (MdStore *store, gint64 message_row_id, GError **error);
/* The ticket a Message-ID belongs to (ours or received), 0 if none. */
gint64 md_store_ticket_by_message_id (MdStore *store, const char *message_id, GError **error);
gboolean md_store_message_id_add (MdStore *store, const char *message_id, gint64 ticket_id, GError **error);

/* ---- history ---- */
typedef struct {
	gint64 at;
	char *actor;
	char *field;
	char *old_value;
	char *new_value;
} MdHistoryEntry;
void md_history_entry_free (MdHistoryEntry *h);
gboolean md_store_history_add (MdStore *store, gint64 ticket_id, gint64 at, const char *actor,
                               const char *field, const char *old_value, const char *new_value, GError **error);
GPtrArray *md_store_ticket_history (MdStore *store, gint64 ticket_id, GError **error);

/* ---- intake fields ---- */
gboolean md_store_field_set (MdStore *store, gint64 ticket_id, const char *name, const char *value, GError **error);
/* name -> value; free with g_hash_table_unref. */
GHashTable *md_store_fields (MdStore *store, gint64 ticket_id, GError **error);

/* ---- key/value settings of the desk (secret-free) ---- */
char *md_store_meta_get (MdStore *store, const char *key);
gboolean md_store_meta_set (MdStore *store, const char *key, const char *value, GError **error);

/* ---- imap state: per polled mailbox, the UIDVALIDITY seen and the
 * highest UID ingested (and moved or flagged) ---- */
/* Both 0 when the mailbox has no state yet (UIDVALIDITY is never 0). */
gboolean md_store_imap_state_get (MdStore *store, const char *mailbox, guint32 *uidvalidity_r,
                                  guint32 *last_uid_r, GError **error);
gboolean md_store_imap_state_set (MdStore *store, const char *mailbox, guint32 uidvalidity, guint32 last_uid,
                                  GError **error);

/* For modules that add their own statements (outbox, timers, imap
 * state) without exposing SQLite in their headers; sql.h has the
 * helpers they share. */
struct sqlite3;
struct sqlite3_stmt;
struct sqlite3 *md_store_db (MdStore *store);
/* The store's cached statement for SQL (a string literal: the cache is
 * keyed by its address), reset and unbound.  Owned by the store: reset
 * it when done (md_store_statement_release), never finalize it. */
struct sqlite3_stmt *md_store_statement (MdStore *store, const char *sql, GError **error);
void md_store_statement_release (struct sqlite3_stmt *s);
/* Converts the connection's last error to MD_ERROR (BUSY -> DB_BUSY, FULL -> DISK_FULL). */
void md_store_set_error (MdStore *store, GError **error, const char *what);

#endif
