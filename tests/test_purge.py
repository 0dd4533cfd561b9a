#!/usr/bin/env python3
"""maildesk purge: retention (--resolved-before DAYS) and erasure
(--person EMAIL).  Rows and spool files gone or kept exactly, a file two
tickets share kept while one still names it, --dry-run changing nothing,
a rerun after a crash finishing the work, a second run doing nothing.
"""
import hashlib
import json
import os
import sqlite3
import time

from mdtest import TOP_SRCDIR, Desk, Lmtp, Server, free_port, message, run_tests

NOW = "2026-12-01T10:00:00+02:00"
LATER = "2027-01-15T10:00:00+02:00"   # 45 days on
ENV = {"MAILDESK_NOW": NOW}
LATER_ENV = {"MAILDESK_NOW": LATER}

SHARED = b"the same log file, attached to two tickets\r\n"
OWN = b"a screenshot only the first ticket has\r\n"


def with_files(subject, msgid, payloads, sender="bob@customer.example", headers=""):
    parts = "".join("--b\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Disposition: attachment; filename=f{i}.bin\r\n"
                    "Content-Transfer-Encoding: 8bit\r\n\r\n" + p.decode() + "\r\n"
                    for i, p in enumerate(payloads))
    return (f"From: Bob <{sender}>\r\nTo: support@support.example.com\r\n{headers}"
            f"Subject: {subject}\r\nMessage-ID: <{msgid}@customer.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            f"See attached.\r\n{parts}--b--\r\n").encode()


def db(desk):
    return sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"))


def rows(desk, sql, *args):
    with db(desk) as c:
        return c.execute(sql, args).fetchall()


def count(desk, table, where="1", *args):
    return rows(desk, f"SELECT count(*) FROM {table} WHERE {where}", *args)[0][0]


def spool_files(desk):
    """Every file under raw/ and blob/, as 'raw/HEX' or 'blob/HEX'."""
    root = os.path.join(desk.dir, "var", "spool")
    found = set()
    for kind in ("raw", "blob"):
        for d, _, names in os.walk(os.path.join(root, kind)):
            found |= {f"{kind}/{n}" for n in names}
    return found


def age_files(desk):
    """Spool files as a purge finds them a month on: not written just now."""
    old = time.time() - 86400
    for f in spool_files(desk):
        kind, name = f.split("/")
        path = os.path.join(desk.dir, "var", "spool", kind, name[:2], name)
        os.utime(path, (old, old))


def dump(desk):
    with db(desk) as c:
        return "\n".join(c.iterdump())


def purge(desk, *args, env=LATER_ENV, check=True):
    p = desk.run("purge", *args, "--json", env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"purge {args} exited {p.returncode}: {p.stderr.decode()}")
    return json.loads(p.stdout) if p.returncode == 0 else p


def two_tickets(extra_conf=""):
    """Ticket 1 (resolved on NOW) and ticket 2 (open) share an attachment;
    ticket 1 has one of its own too."""
    desk = Desk(extra_conf=extra_conf)
    desk.run("agent", "add", "jane@support.example.com", check=True)
    r = desk.deliver(with_files("first", "first", [SHARED, OWN]), env=ENV)
    assert r.returncode == 0, r.stderr
    r = desk.deliver(with_files("second", "second", [SHARED], headers="Cc: carol@customer.example\r\n"), env=ENV)
    assert r.returncode == 0, r.stderr
    desk.run("ticket", "set", "1", "status=Resolved", env=ENV, check=True)
    age_files(desk)
    return desk


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_retention(tap):
    desk = two_tickets()
    try:
        files = spool_files(desk)
        first_raw = rows(desk, "SELECT raw_sha256 FROM messages WHERE ticket_id = 1")
        second_raw = rows(desk, "SELECT raw_sha256 FROM messages WHERE ticket_id = 2")
        tap.ok({f"blob/{sha(SHARED)}", f"blob/{sha(OWN)}"} <= files, "both attachments are spool files",
               sorted(files))
        queued = count(desk, "outbox", "ticket_id = 1 AND state = 'queued'")
        msgs = count(desk, "messages", "ticket_id = 1")
        tap.ok(queued >= 1, "ticket 1's acknowledgement is still queued")

        before = dump(desk)
        dry = purge(desk, "--resolved-before", "30", "--dry-run")
        tap.eq((dry["dry_run"], dry["tickets"], dry["messages"], dry["attachments"]), (True, 1, msgs, 2),
               "--dry-run says what would go")
        tap.eq(dry["outbox_queued"], queued, "--dry-run counts the queued mail it would drop")
        tap.eq(dry["files"], 2 + queued, "--dry-run counts the raw message, the own attachment, the queued blobs")
        tap.eq(dump(desk), before, "--dry-run changes no row")
        tap.eq(spool_files(desk), files, "--dry-run removes no file")

        early = purge(desk, "--resolved-before", "60")
        tap.eq(early["tickets"], 0, "a ticket resolved 45 days ago is kept by --resolved-before 60")
        tap.eq(purge(desk, "--resolved-before", "1440h", "--dry-run")["tickets"], 0,
               "and by 1440h (elapsed time, as in the configuration)")
        tap.eq(purge(desk, "--resolved-before", "30d", "--dry-run"), dry, "30d is 30 days")
        bad = desk.run("purge", "--resolved-before", "30bd", env=LATER_ENV)
        tap.ok(bad.returncode == 64 and b"business" in bad.stderr, "business days are refused", bad.stderr)

        got = purge(desk, "--resolved-before", "30")
        tap.eq((got["tickets"], got["messages"], got["attachments"], got["outbox_queued"]), (1, msgs, 2, queued),
               "the resolved ticket goes with its message, attachments and queued mail")
        tap.eq({**dry, "dry_run": False}, got, "--dry-run said exactly that")
        tap.eq([r[0] for r in rows(desk, "SELECT id FROM tickets")], [2], "the open ticket stays")
        for table in ("history", "participants", "message_ids", "timers", "fields", "outbox"):
            tap.eq(count(desk, table, "ticket_id = 1"), 0, f"no {table} row of ticket 1 is left")
        tap.eq(count(desk, "messages", "ticket_id = 1"), 0, "no message of ticket 1 is left")
        tap.eq(count(desk, "outbox_blobs"), count(desk, "outbox", "ticket_id = 2"),
               "only ticket 2's queued mail is left in outbox_blobs")
        tap.eq(rows(desk, "SELECT body, from_addr, raw_sha256 FROM messages WHERE ticket_id IS NULL"),
               [("", None, None)], "a tombstone without content keeps the dedupe key")
        left = spool_files(desk)
        tap.ok(f"blob/{sha(SHARED)}" in left, "the attachment ticket 2 shares is kept", sorted(left))
        tap.ok(f"blob/{sha(OWN)}" not in left, "the attachment only ticket 1 had is removed", sorted(left))
        tap.ok(f"raw/{first_raw[0][0]}" not in left and f"raw/{second_raw[0][0]}" in left,
               "ticket 1's raw message is removed, ticket 2's kept", sorted(left))
        tap.eq(count(desk, "purge_files"), 0, "no file is left waiting")
        tap.eq(desk.show(2)["messages"][0]["attachments"][0]["sha256"], sha(SHARED), "ticket 2 still shows its file")

        again = purge(desk, "--resolved-before", "30")
        tap.eq([again[k] for k in ("tickets", "messages", "attachments", "outbox", "files")], [0] * 5,
               "a second run is a no-op")

        r = desk.deliver(with_files("first", "first", [SHARED, OWN]), env=LATER_ENV)
        tap.eq((r.returncode, r.stdout.decode().strip()), (0, "duplicate"),
               "the purged ticket's message redelivered is a duplicate")
        tap.eq([t["id"] for t in desk.tickets()], [2], "it resurrects nothing")
        reply = message(subject="Re: first", sender="bob@customer.example",
                        headers=["In-Reply-To: <first@customer.example>"])
        desk.deliver(reply, env=LATER_ENV)
        tap.eq([t["id"] for t in desk.tickets()], [2, 3], "a reply to it opens a new ticket")
    finally:
        desk.cleanup()


def test_never_open_tickets(tap):
    desk = two_tickets()
    try:
        desk.run("ticket", "set", "1", "status=Reopened", env=ENV, check=True)
        got = purge(desk, "--resolved-before", "0")
        tap.eq(got["tickets"], 0, "a reopened (once resolved) ticket is never purged")
        tap.eq(count(desk, "tickets"), 2, "both tickets stay")
    finally:
        desk.cleanup()


def test_recent_files_wait(tap):
    """A file written moments ago may be a message being stored now: it
    waits for a later run."""
    desk = two_tickets()
    try:
        own = os.path.join(desk.dir, "var", "spool", "blob", sha(OWN)[:2], sha(OWN))
        os.utime(own, None)
        got = purge(desk, "--resolved-before", "30")
        tap.eq(got["files_waiting"], 1, "a fresh unreferenced file is left for later")
        tap.ok(os.path.exists(own), "it is still in place")
        age_files(desk)
        got = purge(desk, "--resolved-before", "30")
        tap.eq((got["tickets"], got["files"], got["files_waiting"]), (0, 1, 0), "the next run removes it")
        tap.ok(not os.path.exists(own), "and it is gone")
    finally:
        desk.cleanup()


def test_crash(tap):
    """Killed after the rows committed, or after a file was unlinked but
    before its note went: the next run removes what is left."""
    for point in ("rows", "unlink"):
        desk = two_tickets()
        try:
            p = desk.run("purge", "--resolved-before", "30", env={**LATER_ENV, "MAILDESK_PURGE_CRASH_AFTER": point})
            tap.eq(p.returncode, 70, f"the process dies after {point}")
            tap.eq(count(desk, "tickets", "id = 1"), 0, f"crash after {point}: the rows are gone")
            tap.ok(count(desk, "purge_files") > 0, f"crash after {point}: files wait in purge_files")
            dry = purge(desk, "--resolved-before", "30", "--dry-run")
            got = purge(desk, "--resolved-before", "30")
            tap.eq({**dry, "dry_run": False}, got, f"crash after {point}: --dry-run counts the files left waiting")
            tap.eq(got["tickets"], 0, f"crash after {point}: the rerun deletes no ticket twice")
            left = spool_files(desk)
            tap.ok(f"blob/{sha(OWN)}" not in left and f"blob/{sha(SHARED)}" in left,
                   f"crash after {point}: the rerun removes the orphaned file, keeps the shared one", sorted(left))
            tap.eq(count(desk, "purge_files"), 0, f"crash after {point}: nothing waits any more")
        finally:
            desk.cleanup()


def stopped_purge(desk, *args):
    """A purge started in the background and stopped (SIGSTOP) once its
    files' snapshot is read, holding its lock."""
    import subprocess
    from mdtest import MAILDESK
    env = {**os.environ, **LATER_ENV, "MAILDESK_PURGE_STOP_AFTER": "snapshot"}
    p = subprocess.Popen([MAILDESK, "-c", desk.conf_path, "purge", *args, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    for _ in range(500):
        with open(f"/proc/{p.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return p, True
        time.sleep(0.02)
    return p, False


def test_row_added_during_purge(tap):
    """A row naming a noted file added after the purge read the tables
    (as a kept copy of an agent's reply adds, without writing the file
    again) keeps the file: the rows added since are read under the lock."""
    import signal
    desk = two_tickets()
    try:
        p, stopped = stopped_purge(desk, "--resolved-before", "30")
        tap.ok(stopped, "purge stops after its snapshot")
        with db(desk) as c:
            c.execute("INSERT INTO attachments (message_id, filename, content_type, size, sha256) "
                      "SELECT id, 'again.bin', 'application/octet-stream', ?, ? FROM messages WHERE ticket_id = 2",
                      (len(OWN), sha(OWN)))
        os.kill(p.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=60)
        tap.eq(p.returncode, 0, "it finishes", err)
        tap.eq(json.loads(out)["tickets"], 1, "ticket 1 goes")
        tap.ok(f"blob/{sha(OWN)}" in spool_files(desk), "the file the new row names stays", sorted(spool_files(desk)))
        tap.eq(count(desk, "purge_files"), 0, "and its note is done with")
    finally:
        desk.cleanup()


def test_kept_copies(tap):
    """The copy of an agent's reply kept on the ticket names the files the
    customer was sent (the agent's own blobs): a purge deletes its rows
    with the ticket's, and a file goes only when neither names it."""
    from test_workflow import token_address
    desk = two_tickets()
    try:
        tok = token_address(desk, 1)
        agent_file = b"the agent's patch\r\n"
        r = desk.deliver(with_files("Re: [SUP-1] first", "agent", [agent_file, SHARED],
                                    sender="jane@support.example.com"), "--recipient", tok, env=ENV)
        tap.eq(r.returncode, 0, "the agent's reply with two files is taken", r.stderr)
        copy = [m for m in desk.show(1)["messages"] if m["flag"] == "sent: agent-reply"]
        tap.eq([a["sha256"] for m in copy for a in m["attachments"]], [sha(agent_file), sha(SHARED)],
               "its kept copy names both files")
        desk.run("ticket", "set", "1", "status=Resolved", env=ENV, check=True)
        age_files(desk)
        rows_before = count(desk, "attachments", "message_id IN (SELECT id FROM messages WHERE ticket_id = 1)")
        got = purge(desk, "--resolved-before", "30")
        tap.eq((got["tickets"], got["attachments"]), (1, rows_before), "the purge deletes every attachment row")
        tap.eq(rows_before, 6, "the customer's two, the agent's two and the copy's two")
        left = spool_files(desk)
        tap.ok(f"blob/{sha(agent_file)}" not in left and f"blob/{sha(OWN)}" not in left,
               "the files only ticket 1 named are removed", sorted(left))
        tap.ok(f"blob/{sha(SHARED)}" in left, "the one ticket 2 names is kept", sorted(left))
        tap.eq(count(desk, "purge_files"), 0, "no file is left waiting")
    finally:
        desk.cleanup()


def integrity(desk):
    """Rows that name no message, and rows on no ticket that no dedupe
    key names (empty rows nothing needs)."""
    return (count(desk, "received", "message_row_id NOT IN (SELECT id FROM messages)"),
            count(desk, "messages", "ticket_id IS NULL AND id NOT IN (SELECT message_row_id FROM received)"))


def test_script_reply(tap):
    """A reply written with `ticket reply` was never received: it has no
    dedupe key, and goes with its ticket, leaving no empty row.  A
    message an erasure emptied (no raw message left, and this one had no
    Message-ID) still has its dedupe key: it stays as a tombstone."""
    desk = two_tickets()
    try:
        r = desk.run("ticket", "reply", "1", input="We fixed it.\n", env=ENV)
        tap.eq(r.returncode, 0, "a reply from a script on ticket 1", r.stderr)
        r = desk.run("ticket", "reply", "2", input="Looking into it.\n", env=ENV)
        tap.eq(r.returncode, 0, "and one on ticket 2", r.stderr)
        tap.eq(count(desk, "messages", "flag = 'from the command line' AND direction = 'in'"), 2,
               "each is an 'in' row with no raw message")
        carol = message(subject="Re: [SUP-2] second", sender="carol@customer.example", msgid=False,
                        body="Same here.\n")
        tap.eq(desk.deliver(carol, env=ENV).returncode, 0, "carol (Cc) writes on ticket 2, without a Message-ID")
        age_files(desk)
        purge(desk, "--person", "carol@customer.example")
        tap.eq(count(desk, "messages", "ticket_id = 2 AND raw_sha256 IS NULL AND message_id IS NULL "
                     "AND body = '[erased on request]'"), 1, "her erasure empties it, raw message and all")
        desk.run("ticket", "set", "2", "status=Resolved", env=ENV, check=True)
        received = count(desk, "received")
        tap.eq(received, 3, "3 received messages: tickets 1 and 2, and carol's; none for the replies")
        age_files(desk)

        dry = purge(desk, "--resolved-before", "30", "--dry-run")
        got = purge(desk, "--resolved-before", "30")
        tap.eq(got["tickets"], 2, "both tickets go")
        tap.eq({**dry, "dry_run": False}, got, "--dry-run said exactly that")
        tap.eq(count(desk, "messages"), 3, "a tombstone per received message is left, nothing else")
        tap.eq(count(desk, "messages", "flag = 'from the command line'"), 0, "no row of the replies is left")
        tap.eq(integrity(desk), (0, 0), "every dedupe key names a row, every row on no ticket a dedupe key")
        r = desk.deliver(carol, env=LATER_ENV)
        tap.eq((r.returncode, r.stdout.decode().strip()), (0, "duplicate"),
               "carol's emptied message redelivered is still a duplicate")
    finally:
        desk.cleanup()


SPAM_RULES = """rule known-spam
  from     /@spam\\.example$/i
  action drop-silently
  stop
"""


def ticketless_desk():
    """A desk whose rules drop mail from spam.example, with mail kept on
    no ticket on NOW: a #list sent alone (answered: its answer waits in
    the outbox) and dropped spam with a file; and a #list on LATER."""
    desk = Desk()
    rules = os.path.join(desk.dir, "spam.rules")
    with open(rules, "w") as f:
        f.write(SPAM_RULES)
    with open(desk.conf_path) as f:
        conf = f.read()
    desk.write_conf(conf.replace(f"rules = {os.path.join(TOP_SRCDIR, 'filters', 'default.rules')}", f"rules = {rules}"))
    lst = message(subject="my tickets", body="#list\n", msgid="list-old")
    spam = with_files("offer", "spam", [OWN], sender="deals@spam.example")
    for m in (lst, spam):
        r = desk.deliver(m, env=ENV)
        assert r.returncode == 0 and r.stdout.decode().strip() == "", (r.stdout, r.stderr)
    r = desk.deliver(message(subject="my tickets", body="#list\n", msgid="list-new"), env=LATER_ENV)
    assert r.returncode == 0, r.stderr
    age_files(desk)
    return desk, lst, spam


def test_ticketless(tap):
    """Retention takes what was kept on no ticket, by when it came: the
    row (a tombstone where a dedupe key names it), its attachments, its
    files, and the mail that answered it."""
    desk, lst, spam = ticketless_desk()
    try:
        tap.eq(count(desk, "tickets"), 0, "no mail opened a ticket")
        tap.eq(rows(desk, "SELECT flag, count(*) FROM messages WHERE ticket_id IS NULL GROUP BY flag ORDER BY flag"),
               [("#list answered; no ticket", 2), ("dropped by rules", 1)], "three messages kept on no ticket")
        tap.eq(count(desk, "outbox", "ticket_id IS NULL"), 2, "both #list are answered")
        files = spool_files(desk)
        tap.ok(f"blob/{sha(OWN)}" in files, "the spam's file is in the spool", sorted(files))
        old = rows(desk, "SELECT id, raw_sha256 FROM messages WHERE message_id IN ('list-old@customer.example', "
                   "'spam@customer.example')")
        new = rows(desk, "SELECT id, raw_sha256 FROM messages WHERE message_id = 'list-new@customer.example'")

        before = dump(desk)
        dry = purge(desk, "--resolved-before", "30", "--dry-run")
        tap.eq(dump(desk), before, "--dry-run changes no row")
        tap.eq(spool_files(desk), files, "--dry-run removes no file")
        tap.eq((dry["tickets"], dry.get("messages_on_no_ticket"), dry["attachments"], dry["outbox"],
                dry["outbox_queued"]), (0, 2, 1, 1, 1), "--dry-run counts the two older ones, the spam's attachment, the older answer")
        tap.eq(dry["files"], 4, "and their files: two raw messages, the spam's file, the queued answer")

        got = purge(desk, "--resolved-before", "30")
        tap.eq({**dry, "dry_run": False}, got, "--dry-run said exactly that")
        tap.eq(rows(desk, "SELECT id, body, from_addr, subject, message_id, raw_sha256, flag FROM messages "
                    "WHERE id IN (?, ?) ORDER BY id", old[0][0], old[1][0]),
               [(i, "", None, None, None, None, "purged") for i, _ in sorted(old)],
               "the older two are tombstones without content")
        tap.eq(rows(desk, "SELECT flag, raw_sha256 FROM messages WHERE id = ?", new[0][0]),
               [("#list answered; no ticket", new[0][1])], "the recent #list is kept as it was")
        tap.eq(count(desk, "attachments"), 0, "the spam's attachment rows are gone")
        tap.eq(count(desk, "outbox", "ticket_id IS NULL"), 1, "the older #list answer is gone, the recent one kept")
        tap.eq(count(desk, "outbox_blobs"), 1, "and only the recent answer's queued message is left")
        left = spool_files(desk)
        tap.eq(files - left, {f"raw/{old[0][1]}", f"raw/{old[1][1]}", f"blob/{sha(OWN)}"},
               "the older ones' raw messages and the spam's file are removed, no other", sorted(files - left))
        tap.eq(count(desk, "purge_files"), 0, "no file is left waiting")
        tap.eq(integrity(desk), (0, 0), "every dedupe key names a row, every row on no ticket a dedupe key")

        for m, what in ((lst, "the #list"), (spam, "the spam")):
            r = desk.deliver(m, env=LATER_ENV)
            tap.eq((r.returncode, r.stdout.decode().strip()), (0, "duplicate"), f"{what} redelivered is a duplicate")
        tap.eq(count(desk, "outbox"), 1, "and is not answered again")
        again = purge(desk, "--resolved-before", "30")
        tap.eq([again.get(k) for k in ("messages_on_no_ticket", "attachments", "outbox", "files")], [0] * 4,
               "a second run is a no-op")
    finally:
        desk.cleanup()


def resolve_all(desk, where="1"):
    with db(desk) as c:
        c.execute("UPDATE tickets SET status = 'Resolved', resolved_at = strftime('%s', '2026-12-01') "
                  f"WHERE {where}")


def dry_then_real(tap, desk, what, *args):
    """--dry-run, then the real run: the dry run's numbers must be the
    real run's.  Returns the real run's."""
    dry = purge(desk, *args, "--dry-run")
    got = purge(desk, *args)
    tap.eq({**dry, "dry_run": False}, got, f"{what}: --dry-run said exactly what the real run did")
    return got


def test_dry_run_shared_files(tap):
    """A file several purged rows share goes once every one of them is
    gone, though each batch of a dry run is rolled back and sees the
    others' rows still there: the dry run counts it all the same, across
    passes (mail on no ticket, then tickets), across batches and across
    an erasure's steps; and not while a row that stays names it."""
    batch_file = b"a log sent on the first ticket and again on the 102nd\r\n"

    # All sharers purged: the spam the rules dropped (on no ticket) and
    # ticket 1 share OWN; tickets 1 and 102 (another batch) share a file.
    desk, _, _ = ticketless_desk()
    try:
        desk.deliver(with_files("first", "first", [OWN, batch_file]), env=ENV)
        for i in range(100):
            desk.deliver(message(subject=f"t{i}", msgid=f"t{i}", body=f"ticket {i}\n"), env=ENV)
        desk.deliver(with_files("last", "last", [batch_file]), env=ENV)
        resolve_all(desk)
        age_files(desk)
        files = spool_files(desk)
        got = dry_then_real(tap, desk, "sharers all purged", "--resolved-before", "30")
        left = spool_files(desk)
        tap.eq(got["tickets"], 102, "every ticket goes, in two batches")
        tap.ok(f"blob/{sha(OWN)}" not in left and f"blob/{sha(batch_file)}" not in left,
               "the shared files are removed", sorted(left))
        tap.eq(got["files"], len(files - left) + got["outbox_queued"],
               "and counted: every file removed, and each queued message's blob")
    finally:
        desk.cleanup()

    # A sharer kept: an open ticket names OWN too.
    desk, _, _ = ticketless_desk()
    try:
        desk.deliver(with_files("first", "first", [OWN]), env=ENV)
        desk.deliver(with_files("open", "open", [OWN], sender="dan@customer.example"), env=ENV)
        resolve_all(desk, "id = 1")
        age_files(desk)
        files = spool_files(desk)
        got = dry_then_real(tap, desk, "a sharer kept", "--resolved-before", "30")
        left = spool_files(desk)
        tap.ok(f"blob/{sha(OWN)}" in left, "the file the open ticket names stays", sorted(left))
        tap.eq(got["files"], len(files - left) + got["outbox_queued"], "and is not counted")
    finally:
        desk.cleanup()

    # An erasure: carol's own ticket and her message on ticket 2 carry the
    # same file (a batch of tickets, then a range of messages elsewhere).
    desk = two_tickets()
    try:
        carols = b"carol's screenshot, on her ticket and on ticket 2\r\n"
        desk.deliver(with_files("carol's own", "carol-own", [carols], sender="carol@customer.example"), env=ENV)
        desk.deliver(with_files("Re: second", "carol-re", [carols], sender="carol@customer.example",
                                headers="In-Reply-To: <second@customer.example>\r\n"), env=ENV)
        tap.eq(count(desk, "attachments", "sha256 = ?", sha(carols)), 2, "carol's file is on two tickets")
        age_files(desk)
        files = spool_files(desk)
        got = dry_then_real(tap, desk, "an erasure", "--person", "carol@customer.example")
        left = spool_files(desk)
        tap.ok(f"blob/{sha(carols)}" not in left, "her file is removed", sorted(left))
        tap.eq(got["files"], len(files - left) + got["outbox_queued"], "and counted once")
    finally:
        desk.cleanup()

    # A file written too recently waits: the dry run says so too.
    desk = two_tickets()
    try:
        os.utime(os.path.join(desk.dir, "var", "spool", "blob", sha(OWN)[:2], sha(OWN)), None)
        got = dry_then_real(tap, desk, "a fresh file", "--resolved-before", "30")
        tap.eq(got["files_waiting"], 1, "the fresh file waits")
    finally:
        desk.cleanup()


def test_dry_run_merged_far_apart(tap):
    """A duplicate goes with the ticket it was merged into, and is counted
    once, in a dry run too, when the two fall in different batches: each
    batch of a dry run is rolled back, so the duplicate taken along with
    its ticket must not be picked again on its own (nor the other way
    round), by retention or by an erasure."""
    for args in (("--resolved-before", "30"), ("--person", "alice@customer.example")):
        desk = Desk()
        try:
            desk.run("agent", "add", "jane@support.example.com", check=True)
            desk.deliver(message(subject="first", msgid="first"), env=ENV)
            for i in range(100):
                desk.deliver(message(subject=f"t{i}", msgid=f"t{i}", body=f"ticket {i}\n"), env=ENV)
            desk.deliver(message(subject="first, again", msgid="again"), env=ENV)
            desk.deliver(message(subject="third time", msgid="third"), env=ENV)
            desk.run("ticket", "merge", "102", "1", env=ENV, check=True)
            desk.run("ticket", "merge", "1", "103", env=ENV, check=True)
            resolve_all(desk)
            age_files(desk)
            got = dry_then_real(tap, desk, f"merged tickets batches apart ({args[0]})", *args)
            tap.eq((got["tickets"], count(desk, "tickets")), (103, 0), "every ticket goes, each counted once")
        finally:
            desk.cleanup()


def test_person(tap):
    desk = two_tickets()
    try:
        # carol (Cc on ticket 2) writes to it, and opens a ticket of her own
        reply = message(subject="Re: second", sender="carol@customer.example", body="Me too, carol here.\n",
                        headers=["In-Reply-To: <second@customer.example>"])
        desk.deliver(reply, env=ENV)
        desk.deliver(message(subject="carol's own", sender="carol@customer.example"), env=ENV)
        desk.deliver(message(subject="my tickets", body="#list\n", sender="carol@customer.example"), env=ENV)
        tap.eq(count(desk, "messages", "ticket_id = 2 AND from_addr = 'carol@customer.example'"), 1,
               "carol wrote on ticket 2")
        tap.eq(count(desk, "messages", "ticket_id IS NULL AND from_addr = 'carol@customer.example'"), 1,
               "and sent a #list alone, kept on no ticket")
        carol = rows(desk, "SELECT id FROM people WHERE email = 'carol@customer.example'")[0][0]
        own = rows(desk, "SELECT id FROM tickets WHERE requester_id = ?", carol)
        tap.eq(len(own), 1, "carol requested one ticket")
        age_files(desk)

        before = dump(desk)
        dry = purge(desk, "--person", "Carol@Customer.example", "--dry-run")
        tap.eq((dry["tickets"], dry["messages_erased_elsewhere"], dry.get("messages_on_no_ticket"),
                dry["person_removed"]), (1, 1, 1, True), "--person --dry-run says what would go")
        tap.eq(dump(desk), before, "--person --dry-run changes nothing")

        got = purge(desk, "--person", "Carol@Customer.example")
        tap.eq((got["tickets"], got["messages_erased_elsewhere"], got.get("messages_on_no_ticket"),
                got["person_removed"]), (1, 1, 1, True),
               "carol's ticket goes, her message on ticket 2 is emptied, her #list goes, her record too")
        tap.eq(count(desk, "messages", "ticket_id IS NULL AND flag != 'purged'"), 0,
               "her #list is a tombstone, not an emptied message on no ticket")
        tap.eq(integrity(desk), (0, 0), "every dedupe key names a row, every row on no ticket a dedupe key")
        tap.eq({**dry, "dry_run": False}, got, "--person --dry-run said exactly that")
        tap.eq(count(desk, "tickets", "id = ?", own[0][0]), 0, "her own (open) ticket is gone")
        tap.eq(count(desk, "people", "email = 'carol@customer.example'"), 0, "her record is gone")
        tap.eq(count(desk, "participants", "person_id = ?", carol), 0, "her participation is gone")
        tap.eq(count(desk, "outbox", "rcpt_to = 'carol@customer.example'"), 0, "no mail to her is left")
        with db(desk) as c:
            text = "\n".join(c.iterdump())
        tap.ok("carol" not in text.lower(), "her address and name are nowhere in the database",
               [l for l in text.splitlines() if "carol" in l.lower()][:5])
        tap.eq(count(desk, "tickets", "id = 2"), 1, "ticket 2 stays")
        again = purge(desk, "--person", "carol@customer.example")
        tap.eq((again["tickets"], again["person_removed"]), (0, False), "a second erasure is a no-op")

        p = desk.run("purge", "--person", "jane@support.example.com", env=LATER_ENV)
        tap.eq(p.returncode, 65, "an agent is refused", p.stderr)
    finally:
        desk.cleanup()


def test_person_without_record(tap):
    """Who never opened a ticket nor took part in one (a #list sent
    alone, mail the rules dropped) has no record, and is erased all the
    same: what they sent, and the mail sent to them."""
    desk, lst, spam = ticketless_desk()
    try:
        tap.eq(count(desk, "people"), 0, "neither sender has a record")
        before = dump(desk)
        files = spool_files(desk)
        dry = purge(desk, "--person", "Alice@customer.example", "--dry-run")
        tap.eq(dump(desk), before, "--dry-run changes nothing")
        tap.eq((dry.get("messages_on_no_ticket"), dry["outbox"], dry["person_removed"]), (2, 2, False),
               "--dry-run: both her #list and both answers, no record to remove")
        got = purge(desk, "--person", "Alice@customer.example")
        tap.eq({**dry, "dry_run": False}, got, "--dry-run said exactly that")
        tap.ok("alice" not in dump(desk).lower(), "her address is nowhere in the database",
               [l for l in dump(desk).splitlines() if "alice" in l.lower()][:5])
        tap.eq(count(desk, "outbox_blobs"), 0, "the answers' queued messages are gone")
        tap.eq(len(files - spool_files(desk)), 2, "her two raw messages are removed", sorted(files - spool_files(desk)))
        r = desk.deliver(lst, env=LATER_ENV)
        tap.eq((r.returncode, r.stdout.decode().strip()), (0, "duplicate"), "her #list redelivered is a duplicate")

        got = purge(desk, "--person", "deals@spam.example")
        tap.eq((got.get("messages_on_no_ticket"), got["attachments"], got["files"]), (1, 1, 2),
               "the dropped spam goes with its attachment, raw message and file")
        tap.eq(count(desk, "messages", "flag != 'purged'"), 0, "only tombstones are left")
        tap.eq(integrity(desk), (0, 0), "every dedupe key names a row, every row on no ticket a dedupe key")
        again = purge(desk, "--person", "alice@customer.example")
        tap.eq([again.get(k) for k in ("messages_on_no_ticket", "outbox", "files")], [0, 0, 0],
               "a second erasure is a no-op")
    finally:
        desk.cleanup()


def test_beside_serve(tap):
    """serve keeps the database open and stores mail between and after
    purges; mail bringing back a purged file gets it back."""
    port = free_port()
    desk = two_tickets(f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    server = Server(desk, env=LATER_ENV).start(port)
    try:
        got = purge(desk, "--resolved-before", "30")
        tap.eq((got["tickets"], got["files_waiting"]), (1, 0), "purge runs while serve runs")
        c = Lmtp(port)
        c.cmd("LHLO x")
        for i in range(3):
            _, data = c.deliver("dan@customer.example", ["support@support.example.com"],
                                with_files(f"again {i}", f"again{i}", [OWN], sender="dan@customer.example"))
            tap.eq([code for code, _ in data], [250], f"serve stores message {i} after the purge")
            purge(desk, "--resolved-before", "30")
        own = os.path.join(desk.dir, "var", "spool", "blob", sha(OWN)[:2], sha(OWN))
        tap.ok(os.path.exists(own), "the file a new message brought back is in place")
        tap.eq(len(desk.tickets()), 4, "no open ticket was purged")
        c.close()
    finally:
        server.stop()
        desk.cleanup()


def test_batches(tap):
    """More tickets and files than one transaction takes: every batch
    goes, and the open ticket among them stays."""
    desk = Desk()
    try:
        n = 2 * 100 + 5
        for i in range(n):
            desk.deliver(message(subject=f"t{i}", msgid=f"t{i}", body=f"ticket {i}\n"), env=ENV)
        with db(desk) as c:
            c.execute("UPDATE tickets SET status = 'Resolved', resolved_at = strftime('%s', '2026-12-01') "
                      "WHERE id != 150")
        age_files(desk)
        got = purge(desk, "--resolved-before", "30")
        tap.eq(got["tickets"], n - 1, "every resolved ticket goes, batch after batch")
        tap.eq([r[0] for r in rows(desk, "SELECT id FROM tickets")], [150], "the open one stays")
        tap.eq(count(desk, "purge_files"), 0, "every noted file is dealt with")
        tap.eq(len([f for f in spool_files(desk) if f.startswith("raw/")]), 1, "only its raw message is left")
    finally:
        desk.cleanup()


def scans(p):
    """(statement, runs) of each statement MAILDESK_DEBUG_SCANS saw read a
    whole table."""
    found = []
    for line in p.stderr.decode().splitlines():
        if "full scan" in line:
            head, sql = line.split(": ", 2)[1:]
            found.append((sql, int(head.split("runs=")[1])))
    return found


# Read whole once per batch of tickets: no index of their ticket column
# (one would cost every ingest).
PER_BATCH = ("FROM outbox WHERE ticket_id IN", "DELETE FROM message_ids WHERE ticket_id IN")
# Read whole once per run: which noted files a row names.
PER_RUN = ("FROM messages WHERE raw_sha256 IN", "FROM attachments WHERE sha256 IN",
           "FROM outbox WHERE raw_sha256 IN")


def test_scans(tap):
    """A purge reads outbox and message_ids once per batch of tickets,
    and messages, attachments and outbox once per run for the files;
    nothing whole per ticket or per file (the temporary tables it reads
    whole hold one batch)."""
    desk = Desk()
    try:
        n = 2 * 100 + 5
        for i in range(n):
            desk.deliver(message(subject=f"t{i}", msgid=f"t{i}", body=f"ticket {i}\n"), env=ENV)
        with db(desk) as c:
            c.execute("UPDATE tickets SET status = 'Resolved', resolved_at = strftime('%s', '2026-12-01')")
        desk.deliver(with_files("kept", "kept", [SHARED]), env=ENV)  # rows left in every table read
        age_files(desk)
        p = desk.run("purge", "--resolved-before", "30", "--json", env={**LATER_ENV, "MAILDESK_DEBUG_SCANS": "1"})
        tap.eq(p.returncode, 0, "the purge runs", p.stderr)
        got = json.loads(p.stdout)
        batches = 3
        tap.ok(got["tickets"] == n and got["files"] > batches, "more tickets and files than batches", got)
        found = scans(p)
        for sql, runs in found:
            tap.ok(runs <= batches, f"read whole at most once per batch ({runs}): {sql}")
        for part in PER_BATCH:
            tap.eq([r for sql, r in found if part in sql], [batches], f"once per batch: {part}")
        for part in PER_RUN:
            tap.eq([r for sql, r in found if part in sql], [1], f"once per run: {part}")
        tap.eq([sql for sql, _ in found if "FROM received" in sql], [],
               "received is not read: no message lacks both its raw message and its Message-ID")
    finally:
        desk.cleanup()


def test_indexes(tap):
    """Every statement a purge runs that reads a table whole runs once
    per batch or per run (test_scans), here a single batch."""
    desk = two_tickets()
    try:
        desk.deliver(message(subject="carol's own", sender="carol@customer.example"), env=ENV)
        for args in (("--resolved-before", "30"), ("--person", "carol@customer.example")):
            p = desk.run("purge", *args, env={**LATER_ENV, "MAILDESK_DEBUG_SCANS": "1"})
            tap.eq(p.returncode, 0, f"purge {args[0]} runs", p.stderr)
            tap.eq([(sql, runs) for sql, runs in scans(p) if runs > 1], [],
                   f"purge {args[0]} reads no table whole more than once", p.stderr)
    finally:
        desk.cleanup()


# What ingest writes: schema 1's indexes, and no index purge needs.
INGEST_INDEXES = {
    "messages": ["messages_ticket"],
    "attachments": ["attachments_message"],
    "message_ids": [],
    "received": [],
    "outbox": ["outbox_due", "outbox_rcpt"],
}


def test_ingest_pays_nothing(tap):
    """Schema 4 adds no index to a table every new message or queued mail
    writes: purge is a rare batch job, ingest the hot path."""
    desk = Desk()
    try:
        desk.deliver(message(subject="hello"), env=ENV)
        for table, want in INGEST_INDEXES.items():
            got = [r[0] for r in rows(desk, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                      "AND sql IS NOT NULL ORDER BY name", table)]
            tap.eq(got, want, f"the indexes of {table}")
        partial = rows(desk, "SELECT name FROM sqlite_master WHERE name IN ('tickets_linked', 'tickets_assignee') "
                       "AND sql LIKE '%WHERE%IS NOT NULL%' ORDER BY name")
        tap.eq([r[0] for r in partial], ["tickets_assignee", "tickets_linked"],
               "the tickets' purge indexes are partial: a new ticket is in neither")
    finally:
        desk.cleanup()


def test_one_at_a_time(tap):
    """A second purge while one runs is refused (its file check relies on
    no other process deleting rows meanwhile)."""
    import fcntl
    desk = two_tickets()
    try:
        path = os.path.join(desk.dir, "var", "purge.lock")
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            p = desk.run("purge", "--resolved-before", "30", env=LATER_ENV)
            tap.ok(p.returncode == 75 and b"another purge" in p.stderr, "refused while another holds the lock",
                   p.stderr)
            tap.eq(count(desk, "tickets"), 2, "and it deleted nothing")
        tap.eq(purge(desk, "--resolved-before", "30")["tickets"], 1, "once it is done, purge runs")
    finally:
        desk.cleanup()


def test_lock_outlives_tmp_cleaner(tap):
    """A purge that runs for more than a day keeps its lock: the cleaner
    of the spool's tmp (serve's, tick's) removes what is a day old, and a
    lock it removed would let a second purge start beside the first."""
    import signal
    desk = two_tickets()
    try:
        first, stopped = stopped_purge(desk, "--resolved-before", "30")
        tap.ok(stopped, "the first purge holds its lock, stopped")
        day_ago = time.time() - 2 * 86400
        for d, _, names in os.walk(os.path.join(desk.dir, "var")):
            for n in names:
                os.utime(os.path.join(d, n), (day_ago, day_ago))
        tick = desk.run("tick", env=LATER_ENV)
        tap.eq(tick.returncode, 0, "tick cleans the spool's tmp of what is a day old", tick.stderr)
        tap.eq(os.listdir(os.path.join(desk.dir, "var", "spool", "tmp")), [], "the tmp cleaner ran")
        tap.ok(os.path.exists(os.path.join(desk.dir, "var", "purge.lock")), "the lock sits beside the database")
        second = desk.run("purge", "--resolved-before", "30", env=LATER_ENV)
        tap.ok(second.returncode == 75 and b"another purge" in second.stderr,
               "a second purge is still refused", second.stderr)
        os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=60)
        tap.eq(first.returncode, 0, "the first one finishes", err)
        tap.eq(json.loads(out)["tickets"], 1, "and purged the resolved ticket")
    finally:
        desk.cleanup()


if __name__ == "__main__":
    run_tests(test_retention, test_never_open_tickets, test_recent_files_wait, test_crash,
              test_row_added_during_purge, test_kept_copies, test_script_reply, test_ticketless,
              test_dry_run_shared_files, test_dry_run_merged_far_apart, test_person, test_person_without_record,
              test_beside_serve, test_batches, test_scans, test_indexes, test_ingest_pays_nothing,
              test_one_at_a_time, test_lock_outlives_tmp_cleaner)
