#!/usr/bin/env python3
"""`maildesk serve` as an LMTP server (issue 3), against real clients:
raw LMTP and swaks, per-recipient replies, error codes, signals, and the
desk's mail reaching a real SMTP server."""
import os
import shutil
import signal
import subprocess
import time

from mdtest import Catcher, Desk, Lmtp, Server, free_port, message, run_tests, token_address

NOW = "2026-12-01T10:00:00+02:00"


def serve_desk(port, catcher=None, extra=""):
    smtp = f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n" if catcher else ""
    return Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\nmax_message_size = 64k\nmax_recipients = 5\n"
                           f"{smtp}{extra}")




def test_conversation(tap):
    port = free_port()
    desk = serve_desk(port)
    server = Server(desk, env={"MAILDESK_NOW": NOW}).start(port)
    c = Lmtp(port)
    tap.eq(c.greeting[0], 220, "greeting")
    code, text = c.cmd("LHLO client.example")
    tap.ok(code == 250 and all(k in text for k in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SIZE 65536")),
           "LHLO lists the capabilities", text)
    tap.eq(c.cmd("HELO client.example")[0], 500, "HELO is refused: LMTP needs LHLO")
    rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"],
                           message(subject="Checkout broken", msgid="lmtp1@customer.example"))
    tap.eq(rcpt[0][0], 250, "the intake address is accepted at RCPT")
    tap.ok(data and data[0][0] == 250 and "2.0.0" in data[0][1] and "SUP-1" in data[0][1],
           "250 2.0.0 with the ticket key after the final dot", data)
    tickets = desk.tickets()
    tap.eq(len(tickets), 1, "the ticket exists once 250 was sent")

    tok = token_address(desk, 1)
    rcpts = ["support@support.example.com", tok, "support+SUP-1.aaaaaaaaaa@support.example.com",
             "sales@support.example.com", "support@elsewhere.example"]
    rcpt, data = c.deliver("alice@customer.example", rcpts,
                           message(subject="Re: [SUP-1] Checkout broken", msgid="lmtp2@customer.example"))
    codes = [r[0] for r in rcpt]
    tap.eq(codes, [250, 250, 550, 550, 550], "RCPT: intake and token accepted, the rest refused")
    tap.ok("5.7.1" in rcpt[2][1] and "5.1.1" in rcpt[3][1] and "5.1.2" in rcpt[4][1],
           "bad token 5.7.1, unknown user 5.1.1, wrong domain 5.1.2", rcpt)
    tap.eq([d[0] for d in data], [250, 250], "one reply per accepted recipient, in RCPT order")
    tap.eq(len([m for m in desk.show(1)["messages"] if m["direction"] == "in"]), 2,
           "a message to two of our addresses is stored once")

    # One message to two tickets: the second ticket's address waits for a
    # transaction of its own (452 4.5.3), and is filed there when it comes.
    c.deliver("alice@customer.example", ["support@support.example.com"], message(subject="Second"))
    both = message(subject="About both", sender="alice@customer.example", msgid="both")
    rcpt, data = c.deliver("alice@customer.example", [token_address(desk, 1), token_address(desk, 2)], both)
    tap.ok([r[0] for r in rcpt] == [250, 452] and "4.5.3" in rcpt[1][1],
           "RCPT for a second ticket's address: 452 4.5.3", rcpt)
    tap.ok(len(data) == 1 and "SUP-1" in data[0][1], "the message is filed to the first ticket", data)
    rcpt, data = c.deliver("alice@customer.example", [token_address(desk, 2)], both)
    tap.ok(data and data[0][0] == 250 and "SUP-2" in data[0][1], "and, sent again on its own, to the second", data)
    tap.eq([m["body"].strip() for m in desk.show(2)["messages"] if m["direction"] == "in"][-1:],
           ["Hello,\nit does not work."], "where it is stored")
    rcpt, data = c.deliver("alice@customer.example", [token_address(desk, 2)], both)
    tap.ok(data and "duplicate" in data[0][1], "a redelivery to the same ticket is still a duplicate", data)
    # An MTA that delivers one recipient at a time: a reply to the ticket's
    # address with the intake in Cc comes twice, and is stored once.
    split = message(subject="Re: [SUP-1] Checkout broken", msgid="split")
    rcpt, data = c.deliver("alice@customer.example", [token_address(desk, 1)], split)
    tap.ok(data and "SUP-1" in data[0][1], "the copy to the ticket's address is filed", data)
    rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], split)
    tap.ok(data and "duplicate" in data[0][1], "the copy to the intake is a duplicate", data)
    split2 = message(subject="Re: [SUP-1] Checkout broken", msgid="split2")
    c.deliver("alice@customer.example", ["support@support.example.com"], split2)
    rcpt, data = c.deliver("alice@customer.example", [token_address(desk, 1)], split2)
    tap.ok(data and "duplicate" in data[0][1], "in either order", data)

    c.cmd("RSET")
    c.cmd("MAIL FROM:<a@b.example>")
    for i in range(5):
        c.cmd(f"RCPT TO:<support@support.example.com>")
    tap.ok(c.cmd("RCPT TO:<support@support.example.com>")[1].startswith("452 4.5.3"), "too many recipients: 452 4.5.3")
    c.cmd("RSET")
    tap.ok(c.cmd("MAIL FROM:<a@b.example> SIZE=1000000000")[1].startswith("552 5.3.4"),
           "a declared SIZE over the limit: 552 5.3.4")
    c.cmd("MAIL FROM:<a@b.example>")
    c.cmd("RCPT TO:<support@support.example.com>")
    big = message(subject="big", body="x" * 70 + "\n" * 1000 + ("y" * 70 + "\n") * 1000)
    data = c.send_data(big, 1)
    tap.ok(data[0][1].startswith("552 5.3.4"), "a message over max_message_size: 552 5.3.4", data)
    tap.eq(c.cmd("VRFY support")[0] in (252, 502), True, "VRFY answered 252 or 502")
    tap.ok(c.cmd("NOOP")[1].startswith("250 2.0.0"), "NOOP 250 2.0.0")
    c.close()

    rc = server.stop()
    tap.eq(rc, 0, "SIGTERM exits 0")
    log = server.read_log()
    tap.ok("delivered" in log and "SUP-1" in log, "one log line per delivered message with the ticket key", log[-2000:])
    desk.cleanup()


def test_swaks(tap):
    if not shutil.which("swaks"):
        tap.ok(False, "swaks is installed (contrib/install-deps.sh --test)")
        return
    port = free_port()
    desk = serve_desk(port)
    server = Server(desk).start(port)
    p = subprocess.run(["swaks", "--protocol", "LMTP", "--server", f"127.0.0.1:{port}", "--pipeline",
                        "--from", "bob@customer.example", "--to", "support@support.example.com",
                        "--header", "Subject: swaks says hello", "--body", "Hello from swaks"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    tap.eq(p.returncode, 0, "swaks --protocol LMTP --pipeline delivers", p.stdout.decode()[-1500:])
    t = desk.tickets()
    tap.ok(len(t) == 1 and t[0]["subject"] == "swaks says hello", "and the ticket is there", t)
    server.stop()
    desk.cleanup()


def test_reload(tap):
    port = free_port()
    rules = None
    desk = serve_desk(port)
    rules = os.path.join(desk.dir, "my.rules")
    with open(rules, "w") as f:
        f.write('rule billing\n  subject /invoice/i\n  set category "Consulting Business Request"\n')
    with open(desk.conf_path, "a") as f:
        pass
    text = open(desk.conf_path).read().replace("rules = ", "rules = " + rules + "\n#", 1)
    desk.write_conf(text)
    server = Server(desk).start(port)
    deadline = time.time() + 5   # the line follows the listeners' start
    while f"rules {rules}, forms none" not in server.read_log() and time.time() < deadline:
        time.sleep(0.05)
    tap.ok(f"rules {rules}, forms none" in server.read_log(),
           "the startup line names the rules file and the forms in use", server.read_log())
    c = Lmtp(port)
    c.cmd("LHLO x")
    c.deliver("a@customer.example", ["support@support.example.com"], message(subject="invoice 1"))
    with open(rules, "w") as f:
        f.write('rule billing\n  subject /invoice/i\n  set category "Bug"\n')
    server.signal(signal.SIGHUP)
    time.sleep(0.5)
    c.deliver("a@customer.example", ["support@support.example.com"], message(subject="invoice 2"))
    with open(rules, "w") as f:
        f.write('rule broken\n  subject /(/\n')
    server.signal(signal.SIGHUP)
    time.sleep(0.5)
    rcpt, data = c.deliver("a@customer.example", ["support@support.example.com"], message(subject="invoice 3"))
    tap.eq([d[0] for d in data], [250], "the session survived both reloads")
    with open(rules, "w") as f:
        f.write('rule billing\n  subject /invoice/i\n  set category "Bug"\n')
    cats = [t["category"] for t in desk.tickets()]
    tap.eq(cats, ["Consulting Business Request", "Bug", "Bug"],
           "SIGHUP loads new rules; a broken file keeps the old set")
    tap.ok("reload failed" in server.read_log(), "and says why in the log")
    c.close()
    server.stop()
    desk.cleanup()


def thread_nice(pid):
    """{thread name: nice value} of the sender and the writer of PID."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            stat = f.read()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name in ("outbox", "md-writer"):
            out[name] = int(stat[stat.rindex(")") + 2:].split()[16])  # field 19: nice
    return out


def test_mail_goes_out(tap):
    catcher = Catcher().start()
    port = free_port()
    desk = serve_desk(port, catcher)
    server = Server(desk).start(port)
    c = Lmtp(port)
    c.cmd("LHLO x")
    c.deliver("alice@customer.example", ["support@support.example.com"],
              message(subject="Where is my order?", msgid="order1@customer.example"))
    deadline = time.time() + 20
    while time.time() < deadline and not catcher.messages():
        time.sleep(0.1)
    got = catcher.messages()
    tap.eq(len(got), 1, "the acknowledgement reaches the SMTP server without any flush command")
    if got:
        env, raw = got[0]
        tap.eq(env["rcpt_tos"], ["alice@customer.example"], "to the requester")
        text = raw.decode(errors="replace")
        tap.ok("Subject: [SUP-1]" in text or "[SUP-1]" in text.split("\r\n\r\n")[0], "tagged subject", text[:800])
        tap.ok("In-Reply-To: <order1@customer.example>" in text, "threaded under the customer's message")
        tap.ok("Auto-Submitted: auto-replied" in text, "marked auto-replied (RFC 3834)")
        reply_to = [l for l in text.split("\r\n") if l.startswith("Reply-To:")]
        tap.ok(reply_to and f"<{token_address(desk, 1)}>" in reply_to[0], "Reply-To is the ticket's token address",
               reply_to)
    tap.eq(thread_nice(server.proc.pid), {"outbox": 10, "md-writer": 0},
           "the sender runs at nice 10, below the writer the sessions wait on")
    c.close()
    server.stop()
    catcher.stop()
    desk.cleanup()


def ack_held_by_smtp_server(subject, msgid):
    """A serve whose acknowledgement of one delivered message the SMTP
    server has (after the final dot) and answers only 2 s later: the
    sender is waiting for that answer when this returns."""
    catcher = Catcher().start()
    catcher.reply("DATA alice@customer.example wait 2\n")
    port = free_port()
    desk = serve_desk(port, catcher)
    server = Server(desk).start(port)
    c = Lmtp(port)
    c.cmd("LHLO x")
    c.deliver("alice@customer.example", ["support@support.example.com"], message(subject=subject, msgid=msgid))
    c.close()
    time.sleep(1.0)  # the acknowledgement is sent; the server waits before its 250
    return catcher, desk, server


def test_stop_waits_for_the_answer_to_a_sent_message(tap):
    """SIGTERM while the SMTP server holds its answer to a message it
    already has (after the final dot): the sender waits for the answer
    (a few seconds at most) instead of aborting, so the row is marked
    sent and the message does not go a second time."""
    catcher, desk, server = ack_held_by_smtp_server("Stop now", "stop1@customer.example")
    started = time.time()
    rc = server.stop()
    took = time.time() - started
    tap.eq(rc, 0, "SIGTERM exits 0")
    tap.ok(took < 8, f"within the grace for the answer ({took:.1f} s)")
    rows = desk.json("outbox", "list")
    acks = [r for r in rows if r.get("kind") == "ack"]
    tap.eq([r.get("state") for r in acks], ["sent"], "the acknowledgement is marked sent, not queued again", rows)
    deadline = time.time() + 5
    while time.time() < deadline and not catcher.messages():
        time.sleep(0.1)
    tap.eq(len(catcher.messages()), 1, "and the server has it once")
    catcher.stop()
    desk.cleanup()


# An LD_PRELOAD shim: every listen(2) returns only after a pause, so
# that a test can signal serve while it is still starting, its port
# already answering.
LISTEN_PAUSE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>
int listen (int fd, int backlog)
{
	int (*real) (int, int) = (int (*) (int, int)) dlsym (RTLD_NEXT, "listen");
	int r = real (fd, backlog);
	usleep (700 * 1000);
	return r;
}
"""


def test_stop_while_starting(tap):
    """A SIGTERM as soon as the port answers (an init system, or a test,
    may send it then) is the graceful stop: the handlers were installed
    only after the listeners and the rest had started, so such a signal
    killed serve outright (exit -15)."""
    port = free_port()
    desk = serve_desk(port)
    shim = os.path.join(desk.dir, "listen-pause.so")
    with open(shim + ".c", "w") as f:
        f.write(LISTEN_PAUSE)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", shim, shim + ".c", "-ldl"], check=True, timeout=60)
    env = {"MAILDESK_NOW": NOW, "LD_PRELOAD": shim}
    if "ASAN_OPTIONS" in os.environ:  # a sanitizer build wants its runtime first; this shim needs none
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"] + ":verify_asan_link_order=0"
    server = Server(desk, env=env).start(port)
    server.signal(signal.SIGTERM)
    tap.eq(server.stop(), 0, "SIGTERM while serve starts, its port answering: a graceful stop (exit 0)",
           server.read_log()[-2000:])
    tap.ok("serve: stopped" in server.read_log(), "serve says it stopped", server.read_log()[-2000:])
    desk.cleanup()


def test_second_sigterm_while_stopping(tap):
    """A second SIGTERM while serve stops (here: while the sender waits
    for the answer to a message the SMTP server has) changes nothing:
    the handlers went before the rest stopped, so it killed serve, the
    acknowledgement stayed queued and would go a second time."""
    catcher, desk, server = ack_held_by_smtp_server("Stop twice", "stop2@customer.example")
    server.signal(signal.SIGTERM)
    time.sleep(0.5)
    tap.eq(server.stop(), 0, "SIGTERM, and SIGTERM again while stopping: exit 0", server.read_log()[-2000:])
    acks = [r for r in desk.json("outbox", "list") if r.get("kind") == "ack"]
    tap.eq([r.get("state") for r in acks], ["sent"], "the acknowledgement is marked sent, not queued again", acks)
    catcher.stop()
    desk.cleanup()


def test_trimming_off_the_writer(tap):
    """A reply whose quoted history is long and costly to trim (a MB of
    "On ..., X wrote:" lines, seconds of work) is trimmed on the parsing
    threads: a message from another session meanwhile is committed and
    answered first, not queued behind it in the writer every session
    waits for."""
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\n")
    server = Server(desk).start(port)
    a, b = Lmtp(port, timeout=120), Lmtp(port, timeout=120)
    a.cmd("LHLO a")
    b.cmd("LHLO b")
    a.deliver("alice@customer.example", ["support@support.example.com"],
              message(subject="Slow to trim", msgid="trim0@customer.example"))
    history = "".join(f"On day {i}, someone wrote:\r\n" for i in range(40000))
    slow = ("From: alice@customer.example\r\nTo: support@support.example.com\r\nSubject: Re: [SUP-1] Slow to trim\r\n"
            "Message-ID: <trim1@customer.example>\r\nIn-Reply-To: <trim0@customer.example>\r\n\r\n"
            "The new text.\r\n\r\n" + history).encode()
    a.cmd("MAIL FROM:<alice@customer.example>")
    a.cmd("RCPT TO:<support@support.example.com>")
    a.cmd("DATA")
    a.sock.sendall(slow + b".\r\n")  # its reply is read later
    time.sleep(0.5)
    _, replies = b.deliver("bob@customer.example", ["support@support.example.com"],
                           message(subject="Quick one", msgid="quick@customer.example"))
    a.sock.setblocking(False)
    try:
        pending = a.sock.recv(4096)
    except BlockingIOError:
        pending = b""
    a.sock.setblocking(True)
    tap.eq([c for c, _ in replies], [250], "the other session's message is accepted")
    tap.eq(pending, b"", "while the long reply is still being trimmed", pending)
    a.buf = pending
    code, _ = a.reply()
    tap.eq(code, 250, "then the long reply is accepted too")
    bodies = [m["body"] for m in desk.show(1)["messages"] if m["direction"] == "in"]
    tap.ok(bodies and bodies[-1].startswith("The new text."), "filed on its ticket", [b[:80] for b in bodies])
    a.close()
    b.close()
    server.stop()
    desk.cleanup()

if __name__ == "__main__":
    run_tests(test_conversation, test_swaks, test_reload, test_mail_goes_out,
              test_stop_waits_for_the_answer_to_a_sent_message, test_stop_while_starting,
              test_second_sigterm_while_stopping, test_trimming_off_the_writer)
