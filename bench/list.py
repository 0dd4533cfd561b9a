#!/usr/bin/env python3
"""bench/list.py - what the listing commands cost against the size of the
desk: `ticket list` (text and --json) and `outbox list --json` print
each row as it is read, so their memory should stay flat from ten
thousand tickets to a million, and `sla report` reads aggregates.

For each size a fresh desk gets one ticket through `maildesk deliver`,
then N-1 copies of it by bulk SQL (90 % resolved) and as many sent mails
in the outbox, and each command runs
once with its output thrown away; the figures are the wall time and the
peak RSS of that maildesk process.

    make && bench/list.py [N...]          (default: 10000 100000 1000000)

MAILDESK names the binary (default ./maildesk), MD_TOP_SRCDIR the source
tree (default: this file's parent).  Exits 1 when the peak RSS of a
listing at the largest size is more than twice that at the smallest plus
16 MB: memory that grows with the desk.
"""
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

TOP = os.environ.get("MD_TOP_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAILDESK = os.environ.get("MAILDESK") or "./maildesk"
COMMANDS = [("ticket list", ["ticket", "list"]),
            ("ticket list --json", ["ticket", "list", "--json"]),
            ("outbox list --json", ["outbox", "list", "--json"]),
            ("sla report --json", ["sla", "report", "--json"])]
MESSAGE = (b"From: Alice <alice@customer.example>\r\nTo: support@support.example.com\r\n"
           b"Subject: The nightly export stopped\r\nMessage-ID: <bench-list@customer.example>\r\n"
           b"Date: Tue, 01 Dec 2026 09:30:00 +0200\r\n\r\nIt stopped on Monday.\r\n")


def make_desk(n):
    d = tempfile.mkdtemp(prefix="maildesk-bench-list-")
    conf = os.path.join(d, "maildesk.conf")
    with open(conf, "w") as f:
        f.write(f"[desk]\nname = Bench\ndomain = support.example.com\nintake = support\n"
                f"ticket_prefix = SUP\ndata_dir = {d}/var\nrules = {TOP}/filters/default.rules\n"
                f"templates = {TOP}/templates/\nforms =\n")
    subprocess.run([MAILDESK, "-c", conf, "deliver"], input=MESSAGE, check=True, stdout=subprocess.DEVNULL)
    db = sqlite3.connect(os.path.join(d, "var", "maildesk.db"))
    cols = ("subject, category, priority, status, requester_id, organization_id, shared, assignee_id, "
            "created_at, updated_at, first_response_due, first_response_at, resolved_at, status_changed_at, "
            "due_at, linked_ticket_id, flag, tags")
    db.execute(f"""WITH RECURSIVE k(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
                   INSERT INTO tickets ({cols})
                   SELECT subject || ' #' || i, category, priority,
                          CASE WHEN i % 10 THEN 'Resolved' ELSE status END, requester_id, organization_id,
                          shared, assignee_id, created_at, updated_at, first_response_due, first_response_at,
                          CASE WHEN i % 10 THEN created_at + 3600 END, status_changed_at, due_at,
                          linked_ticket_id, flag, tags
                   FROM tickets, k WHERE tickets.id = 1""", (n,))
    db.execute("""WITH RECURSIVE k(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
                  INSERT INTO outbox (ticket_id, kind, mail_from, rcpt_to, message_id, raw_sha256, state,
                                      attempts, next_attempt_at, last_error, created_at, sent_at)
                  SELECT i, kind, mail_from, rcpt_to, i || '.' || message_id, raw_sha256, 'sent', 1,
                         next_attempt_at, NULL, created_at, created_at + 5
                  FROM outbox, k WHERE outbox.id = (SELECT min(id) FROM outbox)""", (n,))
    db.commit()
    db.close()
    return d, conf


def run(conf, args):
    """Wall seconds and peak RSS (MB) of one maildesk command."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.execv(MAILDESK, [MAILDESK, "-c", conf, *args])
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"maildesk {' '.join(args)} failed")
    return time.monotonic() - start, usage.ru_maxrss / 1024.0


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10000, 100000, 1000000]
    print(f"# bench/list.py: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    print(f"{'tickets':>9}  {'command':<20} {'seconds':>8} {'peak RSS MB':>12}")
    rss = {}
    for n in sizes:
        d, conf = make_desk(n)
        try:
            for name, args in COMMANDS:
                seconds, mb = run(conf, args)
                rss[(n, name)] = mb
                print(f"{n:>9}  {name:<20} {seconds:>8.2f} {mb:>12.1f}", flush=True)
        finally:
            shutil.rmtree(d)
    small, large = min(sizes), max(sizes)
    grew = [name for name, _ in COMMANDS[:3] if rss[(large, name)] > 2 * rss[(small, name)] + 16]
    print(f"peak RSS of the listings from {small} to {large} tickets: "
          + ("flat" if not grew else "grows (" + ", ".join(grew) + ")"))
    return 1 if grew else 0


if __name__ == "__main__":
    sys.exit(main())
