#!/usr/bin/env python3
"""Processes on one desk at once (DESIGN 2: every subcommand is safe to
run while `serve` runs; DESIGN 9: tick is idempotent).

`maildesk serve` runs (LMTP, its scheduler and its outbox sender) while
eight `deliver`s at a time, LMTP sessions, `tick`s and `outbox flush`es
run beside it against the same desk, in two phases: tickets arrive, then
two weeks later every first-response deadline has passed and serve's
scheduler and several ticks race for the same breach timers while mail
keeps arriving.  Every process must succeed or answer a temporary
failure (75) that a retry clears.  Then:

- every message is filed exactly once (a deliver and an LMTP delivery of
  the same Message-ID included);
- every outbox row reached the SMTP catcher exactly once, and nothing
  reached it that is not an outbox row;
- each ticket's breach timer fired once: one history entry, one
  notice per recipient;
- the database passes integrity_check.

Loops are bounded; loopback only.
"""
import collections
import email
import os
import signal
import sqlite3
import subprocess
import threading
import time

from mdtest import MAILDESK, Catcher, Desk, Lmtp, Server, free_port, message, run_tests

NOW0 = "2026-12-01T10:00:00+02:00"
NOW1 = "2026-12-15T10:00:00+02:00"   # every P1-P4 first-response deadline has passed
NOW2 = "2027-01-12T10:00:00+02:00"   # and those of the tickets opened at NOW1
LEADS = "leads@support.example.com"
AGENT = "agent@support.example.com"
DELIVERERS = 8
PER_DELIVERER = 10
LMTP_SESSIONS = 2
PER_SESSION = 10
RETRIES = 40     # a deliver answered 75 is run again, like an MTA's queue


class Run:
    """Runs maildesk commands from threads and keeps every outcome."""

    def __init__(self, desk):
        self.desk = desk
        self.lock = threading.Lock()
        self.bad = []           # (command, exit code, stderr) that is neither 0 nor 75
        self.tempfails = collections.Counter()
        self.stored = set()     # Message-IDs a deliver or LMTP said yes to

    def cmd(self, args, now, input=None):
        env = dict(os.environ, MAILDESK_NOW=now)
        p = subprocess.run([MAILDESK, "-c", self.desk.conf_path, *args], input=input, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        with self.lock:
            if p.returncode == 75:
                self.tempfails[args[0]] += 1
            elif p.returncode != 0:
                self.bad.append((" ".join(args), p.returncode, p.stderr.decode(errors="replace")[-500:]))
        return p.returncode

    def deliver(self, raw, mid, now):
        for _ in range(RETRIES):
            rc = self.cmd(["deliver"], now, input=raw)
            if rc == 0:
                with self.lock:
                    self.stored.add(mid)
                return True
            if rc != 75:
                return False
            time.sleep(0.05)
        with self.lock:
            self.bad.append(("deliver", "still 75 after retries", mid))
        return False


def deliverer(run, name, now, shared_mids):
    for i in range(PER_DELIVERER):
        local = f"{name}-{i}-{os.urandom(3).hex()}"
        raw = message(subject=f"concurrency {local}", sender=f"{local}@customer.example", msgid=local)
        run.deliver(raw, f"{local}@customer.example", now)
    # the same message from every deliverer at once: filed once
    for local in shared_mids:
        raw = message(subject=f"shared {local}", sender=f"{local}@customer.example", msgid=local)
        run.deliver(raw, f"{local}@customer.example", now)


def lmtp_client(run, port, name, shared_mids):
    c = Lmtp(port, timeout=30)
    c.cmd(f"LHLO {name}.example")
    todo = [(f"{name}-{i}-{os.urandom(3).hex()}", "concurrency") for i in range(PER_SESSION)]
    todo += [(m, "shared") for m in shared_mids]
    for local, what in todo:
        raw = message(subject=f"{what} {local}", sender=f"{local}@customer.example", msgid=local)
        for _ in range(RETRIES):
            _, data = c.deliver(f"{local}@customer.example", ["support@support.example.com"], raw)
            if data and data[0][0] == 250:
                with run.lock:
                    run.stored.add(f"{local}@customer.example")
                break
            if not data or data[0][0] // 100 != 4:
                with run.lock:
                    run.bad.append(("lmtp", data, local))
                break
            c.cmd("RSET")
            time.sleep(0.05)
    c.close()


def looper(run, args, now, stop, limit=200):
    for _ in range(limit):
        if stop.is_set():
            return
        run.cmd(args, now)
        time.sleep(0.02)


def phase(run, port, now, tag, ticks, flushes):
    """Delivers through deliver and LMTP while ticks and flushes loop."""
    shared = [f"{tag}-shared-{k}" for k in range(3)]
    stop = threading.Event()
    loops = [threading.Thread(target=looper, args=(run, ["tick"], now, stop)) for _ in range(ticks)]
    loops += [threading.Thread(target=looper, args=(run, ["outbox", "flush"], now, stop)) for _ in range(flushes)]
    workers = [threading.Thread(target=deliverer, args=(run, f"{tag}d{k}", now, shared)) for k in range(DELIVERERS)]
    workers += [threading.Thread(target=lmtp_client, args=(run, port, f"{tag}l{k}", shared))
                for k in range(LMTP_SESSIONS)]
    for t in loops + workers:
        t.start()
    for t in workers:
        t.join(120)
    stop.set()
    for t in loops:
        t.join(120)
    return len(shared)


def db(desk):
    return sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"), timeout=30)


def caught(catcher):
    """Counter of (Message-ID, recipient) over everything the catcher accepted."""
    got = collections.Counter()
    for env, raw in catcher.messages():
        mid = email.message_from_bytes(raw).get("Message-ID", "").strip().strip("<>")
        for r in env["rcpt_tos"]:
            got[(mid, r.lower())] += 1
    return got


def test_processes_at_once(tap):
    catcher = Catcher().start()
    port = free_port()
    desk = Desk(extra_conf=f"agents = {AGENT}\n"
                           f"[lmtp]\nlisten = 127.0.0.1:{port}\n"
                           f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n"
                           "from = Test Support <support@support.example.com>\n"
                           f"[sla]\nescalate_to = {LEADS}\n")
    run = Run(desk)
    try:
        desk.run("agent", "add", AGENT, env={"MAILDESK_NOW": NOW0}, check=True)
        server = Server(desk, env={"MAILDESK_NOW": NOW0}).start(port)
        shared = phase(run, port, NOW0, "a", ticks=2, flushes=2)
        rc = server.stop()
        tap.eq(rc, 0, "phase 1: serve stops with 0 on SIGTERM")

        # two weeks on: serve's scheduler and the ticks race for every breach
        server = Server(desk, env={"MAILDESK_NOW": NOW1}).start(port)
        shared += phase(run, port, NOW1, "b", ticks=4, flushes=2)
        rc = server.stop()
        tap.eq(rc, 0, "phase 2: serve stops with 0 on SIGTERM")
        # later still, without serve: ticks race each other for the breaches
        # of the tickets opened at NOW1, flushes for their notices
        stop = threading.Event()
        loops = [threading.Thread(target=looper, args=(run, ["tick"], NOW2, stop, 5)) for _ in range(4)]
        loops += [threading.Thread(target=looper, args=(run, ["outbox", "flush"], NOW2, stop, 5)) for _ in range(2)]
        for t in loops:
            t.start()
        for t in loops:
            t.join(120)
        for _ in range(20):   # what is still queued goes out
            if run.cmd(["tick"], NOW2) == 0 and run.cmd(["outbox", "flush"], NOW2) == 0:
                break
            time.sleep(0.2)

        tap.eq(run.bad, [], "every process succeeded or failed temporarily (75)")
        tap.diag(f"temporary failures (retried): {dict(run.tempfails)}")

        conn = db(desk)
        by_mid = collections.Counter(r[0] for r in conn.execute(
            "SELECT message_id FROM messages WHERE direction = 'in'"))
        tap.eq(len(run.stored), DELIVERERS * PER_DELIVERER * 2 + LMTP_SESSIONS * PER_SESSION * 2 + shared,
               "every message was answered yes in the end")
        tap.eq(sorted(m for m in run.stored if by_mid.get(m) != 1), [],
               "every message answered yes is filed exactly once")
        tap.eq(sorted(m for m, n in by_mid.items() if n != 1), [], "no Message-ID is filed twice")

        rows = list(conn.execute("SELECT id, message_id, lower(rcpt_to), state FROM outbox"))
        tap.eq([r for r in rows if r[3] != "sent"], [], "every outbox row is sent")
        got = caught(catcher)
        want = collections.Counter((r[1], r[2]) for r in rows)
        outbox_log = "\n".join(l for l in server.read_log().splitlines() if "outbox" in l and "sent id" not in l)
        tap.eq(sorted(k for k, n in got.items() if n > 1), [], "no outbox row reached the server twice",
               outbox_log[-3000:])
        tap.eq(sorted(k for k in want if k not in got), [], "every outbox row reached the server")
        tap.eq(sorted(k for k in got if k not in want), [], "nothing reached the server that is not an outbox row")

        tickets = [r[0] for r in conn.execute("SELECT id FROM tickets")]
        breaches = collections.Counter(r[0] for r in conn.execute(
            "SELECT ticket_id FROM history WHERE field = 'sla' AND new_value = 'breach'"))
        tap.eq(sorted(t for t in tickets if breaches.get(t) != 1), [], "each ticket's breach fired exactly once")
        notices = collections.Counter(conn.execute(
            "SELECT ticket_id, lower(rcpt_to) FROM outbox WHERE kind = 'sla-breach'").fetchall())
        tap.eq(sorted(k for k, n in notices.items() if n != 1), [], "one breach notice per ticket and recipient")
        tap.ok(len(notices) >= len(tickets), "breach notices were queued",
               f"{len(notices)} notices for {len(tickets)} tickets")
        pending = conn.execute("SELECT count(*) FROM timers WHERE kind = 'sla-breach' AND done_at IS NULL").fetchone()[0]
        tap.eq(pending, 0, "no breach timer is left pending")
        tap.eq(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok", "integrity_check")
        conn.close()
    finally:
        catcher.cleanup()
        desk.cleanup()


def burst_client(port, name, answered, lock, stop):
    """LMTP transactions one after another until the server goes away."""
    try:
        c = Lmtp(port, timeout=20)
        c.cmd(f"LHLO {name}.example")
        n = 0
        while not stop.is_set() and n < 2000:
            n += 1
            local = f"{name}-{n}-{os.urandom(3).hex()}"
            _, data = c.deliver(f"{local}@customer.example", ["support@support.example.com"],
                                message(subject=f"burst {local}", sender=f"{local}@customer.example", msgid=local))
            if data and data[0][0] == 250:
                with lock:
                    answered.add(f"{local}@customer.example")
            elif not data or data[0][0] // 100 != 4:
                return
    except (OSError, EOFError, ValueError, IndexError):
        pass


def test_sigterm_during_burst(tap):
    """SIGTERM while sessions deliver: serve exits 0 within its drain bound
    and every message it answered 250 is stored once."""
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    try:
        server = Server(desk, env={"MAILDESK_NOW": NOW0}).start(port)
        answered, lock, stop = set(), threading.Lock(), threading.Event()
        clients = [threading.Thread(target=burst_client, args=(port, f"t{k}", answered, lock, stop))
                   for k in range(6)]
        for t in clients:
            t.start()
        time.sleep(1.5)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        try:
            rc = server.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = "still running after 30 s"
        took = time.monotonic() - started
        stop.set()
        for t in clients:
            t.join(30)
        server.stop()
        tap.eq(rc, 0, "serve exits 0 on SIGTERM during a burst")
        tap.ok(took < 20, "within the 15 s drain bound", f"took {took:.1f} s")
        tap.ok(len(answered) > 0, "messages were answered before the signal")
        conn = db(desk)
        by_mid = collections.Counter(r[0] for r in conn.execute(
            "SELECT message_id FROM messages WHERE direction = 'in'"))
        conn.close()
        tap.eq(sorted(m for m in answered if by_mid.get(m) != 1), [],
               "every message answered 250 is stored exactly once")
    finally:
        desk.cleanup()


def resender(port, name, replies, stop):
    """One LMTP session that sends a new message after each answer, until
    the server goes away or STOP is set; counts the answers by class."""
    try:
        c = Lmtp(port, timeout=60)
        c.cmd(f"LHLO {name}.example")
        for n in range(100):
            if stop.is_set():
                return
            local = f"{name}-{n}-{os.urandom(3).hex()}"
            _, data = c.deliver(f"{local}@customer.example", ["support@support.example.com"],
                                message(subject=f"held {local}", sender=f"{local}@customer.example", msgid=local))
            replies[data[0][0] // 100 if data else 0] += 1
    except (OSError, EOFError, ValueError, IndexError):
        pass


def test_commit_after_drain(tap):
    """The writer still commits what was queued when the drain gave up,
    after the main loop stopped: the parts its commits wake (scheduler,
    outbox sender) must still be there.  Another process holds the
    database's write lock, so the writer cannot commit (it waits 5 s for
    the lock per round, then answers 4xx).  A session stopped in the
    middle of its DATA is a transaction in flight, so the drain waits for
    it and runs out at its 15 s bound; the rest of that message arrives
    12 s into the drain, so that its delivery waits for the writer when
    the drain gives up.  The lock is let go once serve said so, and the
    writer commits it on its way out."""
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    try:
        server = Server(desk, env={"MAILDESK_NOW": NOW0}).start(port)
        holder = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"), timeout=30, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        # a session whose deliveries the writer answers 4xx while the lock
        # is held; after the signal its next MAIL is answered 421
        replies, stop = collections.Counter(), threading.Event()
        client = threading.Thread(target=resender, args=(port, "h0", replies, stop))
        client.start()
        time.sleep(1)
        slow = Lmtp(port)
        slow.cmd("LHLO slow.test")
        slow.cmd("MAIL FROM:<slow@customer.example>")
        slow.cmd("RCPT TO:<support@support.example.com>")
        slow.cmd("DATA")
        whole = message(subject="half a message").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        slow.sock.sendall(whole[:60])
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        rest_sent = gave_up = False
        for _ in range(800):   # the drain's bound is 15 s
            if not rest_sent and time.monotonic() - signalled > 12:
                slow.sock.sendall(whole[60:] + (b"" if whole.endswith(b"\r\n") else b"\r\n") + b".\r\n")
                rest_sent = True
            if "still unanswered at shutdown" in server.read_log():
                gave_up = True
                break
            if server.proc.poll() is not None:
                break
            time.sleep(0.05)
        # a moment for serve to stop its other parts while the writer
        # still waits (a release before that would prove nothing)
        time.sleep(0.2)
        holder.rollback()
        holder.close()
        try:
            rc = server.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = "still running after 30 s"
        stop.set()
        client.join(60)
        slow.sock.close()
        server.stop()
        tap.ok(gave_up and rest_sent, "the drain waited for the session mid-DATA and ran out with its delivery pending",
               server.read_log()[-2000:])
        log = server.read_log()
        at = log.find("ERROR: AddressSanitizer")
        tap.eq(rc, 0, "serve exits 0 after committing what the drain left", log[at:] if at >= 0 else log[-3000:])
        tap.ok(replies[4] > 0, "deliveries were answered 4xx while the lock was held", dict(replies))
        conn = db(desk)
        stored = [r[0] for r in conn.execute("SELECT subject FROM messages WHERE direction = 'in'")]
        conn.close()
        tap.ok("half a message" in stored and replies[2] == 0,
               "the writer committed the pending delivery after the drain, answered none",
               f"stored {stored}, replies {dict(replies)}")
    finally:
        desk.cleanup()


def test_drain_refuses_new_transactions(tap):
    """Once serve is stopping, a session's next MAIL is answered 421 4.3.2
    and closed (the MTA retries later), while a transaction already
    begun is finished and answered 250."""
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    try:
        server = Server(desk, env={"MAILDESK_NOW": NOW0}).start(port)
        begun, idle = Lmtp(port), Lmtp(port)
        begun.cmd("LHLO begun.test")
        idle.cmd("LHLO idle.test")
        begun.cmd("MAIL FROM:<begun@customer.example>")
        begun.cmd("RCPT TO:<support@support.example.com>")
        server.signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while "stopping" not in server.read_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        code, text = idle.cmd("MAIL FROM:<late@customer.example>")
        tap.ok(code == 421 and "4.3.2" in text, "a new MAIL while stopping: 421 4.3.2", text)
        tap.ok(server.proc.poll() is None, "serve waits for the transaction in flight")
        data = begun.send_data(message(subject="begun before the signal"), 1)
        tap.eq([c for c, _ in data], [250], "which is finished and answered 250", data)
        try:
            rc = server.proc.wait(20)
        except subprocess.TimeoutExpired:
            rc = "still running after 20 s"
        tap.eq(rc, 0, "then serve exits 0")
        server.stop()
        conn = db(desk)
        subjects = [r[0] for r in conn.execute("SELECT subject FROM messages WHERE direction = 'in'")]
        conn.close()
        tap.eq(subjects, ["begun before the signal"], "only that message is stored")
    finally:
        desk.cleanup()


def test_commands_while_serve_starts(tap):
    """Commands run on a fresh desk while serve starts: every connection
    switches the new database to WAL at once, and SQLite answers one of
    two such switches "database is locked" at once, without waiting (it
    happened to about one command in 135 here).  Each must succeed."""
    failures = []
    runs = 0
    for trial in range(25):
        port = free_port()
        desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
        server = Server(desk).start()
        try:
            for _ in range(6):
                procs = [subprocess.Popen([MAILDESK, "-c", desk.conf_path, "ticket", "list"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(3)]
                for p in procs:
                    _, err = p.communicate(timeout=60)
                    runs += 1
                    if p.returncode != 0:
                        failures.append((trial, p.returncode, err.decode(errors="replace").strip()))
        finally:
            server.stop()
            desk.cleanup()
    tap.eq(failures, [], f"{runs} commands beside a starting serve all succeed")


if __name__ == "__main__":
    run_tests(test_processes_at_once, test_sigterm_during_burst, test_commit_after_drain, test_drain_refuses_new_transactions,
              test_commands_while_serve_starts)
