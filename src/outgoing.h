/* outgoing.h - a message to compose later: the desk's mail queued as what
 * it will say, composed with GMime only when the sender sends it.
 *
 * Composing a mail costs more than all the database work of queueing
 * it, and ingest runs on the one writer thread every session waits for.
 * So notify checks and fixes everything that decides the bytes (text,
 * recipients, Message-ID, Date, attachment files) inside the ingest
 * transaction, stores that as a spec in the outbox, and the sender
 * thread composes it: the same message at every attempt (Message-ID,
 * Date, headers, text; only GMime's random MIME boundary differs), so a
 * retry or a resend after a crash is the same mail. */
#ifndef MD_OUTGOING_H
#define MD_OUTGOING_H

#include <glib.h>

#include "compose.h"

/* O checked as md_compose_to_bytes would check it (md_compose_check),
 * with its Message-ID (O's, or a new one: *message_id_r, free with g_free)
 * and its date (O's, or md_now ()) fixed, as bytes to keep.  Attachment
 * files are named, not read: they must stay where they are (the spool's
 * blobs do). */
GBytes *md_outgoing_spec_new (const MdOutgoing *o, char **message_id_r, GError **error);

/* Whether BLOB, as kept in the outbox, is such a spec (a composed
 * message never starts with a NUL byte). */
gboolean md_outgoing_is_spec (GBytes *blob);

/* The composed message of a spec.  MD_ERROR_IO when an attachment file
 * cannot be read, MD_ERROR_INVALID when the spec is damaged. */
GBytes *md_outgoing_compose (GBytes *spec, GError **error);

#endif
