#!/usr/bin/env python3
"""What a desk run for years meets besides mail: files left by writers
killed mid-write, processes run as root by cron or an admin, a WAL that a
long reader let grow, a secret key whose first writer died.

Loopback only; each check finishes in seconds.
"""
import os
import signal
import sqlite3
import subprocess
import time

from mdtest import MAILDESK, Desk, Server, free_port, message, run_tests, wait_port

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


if __name__ == "__main__":
    run_tests(test_tmp_leftovers)
