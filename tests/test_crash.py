#!/usr/bin/env python3
"""Crash consistency (issue 8): an LMTP load client with several
concurrent sessions sends distinct messages to `maildesk serve`, which is
killed with SIGKILL at random moments, many times, and restarted.  Then:

- every message answered 250 is stored exactly once;
- no unanswered message became a half-ticket: every ticket has its
  message, and every stored message has its raw file in the spool;
- redelivering everything the client ever sent creates no duplicate
  (and stores what was lost, once);
- the outbox holds exactly one acknowledgement per ticket: none lost
  with a commit, none doubled by a redelivery.
"""
import os
import random
import signal
import socket
import sqlite3
import threading
import time

from mdtest import Desk, Lmtp, Server, free_port, message, run_tests

ROUNDS = int(os.environ.get("MD_CRASH_ROUNDS", "20"))
SESSIONS = 4
NOW = "2026-12-01T10:00:00+02:00"


class LoadClient(threading.Thread):
    """One LMTP session after another, one message each transaction,
    until the server dies or `stop` is set.  Records every Message-ID it
    sent and what came back for it."""

    def __init__(self, port, name, sent, answered, lock, stop):
        super().__init__(daemon=True)
        self.port, self.name, self.sent, self.answered, self.lock, self.stop = port, name, sent, answered, lock, stop
        self.n = 0

    def run(self):
        try:
            c = Lmtp(self.port, timeout=10)
            c.cmd(f"LHLO {self.name}.load.example")
            while not self.stop.is_set():
                self.n += 1
                local = f"{self.name}-{self.n}-{os.urandom(4).hex()}"
                mid = f"{local}@customer.example"                # what message() writes
                sender = f"{self.name}-{self.n}@load.example"   # distinct: no acknowledgement rate limit
                raw = message(subject=f"load {local}", sender=sender, msgid=local)
                with self.lock:
                    self.sent[mid] = raw
                rcpt, data = c.deliver(sender, ["support@support.example.com"], raw)
                if data and data[0][0] == 250:
                    with self.lock:
                        self.answered.add(mid)
        except (OSError, EOFError, ValueError, IndexError):
            pass   # the server was killed under us


def db_counts(desk):
    db = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"), timeout=30)
    try:
        by_mid = dict(db.execute("SELECT message_id, count(*) FROM messages WHERE direction = 'in' GROUP BY message_id"))
        raws = [r[0] for r in db.execute("SELECT raw_sha256 FROM messages WHERE direction = 'in'")]
        empty_tickets = db.execute("SELECT count(*) FROM tickets t WHERE NOT EXISTS "
                                   "(SELECT 1 FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in')").fetchone()[0]
        tickets = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
        acks = dict(db.execute("SELECT ticket_id, count(*) FROM outbox WHERE kind = 'ack' GROUP BY ticket_id"))
        return by_mid, raws, empty_tickets, tickets, acks
    finally:
        db.close()


def check_store(tap, desk, answered, label):
    by_mid, raws, empty_tickets, tickets, acks = db_counts(desk)
    missing = [m for m in answered if by_mid.get(m, 0) != 1]
    tap.eq(missing, [], f"{label}: every message answered 250 is stored exactly once")
    tap.eq([m for m, n in by_mid.items() if n != 1], [], f"{label}: no Message-ID is stored twice")
    spool = os.path.join(desk.dir, "var", "spool", "raw")
    no_raw = [r for r in raws if not r or not os.path.exists(os.path.join(spool, r[:2], r))]
    tap.eq(no_raw, [], f"{label}: every stored message has its raw file in the spool")
    tap.eq(empty_tickets, 0, f"{label}: no ticket without its message (no half-ticket)")
    tap.eq(sorted(n for n in acks.values() if n != 1), [], f"{label}: at most one acknowledgement per ticket")
    tap.eq(len(acks), tickets, f"{label}: every ticket has its acknowledgement queued")
    return by_mid, tickets


def test_kill9(tap):
    port = free_port()
    smtp_port = free_port()   # nothing listens: the outbox stays queued and countable
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n[smtp]\nurl = smtp://127.0.0.1:{smtp_port}\n")
    sent, answered, lock = {}, set(), threading.Lock()
    rng = random.Random(int(os.environ.get("MD_CRASH_SEED", "8")))
    kills = 0
    for rnd in range(ROUNDS):
        server = Server(desk, env={"MAILDESK_NOW": NOW}).start(port)
        stop = threading.Event()
        clients = [LoadClient(port, f"r{rnd}s{i}", sent, answered, lock, stop) for i in range(SESSIONS)]
        for c in clients:
            c.start()
        time.sleep(rng.uniform(0.05, 0.8))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        server.log.close()
        kills += 1
        stop.set()
        for c in clients:
            c.join(15)
    unanswered = len(sent) - len(answered)
    tap.diag(f"kill -9: {kills} kills, {len(sent)} messages sent in {ROUNDS * SESSIONS} sessions, "
             f"{len(answered)} answered 250, {unanswered} unanswered")
    tap.ok(len(answered) > ROUNDS, "the load client got messages through between kills", len(answered))
    tap.ok(unanswered > 0, "some messages were in flight when the server died", unanswered)

    by_mid, tickets = check_store(tap, desk, answered, "after the kills")
    stored_unanswered = len([m for m in sent if m not in answered and by_mid.get(m)])
    tap.diag(f"stored: {tickets} tickets; {stored_unanswered} messages were committed but their 250 never arrived")

    # The MTA redelivers everything it was not sure of; here, everything.
    server = Server(desk, env={"MAILDESK_NOW": NOW}).start(port)
    c = Lmtp(port)
    c.cmd("LHLO redeliver.example")
    codes = []
    for mid, raw in sent.items():
        _, data = c.deliver(f"redeliver@load.example", ["support@support.example.com"], raw)
        codes.append(data[0][0] if data else 0)
    c.close()
    tap.eq(server.stop(), 0, "serve stops cleanly after the redelivery")
    tap.eq(sorted(set(codes)), [250], "every redelivered message is accepted", codes[:20])
    by_mid, tickets = check_store(tap, desk, list(sent), "after redelivery")
    tap.eq(tickets, len(sent), "one ticket per distinct message: redelivery added exactly what was lost")
    tap.diag(f"after redelivery: {tickets} tickets for {len(sent)} distinct messages")
    desk.cleanup()


if __name__ == "__main__":
    run_tests(test_kill9)
