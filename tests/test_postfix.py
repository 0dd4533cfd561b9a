#!/usr/bin/env python3
"""A real Postfix relays to `maildesk serve` over LMTP (issue 3).

Each case starts a private Postfix (its own config, queue and data
directories in a temporary directory, smtpd on a free loopback port,
maillog_file instead of syslog), submits a message with swaks and checks
that a ticket exists and Postfix logged status=sent: over TCP, over a
Unix socket, and through a temporary failure (maildesk answers 451 while
the database is locked; Postfix defers, then delivers once flushed, and
exactly one ticket results).  Needs root, as Postfix's master does.
"""
import grp
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time

from mdtest import Desk, Server, free_port, run_tests, wait_port

POSTFIX_TIMEOUT = 30
BUSY_TIMEOUT_S = 5  # MD_BUSY_TIMEOUT_MS in src/desk.c


class Postfix:
    """A private Postfix instance relaying support.example.com to NEXTHOP
    (an lmtp: transport), following /work/shared/NOTES.md."""

    def __init__(self, nexthop):
        self.dir = tempfile.mkdtemp(prefix="maildesk-postfix-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "conf")
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = free_port()
        self.started = False
        for sub in ("conf", "queue", "data"):
            os.mkdir(os.path.join(self.dir, sub))
        shutil.chown(os.path.join(self.dir, "data"), user="postfix")
        with open("/etc/postfix/master.cf") as f:
            master = f.read()
        master, n = re.subn(r"^smtp(\s+)inet(\s+\S+\s+\S+\s+)\S+", rf"{self.port}\1inet\2n", master,
                            count=1, flags=re.M)
        if n != 1:
            raise RuntimeError("no smtp inet line in /etc/postfix/master.cf")
        # A Unix socket outside the queue directory needs an unchrooted lmtp.
        master, n = re.subn(r"^lmtp(\s+)unix(\s+\S+\s+\S+\s+)\S+", r"lmtp\1unix\2n", master, count=1, flags=re.M)
        if n != 1:
            raise RuntimeError("no lmtp unix line in /etc/postfix/master.cf")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(master)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.dir}/queue
data_directory = {self.dir}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains = support.example.com
transport_maps = inline:{{ support.example.com={nexthop} }}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = {self.maillog}
maillog_file_prefixes = /var, /dev/stdout, /tmp
alias_maps =
alias_database =
""")

    def postfix(self, *args, check=True):
        p = subprocess.run(["postfix", "-c", self.conf, *args], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=POSTFIX_TIMEOUT)
        if check and p.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} exited {p.returncode}: {p.stdout.decode()}"
                               f"{self.log()[-2000:]}")
        return p

    def start(self):
        self.postfix("check")
        self.postfix("start")
        self.started = True
        if not wait_port(self.port, 15):
            raise RuntimeError("postfix smtpd did not listen: " + self.log()[-2000:])
        return self

    def stop(self):
        if self.started:
            self.started = False
            try:
                self.postfix("stop", check=False)
            except subprocess.TimeoutExpired:
                pass

    def flush(self):
        subprocess.run(["postqueue", "-c", self.conf, "-f"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=POSTFIX_TIMEOUT)

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def statuses(self):
        """status=... words of the delivery lines to support@, in order."""
        return re.findall(r"to=<support@support\.example\.com>.*? status=(\w+)", self.log())

    def wait_status(self, status, count=1, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.statuses().count(status) >= count:
                return True
            time.sleep(0.1)
        return False

    def submit(self, subject, msgid):
        return subprocess.run(["swaks", "--server", f"127.0.0.1:{self.port}", "--timeout", "20",
                               "--from", "alice@customer.example", "--to", "support@support.example.com",
                               "--header", f"Subject: {subject}", "--header", f"Message-ID: <{msgid}>",
                               "--body", "Hello,\nthe checkout page is broken.\n"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def maildesk_desk(listen):
    # The desk's own mail (the acknowledgement) goes to a port nobody
    # listens on: it stays queued in the database, which is all we need.
    return Desk(extra_conf=f"[lmtp]\nlisten = {listen}\n[smtp]\nurl = smtp://127.0.0.1:{free_port()}\n")


def relay_once(tap, label, listen, nexthop, wait_listener):
    desk = maildesk_desk(listen)
    server = Server(desk)
    postfix = Postfix(nexthop)
    try:
        server.start()
        if not tap.ok(wait_listener(), f"{label}: maildesk listens", server.read_log()):
            return
        postfix.start()
        p = postfix.submit("Checkout broken", f"pf-{label}@customer.example")
        tap.eq(p.returncode, 0, f"{label}: Postfix accepts the message from swaks", p.stdout.decode()[-1500:])
        tap.ok(postfix.wait_status("sent"), f"{label}: Postfix logged status=sent", postfix.log()[-3000:])
        sent = [l for l in postfix.log().splitlines() if "status=sent" in l]
        tap.ok(sent and "SUP-1" in sent[0], f"{label}: its log quotes maildesk's 250 with the ticket key", sent)
        tickets = desk.tickets()
        tap.ok(len(tickets) == 1 and tickets[0]["subject"] == "Checkout broken",
               f"{label}: the ticket exists", tickets)
    finally:
        postfix.cleanup()
        server.stop()
        desk.cleanup()


def test_relay_tcp(tap):
    port = free_port()
    relay_once(tap, "tcp", f"127.0.0.1:{port}", f"lmtp:inet:127.0.0.1:{port}", lambda: wait_port(port))


def test_relay_unix(tap):
    sockdir = tempfile.mkdtemp(prefix="maildesk-sock-")
    os.chmod(sockdir, 0o755)
    sock = os.path.join(sockdir, "lmtp.sock")

    def wait_socket():
        deadline = time.time() + 10
        while time.time() < deadline and not os.path.exists(sock):
            time.sleep(0.05)
        if not os.path.exists(sock):
            return False
        # The socket is 0660 for its owner's group: Postfix's lmtp client
        # (user postfix) connects as a member of the socket's group, the way
        # an administrator would set it up.
        os.chown(sock, -1, grp.getgrnam("postfix").gr_gid)
        return True

    try:
        relay_once(tap, "unix", f"unix:{sock}", f"lmtp:unix:{sock}", wait_socket)
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def test_temporary_failure(tap):
    port = free_port()
    desk = maildesk_desk(f"127.0.0.1:{port}")
    server = Server(desk)
    postfix = Postfix(f"lmtp:inet:127.0.0.1:{port}")
    lock = None
    try:
        server.start(port)
        desk.tickets()  # the database and its WAL exist before we lock them
        lock = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"), timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        locked_at = time.time()
        postfix.start()
        p = postfix.submit("Locked out", "pf-busy@customer.example")
        tap.eq(p.returncode, 0, "busy: Postfix accepts the message from swaks", p.stdout.decode()[-1500:])
        deferred = postfix.wait_status("deferred", timeout=BUSY_TIMEOUT_S + 25)
        tap.ok(deferred, "busy: Postfix logged status=deferred", postfix.log()[-3000:])
        lines = [l for l in postfix.log().splitlines() if "status=deferred" in l]
        tap.ok(lines and "451 4.3.0" in lines[0], "busy: because maildesk answered 451 4.3.0", lines)
        tap.ok(time.time() - locked_at >= BUSY_TIMEOUT_S, "busy: maildesk waited out its busy timeout first")
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        tap.eq(desk.tickets(), [], "busy: nothing was stored while the database was locked")
        postfix.flush()
        tap.ok(postfix.wait_status("sent"), "after the flush Postfix logged status=sent", postfix.log()[-3000:])
        time.sleep(0.5)  # any second delivery would show up here
        tap.eq(postfix.statuses(), ["deferred", "sent"], "one deferral, one delivery")
        tickets = desk.tickets()
        tap.ok(len(tickets) == 1 and tickets[0]["subject"] == "Locked out", "exactly one ticket results", tickets)
        if tickets:
            msgs = [m for m in desk.show(tickets[0]["id"])["messages"] if m["direction"] == "in"]
            tap.eq(len(msgs), 1, "holding one incoming message")
    finally:
        if lock is not None:
            lock.close()
        postfix.cleanup()
        server.stop()
        desk.cleanup()


if __name__ == "__main__":
    run_tests(test_relay_tcp, test_relay_unix, test_temporary_failure)
