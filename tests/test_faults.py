#!/usr/bin/env python3
"""Resource faults (issue 8): a full disk (a 2 MB tmpfs made by the test
as the data directory) and a database locked by another process.  Each
is a temporary answer (LMTP 452 4.3.1 / 451 4.3.0, deliver exit 75), and
once the fault is gone the same message is stored, once: nothing lost.

Mounting needs root (CI runs as root); a test that cannot mount fails."""
import os
import sqlite3
import subprocess
import threading
import time

from mdtest import Desk, Lmtp, Server, free_port, message, run_tests

NOW = "2026-12-01T10:00:00+02:00"
faults = {"injected": 0}


def fill(path):
    """Writes zeros into PATH until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    chunk = b"\0" * 65536
    try:
        while len(chunk) > 0:
            try:
                os.write(fd, chunk)
            except OSError:
                chunk = chunk[:len(chunk) // 2]   # the last few blocks too
    finally:
        os.close(fd)


def test_disk_full(tap):
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n[smtp]\nurl = smtp://127.0.0.1:{free_port()}\n")
    var = os.path.join(desk.dir, "var")
    os.makedirs(var, exist_ok=True)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", var], capture_output=True)
    if not tap.ok(m.returncode == 0, "a 2 MB tmpfs is mounted as the data directory (needs root)",
                  m.stderr.decode(errors="replace")):
        desk.cleanup()
        return
    try:
        # the disk fills up while serve runs
        server = Server(desk, env={"MAILDESK_NOW": NOW}).start(port)
        c = Lmtp(port)
        c.cmd("LHLO mta.example")
        rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"],
                               message(subject="before", msgid="before"))
        tap.ok(data and data[0][0] == 250, "a message is stored while there is room", data)
        filler = os.path.join(var, "filler")
        fill(filler)
        msg = message(subject="disk full", body=("x" * 70 + "\n") * 300, msgid="diskfull")
        rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], msg)
        tap.ok(data and data[0][1].startswith("452 4.3.1"), "LMTP on a full disk: 452 4.3.1", data)
        faults["injected"] += 1
        p = desk.deliver(msg, env={"MAILDESK_NOW": NOW})
        tap.eq(p.returncode, 75, "deliver on a full disk: exit 75 (EX_TEMPFAIL), the MTA retries")
        faults["injected"] += 1
        tmp = os.path.join(var, "spool", "tmp")
        tap.eq(os.listdir(tmp) if os.path.isdir(tmp) else [], [], "no partial file is left in the spool")

        os.unlink(filler)   # space comes back
        rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], msg)
        tap.ok(data and data[0][0] == 250, "once there is room the same message is accepted over LMTP", data)
        c.close()
        tap.eq(server.stop(), 0, "serve survived the full disk and stops cleanly")
        p = desk.deliver(msg, env={"MAILDESK_NOW": NOW})
        tap.eq((p.returncode, p.stdout.decode().strip()), (0, "duplicate"), "deliver's retry finds it stored")
        subjects = [t["subject"] for t in desk.tickets()]
        tap.eq(sorted(subjects), ["before", "disk full"], "nothing lost, nothing doubled")
    finally:
        subprocess.run(["umount", "-l", var])
        desk.cleanup()


def test_database_locked(tap):
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n[smtp]\nurl = smtp://127.0.0.1:{free_port()}\n")
    desk.deliver(message(subject="first", msgid="first"), env={"MAILDESK_NOW": NOW})
    server = Server(desk, env={"MAILDESK_NOW": NOW}).start(port)

    locker = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"), isolation_level=None,
                             check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    faults["injected"] += 1
    msg = message(subject="while locked", msgid="locked")
    t0 = time.time()
    p = desk.deliver(msg, env={"MAILDESK_NOW": NOW})
    tap.eq(p.returncode, 75, f"deliver with the database locked: exit 75 after {time.time() - t0:.1f} s")

    c = Lmtp(port)
    c.cmd("LHLO mta.example")
    t0 = time.time()
    rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], msg)
    faults["injected"] += 1
    tap.ok(data and data[0][1].startswith("451 4.3.0"),
           f"LMTP with the database locked: 451 4.3.0 after {time.time() - t0:.1f} s", data)
    # released while the next attempt waits: it goes through
    timer = threading.Timer(1.0, lambda: locker.execute("ROLLBACK"))
    timer.start()
    rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], msg)
    timer.join()
    locker.close()
    tap.ok(data and data[0][0] == 250, "released during the busy wait: 250", data)
    c.close()
    tap.eq(server.stop(), 0, "serve stops cleanly")
    subjects = sorted(t["subject"] for t in desk.tickets())
    tap.eq(subjects, ["first", "while locked"], "nothing lost, nothing doubled")
    tap.diag(f"faults injected: {faults['injected']}")
    desk.cleanup()


def chattr(flag, *paths):
    return subprocess.run(["chattr", flag, *paths], capture_output=True)


def test_database_read_only(tap):
    """The database files turn read-only under a running server (root can
    be stopped only by the immutable flag, `chattr +i`): a temporary
    answer, never a bounce, and the message goes through once they are
    writable again."""
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n[smtp]\nurl = smtp://127.0.0.1:{free_port()}\n")
    desk.deliver(message(subject="first", msgid="ro-first"), env={"MAILDESK_NOW": NOW})
    server = Server(desk, env={"MAILDESK_NOW": NOW}).start(port)
    c = Lmtp(port)
    c.cmd("LHLO mta.example")
    rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"],
                           message(subject="warm", msgid="ro-warm"))
    tap.ok(data and data[0][0] == 250, "a message before the fault: 250", data)

    var = os.path.join(desk.dir, "var")
    files = [os.path.join(var, f) for f in ("maildesk.db", "maildesk.db-wal") if os.path.exists(os.path.join(var, f))]
    ch = chattr("+i", *files)
    if not tap.ok(ch.returncode == 0, "the database files are made immutable (needs root on ext4)", ch.stderr):
        server.stop()
        return
    faults["injected"] += 1
    msg = message(subject="while read-only", msgid="ro-during")
    try:
        rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], msg)
        tap.ok(data and data[0][0] in (451, 452) and data[0][1][4:5] == "4",
               "LMTP with a read-only database: a 4xx answer with a 4.x.x status", data)
        tap.diag(f"read-only database: {data[0][1] if data else data}")
    finally:
        chattr("-i", *files)
    rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], msg)
    tap.ok(data and data[0][0] == 250, "writable again: the same message gets 250", data)
    c.close()
    tap.eq(server.stop(), 0, "serve stops cleanly")
    subjects = sorted(t["subject"] for t in desk.tickets())
    tap.eq(subjects, ["first", "warm", "while read-only"], "nothing lost, nothing doubled")
    desk.cleanup()


def test_sessions_fit_fd_limit(tap):
    """Under a low limit on open files, serve keeps its sessions within
    it: the one over gets 421 4.3.2, not an accept(2) that fails with
    EMFILE, which GSocketService retries at once in a loop that fills
    the log."""
    import resource
    import socket

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))

    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\nmax_connections = 512\n"
                           f"[smtp]\nurl = smtp://127.0.0.1:{free_port()}\n")
    server = Server(desk, env={"MAILDESK_NOW": NOW}, preexec_fn=low_limit).start(port)
    socks, greetings = [], []
    try:
        for _ in range(200):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=3)
                socks.append(s)
                greetings.append(s.recv(200).decode(errors="replace"))
            except OSError as e:
                greetings.append(str(e))
                break  # not answered: stuck, as when accept(2) fails
        ready = sum(g.startswith("220 ") for g in greetings)
        refused = sum(g.startswith("421 4.3.2") for g in greetings)
        tap.eq((ready, refused), (16, 184), "(160 - 128 reserved) / 2 sessions; the others 421 4.3.2")
        size = os.path.getsize(server.log_path)
        with open(server.log_path, "rb") as f:
            log = f.read(100000).decode(errors="replace")
        tap.ok("max_connections 512 lowered to 16" in log, "the lowered limit is logged, with why",
               log[-2000:])
        tap.ok("Too many open files" not in log and size < 100000, "no accept loop on EMFILE",
               "%d bytes of log" % size)
        for s in socks:
            s.close()
        socks = []
        time.sleep(0.5)
        client = Lmtp(port)
        client.cmd("LHLO test")
        client.cmd("MAIL FROM:<alice@customer.example>")
        client.cmd("RCPT TO:<support@support.example.com>")
        replies = client.send_data(message(subject="After the crowd"), 1)
        tap.eq([c for c, _ in replies], [250], "once they are gone, mail is taken again")
    finally:
        for s in socks:
            s.close()
        server.stop()
        desk.cleanup()


def test_accept_rests_on_emfile(tap):
    """When accept(2) fails for want of descriptors (here the engine runs
    with no connection limit of serve's under a limit of 40 files), the
    listeners rest a second and warn once a rest; they do not retry at
    once in a loop that burns the CPU and writes the log full.  Once
    connections close, new ones are taken again."""
    import resource
    import socket
    import tempfile

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    builddir = os.environ.get("MD_TOP_BUILDDIR", os.getcwd())
    work = tempfile.mkdtemp(prefix="maildesk-emfile-")
    port = free_port()
    err_path = os.path.join(work, "stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([os.path.join(builddir, "tests", "lmtp-test-server"), os.path.join(work, "spool"),
                                 f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=err, preexec_fn=low_limit)
    socks = []
    try:
        while proc.stdout.readline().strip() != b"ready":
            pass
        for _ in range(60):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(3)
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        size = os.path.getsize(err_path)
        with open(err_path, "rb") as f:
            log = f.read(20000).decode(errors="replace")
        tap.ok("Too many open files" in log, "the engine ran out of descriptors", log[-500:])
        tap.ok(size < 20000 and cpu < 1.0, "and rested: a few warnings, little CPU",
               "%d bytes of log, %.2f s of CPU" % (size, cpu))
        for s in socks:
            s.close()
        socks = []
        time.sleep(1.5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            tap.ok(s.recv(100).startswith(b"220 "), "after they close, a new connection is greeted")
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(10)
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_tests(test_disk_full, test_database_locked, test_database_read_only, test_sessions_fit_fd_limit,
              test_accept_rests_on_emfile)
