/* schema.sql.h - the database schema, one migration per version.
 * Migrations only ever move forward; each runs in one transaction and
 * ends by setting PRAGMA user_version.  Never edit a released step: add
 * the next one. */
#ifndef MD_SCHEMA_SQL_H
#define MD_SCHEMA_SQL_H

static const char *const md_schema_migrations[] = {
	/* version 1 */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
	"CREATE TABLE organizations (\n"
	"  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
	"  created_at INTEGER NOT NULL);\n"
	"CREATE TABLE org_domains (\n"
	"  domain TEXT PRIMARY KEY COLLATE NOCASE,\n"
	"  org_id INTEGER NOT NULL REFERENCES organizations(id));\n"
	"CREATE TABLE people (\n"
	"  id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE, name TEXT,\n"
	"  is_agent INTEGER NOT NULL DEFAULT 0, bouncing INTEGER NOT NULL DEFAULT 0,\n"
	"  created_at INTEGER NOT NULL);\n"
	"CREATE INDEX people_agents ON people(id) WHERE is_agent;\n"
	"CREATE TABLE memberships (\n"
	"  org_id INTEGER NOT NULL REFERENCES organizations(id),\n"
	"  person_id INTEGER NOT NULL REFERENCES people(id),\n"
	"  PRIMARY KEY (org_id, person_id));\n"
	"CREATE INDEX memberships_person ON memberships(person_id);\n"
	"CREATE TABLE tickets (\n"
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL,\n"
	"  category TEXT NOT NULL, priority TEXT NOT NULL, status TEXT NOT NULL,\n"
	"  requester_id INTEGER REFERENCES people(id),\n"
	"  organization_id INTEGER REFERENCES organizations(id),\n"
	"  shared INTEGER NOT NULL DEFAULT 0,\n"
	"  assignee_id INTEGER REFERENCES people(id),\n"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,\n"
	"  first_response_due INTEGER, first_response_at INTEGER, resolved_at INTEGER,\n"
	"  status_changed_at INTEGER NOT NULL, due_at INTEGER,\n"
	"  linked_ticket_id INTEGER REFERENCES tickets(id),\n"
	"  flag TEXT, tags TEXT);\n"
	"CREATE INDEX tickets_requester ON tickets(requester_id);\n"
	"CREATE INDEX tickets_org ON tickets(organization_id) WHERE organization_id IS NOT NULL;\n"
	"CREATE INDEX tickets_status ON tickets(status);\n"
	"CREATE TABLE participants (\n"
	"  ticket_id INTEGER NOT NULL REFERENCES tickets(id),\n"
	"  person_id INTEGER NOT NULL REFERENCES people(id),\n"
	"  PRIMARY KEY (ticket_id, person_id));\n"
	"CREATE TABLE messages (\n"
	"  id INTEGER PRIMARY KEY, ticket_id INTEGER REFERENCES tickets(id),\n"
	"  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),\n"
	"  message_id TEXT, from_addr TEXT, from_name TEXT, subject TEXT,\n"
	"  internal INTEGER NOT NULL DEFAULT 0, flag TEXT,\n"
	"  body TEXT NOT NULL, full_text TEXT NOT NULL,\n"
	"  raw_sha256 TEXT, raw_size INTEGER NOT NULL DEFAULT 0,\n"
	"  created_at INTEGER NOT NULL);\n"
	"CREATE INDEX messages_ticket ON messages(ticket_id, id);\n"
	"CREATE TABLE attachments (\n"
	"  id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL REFERENCES messages(id),\n"
	"  filename TEXT NOT NULL, content_type TEXT NOT NULL, size INTEGER NOT NULL,\n"
	"  sha256 TEXT NOT NULL, depth INTEGER NOT NULL DEFAULT 0,\n"
	"  inline INTEGER NOT NULL DEFAULT 0);\n"
	"CREATE INDEX attachments_message ON attachments(message_id);\n"
	/* Every Message-ID we know, received or sent, for threading. */
	"CREATE TABLE message_ids (\n"
	"  message_id TEXT PRIMARY KEY, ticket_id INTEGER NOT NULL REFERENCES tickets(id));\n"
	/* What was received, by Message-ID or raw hash, for dedupe. */
	"CREATE TABLE received (\n"
	"  dedupe_key TEXT PRIMARY KEY, message_row_id INTEGER NOT NULL REFERENCES messages(id));\n"
	"CREATE TABLE history (\n"
	"  id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL REFERENCES tickets(id),\n"
	"  at INTEGER NOT NULL, actor TEXT NOT NULL, field TEXT NOT NULL,\n"
	"  old_value TEXT, new_value TEXT);\n"
	"CREATE INDEX history_ticket ON history(ticket_id, id);\n"
	"CREATE TABLE fields (\n"
	"  ticket_id INTEGER NOT NULL REFERENCES tickets(id), name TEXT NOT NULL,\n"
	"  value TEXT NOT NULL, PRIMARY KEY (ticket_id, name));\n"
	"CREATE TABLE outbox (\n"
	"  id INTEGER PRIMARY KEY, ticket_id INTEGER REFERENCES tickets(id),\n"
	"  kind TEXT NOT NULL, mail_from TEXT NOT NULL, rcpt_to TEXT NOT NULL,\n"
	"  message_id TEXT NOT NULL, raw_sha256 TEXT NOT NULL,\n"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),\n"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,\n"
	"  last_error TEXT, created_at INTEGER NOT NULL, sent_at INTEGER);\n"
	"CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE state = 'queued';\n"
	"CREATE INDEX outbox_rcpt ON outbox(rcpt_to, kind, created_at);\n"
	/* Small composed messages live here until sent: the commit that
	 * queues them makes them durable, with no fsync of their own. */
	"CREATE TABLE outbox_blobs (sha256 TEXT PRIMARY KEY, raw BLOB NOT NULL);\n"
	"CREATE TABLE timers (\n"
	"  id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL REFERENCES tickets(id),\n"
	"  kind TEXT NOT NULL, due_at INTEGER NOT NULL, arg TEXT NOT NULL DEFAULT '',\n"
	"  done_at INTEGER, UNIQUE (ticket_id, kind, arg));\n"
	"CREATE INDEX timers_due ON timers(due_at) WHERE done_at IS NULL;\n"
	"CREATE TABLE imap_state (\n"
	"  mailbox TEXT PRIMARY KEY, uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL);\n",
	/* version 2: a person's tickets as participant (ticket list --requester,
	 * #list) without reading every participant row */
	"CREATE INDEX participants_person ON participants(person_id, ticket_id);\n",
	/* version 3: messages.full_text '' means "the same as body", so an
	 * untrimmed text is stored once (older rows keep their copy; an older
	 * maildesk must not read the new ones as empty) */
	"SELECT 1;\n",
	/* version 4: purge (purge.h).  Files whose rows a purge deleted wait
	 * here until no row names them.  The two indexes are partial, and a
	 * new ticket is in neither (no link unless it follows up a closed
	 * one, no assignee): ingest does not write them.  The tables whose
	 * ticket or hash columns no index covers, purge reads whole once per
	 * batch or per run instead (purge.c): an index there would cost
	 * every ingest. */
	"CREATE TABLE purge_files (\n"
	"  sha256 TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('raw', 'blob')),\n"
	"  PRIMARY KEY (sha256, kind)) WITHOUT ROWID;\n"
	"CREATE INDEX tickets_linked ON tickets(linked_ticket_id) WHERE linked_ticket_id IS NOT NULL;\n"
	"CREATE INDEX tickets_assignee ON tickets(assignee_id) WHERE assignee_id IS NOT NULL;\n",
	/* version 5: merged tickets (merge.h).  A ticket merged into another
	 * names it; mail that still finds the old one goes on to the new.
	 * The index is partial: ingest never writes it. */
	"ALTER TABLE tickets ADD COLUMN merged_into_id INTEGER REFERENCES tickets(id);\n"
	"CREATE INDEX tickets_merged ON tickets(merged_into_id) WHERE merged_into_id IS NOT NULL;\n",
};

#endif
