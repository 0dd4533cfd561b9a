#!/usr/bin/env python3
"""What a desk run for years meets besides mail: files left by writers
killed mid-write, processes run as root by cron or an admin, a WAL that a
long reader let grow, a secret key whose first writer died.

Loopback only; each check finishes in seconds.
"""
import base64
import hashlib
import hmac
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time

from mdtest import MAILDESK, TOP_SRCDIR, Desk, Lmtp, Server, free_port, message, run_tests, wait_port

NOW = "2026-12-01T10:00:00+02:00"


def dead_pid():
    """A pid no process has now: one of a child that has exited."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_tmp_leftovers(tap):
    """kill -9 during a write leaves spool/tmp files; serve removes those of
    dead writers at start (and tick, for desks run from cron), and leaves
    a live writer's file alone."""
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    try:
        desk.run("ticket", "list", check=True)   # creates var/spool/tmp
        tmp = os.path.join(desk.dir, "var", "spool", "tmp")
        # a real leftover: deliver killed while it waits on its standard input
        p = subprocess.Popen([MAILDESK, "-c", desk.conf_path, "deliver"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.stdin.write(message(subject="half")[:40])
        p.stdin.flush()
        for _ in range(100):
            if os.listdir(tmp):
                break
            time.sleep(0.05)
        p.kill()
        p.wait()
        killed = os.listdir(tmp)
        tap.eq(len(killed), 1, "deliver killed mid-write leaves its tmp file")
        gone = f"{dead_pid()}.1796112000000000.0.1"
        live = f"{os.getpid()}.1796112000000000.0.2"   # this test is alive
        old = f"{os.getpid()}.1700000000000000.0.3"
        for name in (gone, live, old):
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(b"From: half a message\r\n")
        week_ago = time.time() - 7 * 86400
        os.utime(os.path.join(tmp, old), (week_ago, week_ago))

        server = Server(desk).start(port)
        left = sorted(os.listdir(tmp))
        server.stop()
        tap.eq(left, [live], "serve removes leftovers of dead writers and day-old files, not a live writer's")
        tap.ok("removed 3 unfinished files" in server.read_log(), "serve says what it removed",
               server.read_log()[-800:])

        with open(os.path.join(tmp, gone), "wb") as f:
            f.write(b"x")
        desk.run("tick", env={"MAILDESK_NOW": NOW}, check=True)
        tap.eq(sorted(os.listdir(tmp)), [live], "tick removes them too")
    finally:
        desk.cleanup()


def attachment_message(subject, msgid, payload=b"the same log file\r\n"):
    return (f"From: Bob <bob@customer.example>\r\nTo: support@support.example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{msgid}@customer.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            "See the log.\r\n--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=app.log\r\n\r\n").encode() + payload + b"\r\n--b--\r\n"


def test_root_on_a_users_desk(tap):
    """The desk belongs to its own user (contrib/maildesk.service); root's
    cron or an admin runs deliver, tick or ticket commands on it.  Nothing
    root creates may lock the desk's user out of its own files."""
    if os.geteuid() != 0:
        tap.ok(True, "# SKIP not root")
        return
    import pwd
    import shutil
    nobody = pwd.getpwnam("nobody")
    desk = Desk()
    try:
        # rules and templates where the desk's user can read them (the
        # build tree may be in a directory of root's alone)
        os.chmod(desk.dir, 0o755)
        shutil.copy(os.path.join(TOP_SRCDIR, "filters", "default.rules"), desk.dir)
        shutil.copytree(os.path.join(TOP_SRCDIR, "templates"), os.path.join(desk.dir, "templates"))
        with open(desk.conf_path) as f:
            conf = f.read()
        desk.write_conf(conf.replace(os.path.join(TOP_SRCDIR, "filters", "default.rules"),
                                     os.path.join(desk.dir, "default.rules"))
                            .replace(os.path.join(TOP_SRCDIR, "templates") + "/",
                                     os.path.join(desk.dir, "templates") + "/"))
        for root, dirs, files in os.walk(desk.dir):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
        var = os.path.join(desk.dir, "var")
        desk.run("ticket", "list", check=True)   # the desk as its user would have made it
        for root, dirs, files in os.walk(var):
            for name in dirs + files:
                os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
        os.chown(var, nobody.pw_uid, nobody.pw_gid)

        p = desk.deliver(attachment_message("from root", "root1"), env={"MAILDESK_NOW": NOW})
        tap.eq(p.returncode, 0, "root's deliver is accepted", p.stderr)
        desk.run("tick", env={"MAILDESK_NOW": NOW}, check=True)
        desk.run("ticket", "set", "1", "priority=P2", env={"MAILDESK_NOW": NOW}, check=True)
        foreign = []
        for root, dirs, files in os.walk(var):
            for name in dirs + files:
                st = os.lstat(os.path.join(root, name))
                if st.st_uid != nobody.pw_uid:
                    foreign.append(os.path.relpath(os.path.join(root, name), var))
        tap.eq(sorted(foreign), [], "everything root's commands created belongs to the desk's user")

        as_user = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        if subprocess.run(as_user + ["test", "-x", MAILDESK]).returncode != 0:
            tap.ok(True, "# SKIP the desk's user cannot run this build of maildesk")
            return
        p = subprocess.run(as_user + [MAILDESK, "-c", desk.conf_path, "deliver"],
                           input=attachment_message("from the desk's user", "user1"), capture_output=True,
                           env=dict(os.environ, MAILDESK_NOW=NOW), timeout=60)
        tap.eq(p.returncode, 0, "the desk's user still stores the same attachment", p.stderr.decode(errors="replace"))
    finally:
        desk.cleanup()


def test_secret_key(tap):
    """The reply-token key is made once per desk: a crash while an older
    maildesk made it (an empty file) does not stop the desk for good, and
    processes starting together on a new desk share one key."""
    desk = Desk()
    try:
        var = os.path.join(desk.dir, "var")
        os.makedirs(var)
        open(os.path.join(var, "secret.key"), "wb").close()
        p = desk.deliver(message(subject="after a crash"), env={"MAILDESK_NOW": NOW})
        tap.eq((p.returncode, p.stderr.decode(errors="replace")), (0, ""),
               "an empty secret.key (a crash while it was made) is replaced")
        tap.eq(os.path.getsize(os.path.join(var, "secret.key")), 32, "with a whole key")
        with open(os.path.join(var, "secret.key"), "wb") as f:
            f.write(b"short")
        p = desk.deliver(message(subject="short key"), env={"MAILDESK_NOW": NOW})
        tap.ok(p.returncode == 75 and b"fewer than the 16" in p.stderr,
               "a short key someone wrote is not replaced: the error says why", p.stderr)
    finally:
        desk.cleanup()

    errors = []
    for rnd in range(6):
        desk = Desk()
        try:
            procs = [subprocess.Popen([MAILDESK, "-c", desk.conf_path, "deliver"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=dict(os.environ, MAILDESK_NOW=NOW)) for _ in range(8)]
            for k, p in enumerate(procs):
                out, err = p.communicate(message(subject=f"first {k}", sender=f"c{k}@customer.example"), timeout=60)
                if b"secret.key" in err:
                    errors.append(err.decode(errors="replace"))
        finally:
            desk.cleanup()
    tap.eq(errors, [], "eight delivers on a new desk: none fails over the key")


WAL_LIMIT = 16384000   # src/store.c WAL_SIZE_LIMIT


def test_wal_after_long_reader(tap):
    """A reader holding a snapshot (a backup, an sqlite3 shell left in a
    transaction) while mail arrives lets the WAL grow past its checkpoint
    size; once the reader is gone, the WAL of the running serve shrinks
    back instead of keeping that size for as long as serve runs."""
    import sqlite3
    import threading
    from mdtest import Lmtp
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    server = Server(desk).start(port)
    path = os.path.join(desk.dir, "var", "maildesk.db")
    body = "the printer says paper jam but there is no paper in it\n" * 60

    def send(k, n, failures):
        c = Lmtp(port)
        c.cmd("LHLO load.example")
        for i in range(n):
            sender = f"wal{k}-{i}-{os.urandom(2).hex()}@customer.example"
            _, data = c.deliver(sender, ["support@support.example.com"],
                                message(subject=f"jam {k} {i}", body=body, sender=sender))
            if not data or data[0][0] != 250:
                failures.append(data)
        c.close()

    def burst(sessions, n):
        failures = []
        threads = [threading.Thread(target=send, args=(k, n, failures)) for k in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        return failures

    try:
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM tickets").fetchone()
        failures = burst(6, 60)
        grown = os.path.getsize(path + "-wal")
        tap.ok(grown > WAL_LIMIT, "the WAL grows past a checkpoint's worth while the reader holds it",
               f"{grown} bytes, {len(failures)} failures")
        reader.execute("COMMIT")
        reader.close()
        failures += burst(2, 20)
        after = os.path.getsize(path + "-wal")
        tap.ok(after <= WAL_LIMIT, "once the reader is gone, the WAL shrinks back to a checkpoint's worth",
               f"{after} bytes after {grown}")
        tap.eq(failures, [], "every message was accepted")
    finally:
        server.stop()
        desk.cleanup()


def test_backup_while_serving(tap):
    """maildesk(8) BACKUP: SQLite's online backup of the database, then a
    copy of the spool, then the key, all while serve takes mail, restore
    to a desk that has every ticket of the snapshot with every file it
    names, and whose reply addresses still work."""
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    backup = tempfile.mkdtemp(prefix="maildesk-backup-")
    restored = Desk()
    try:
        server = Server(desk).start(port)
        var = os.path.join(desk.dir, "var")
        stop = threading.Event()
        outcomes = []

        def feed():
            client = Lmtp(port)
            client.cmd("LHLO backup.test")
            for i in range(400):
                if stop.is_set():
                    break
                payload = f"log {i}\r\n".encode() * 50
                _, replies = client.deliver("bob@customer.example", ["support@support.example.com"],
                                            attachment_message(f"Crash {i}", f"backup-{i}", payload))
                outcomes.append(replies)
            client.close()

        feeder = threading.Thread(target=feed)
        feeder.start()
        for _ in range(200):
            if len(outcomes) >= 20:
                break
            time.sleep(0.05)
        # 1. the database: a consistent snapshot while serve writes
        src = sqlite3.connect(os.path.join(var, "maildesk.db"), timeout=30)
        dst = sqlite3.connect(os.path.join(backup, "maildesk.db"))
        src.backup(dst)
        dst.close()
        src.close()
        # 2. then the spool: its files never change once named, so a later copy has all the snapshot names
        shutil.copytree(os.path.join(var, "spool"), os.path.join(backup, "spool"),
                        ignore=lambda d, names: ["tmp"] if d == os.path.join(var, "spool") else [])
        # 3. the key of the reply addresses
        shutil.copy2(os.path.join(var, "secret.key"), os.path.join(backup, "secret.key"))
        stop.set()
        feeder.join(timeout=120)
        tap.eq(server.stop(), 0, "serve stops cleanly")
        tap.ok(outcomes and all(r and r[0][0] == 250 for r in outcomes), "every delivery was accepted",
               outcomes[-3:])
        snapshot = sqlite3.connect(os.path.join(backup, "maildesk.db")).execute(
            "SELECT count(*) FROM tickets").fetchone()[0]
        tap.ok(20 <= snapshot <= len(outcomes), f"the snapshot holds the tickets committed by then ({snapshot})")

        shutil.copytree(backup, os.path.join(restored.dir, "var"))
        tickets = restored.tickets()
        tap.eq(len(tickets), snapshot, "the restored desk lists every ticket of the snapshot")
        missing = []
        for t in tickets:
            for m in restored.show(t["id"])["messages"]:
                for a in m["attachments"]:
                    path = os.path.join(restored.dir, "var", "spool", "blob", a["sha256"][:2], a["sha256"])
                    try:
                        with open(path, "rb") as f:
                            if hashlib.sha256(f.read()).hexdigest() != a["sha256"]:
                                missing.append((t["key"], a["filename"], "differs"))
                    except OSError:
                        missing.append((t["key"], a["filename"], "missing"))
        tap.eq(missing, [], "every attachment of every restored ticket is there, byte for byte")
        raw = [r[0] for r in sqlite3.connect(os.path.join(backup, "maildesk.db")).execute(
            "SELECT raw_sha256 FROM messages WHERE raw_sha256 IS NOT NULL")]
        tap.ok(raw and all(os.path.exists(os.path.join(restored.dir, "var", "spool", "raw", h[:2], h)) for h in raw),
               "and every raw message the snapshot names")
        with open(os.path.join(var, "secret.key"), "rb") as f:   # the key of the mail customers hold
            key = f.read()
        token = base64.b32encode(hmac.new(key, b"1", hashlib.sha256).digest()).decode().lower()[:10]
        to = f"support+SUP-1.{token}@support.example.com"
        before = len(restored.show(1)["messages"])
        p = restored.deliver(message(subject="Any news?", sender="bob@customer.example", to=to), "--recipient", to)
        tap.eq((p.returncode, p.stdout.decode().strip(), len(restored.show(1)["messages"]), len(restored.tickets())),
               (0, "SUP-1", before + 1, snapshot),
               "a reply to an address sent before the backup reaches its ticket on the restored desk")
    finally:
        desk.cleanup()
        restored.cleanup()
        shutil.rmtree(backup, ignore_errors=True)


if __name__ == "__main__":
    run_tests(test_tmp_leftovers, test_root_on_a_users_desk, test_secret_key, test_wal_after_long_reader,
              test_backup_while_serving)
