#!/usr/bin/env python3
"""Reply spoofing (issue 8): impersonation attempts change no ticket and
reach no customer."""
import os

from mdtest import Catcher, Desk, message, run_tests

AGENT = "jane@support.example.com"
CUSTOMER = "alice@customer.example"
NOW = "2026-12-01T10:00:00+02:00"


def token(desk, ticket_id):
    import base64
    import hashlib
    import hmac
    with open(os.path.join(desk.dir, "var", "secret.key"), "rb") as f:
        key = f.read()
    return base64.b32encode(hmac.new(key, str(ticket_id).encode(), hashlib.sha256).digest()).decode().lower()[:10]


def address(ticket_id, tok):
    return f"support+SUP-{ticket_id}.{tok}@support.example.com"


class Setup:
    def __init__(self):
        self.catcher = Catcher().start()
        self.desk = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{self.catcher.port}\n")
        self.desk.run("agent", "add", AGENT, check=True)
        for who in (CUSTOMER, "bob@other.example"):
            self.desk.deliver(message(subject="private matter", sender=who, body="secret details"),
                              env={"MAILDESK_NOW": NOW})
        self.flush()
        self.sent = len(self.catcher.messages())

    def flush(self):
        self.desk.run("outbox", "flush", env={"MAILDESK_NOW": NOW})

    def snapshot(self, ticket_id=1):
        t = self.desk.show(ticket_id)
        return (t["status"], t["priority"], t["category"], t["assignee"], t["visibility"],
                len([m for m in t["messages"] if not m["internal"]]))

    def new_mail_to(self, addr):
        self.flush()
        got = self.catcher.messages()[self.sent:]
        self.sent = len(self.catcher.messages())
        return [raw for env, raw in got if addr in env["rcpt_tos"]]

    def close(self):
        self.catcher.stop()
        self.desk.cleanup()


ATTACK = "#priority P1\n#assign me\n#status resolved\n#share\nPlease send the attachments to me."


def attempt(tap, s, name, msg, *args, expect_exit=0):
    before = s.snapshot(1)
    p = s.desk.deliver(msg, *args, env={"MAILDESK_NOW": NOW})
    tap.eq(p.returncode, expect_exit, f"{name}: answered as expected")
    tap.eq(s.snapshot(1), before, f"{name}: the ticket is unchanged")
    leaked = [raw for raw in s.new_mail_to(CUSTOMER) if b"send the attachments" in raw]
    tap.eq(leaked, [], f"{name}: nothing reaches the customer")


def test_spoofing(tap):
    s = Setup()
    good = token(s.desk, 1)
    attempt(tap, s, "forged From with a guessed subject tag",
            message(subject="Re: [SUP-1] private matter", sender=CUSTOMER.replace("alice", "alice2"), body=ATTACK))
    altered = good[:-1] + ("a" if good[-1] != "a" else "b")
    attempt(tap, s, "a stolen but altered token",
            message(subject="Re: [SUP-1]", sender="mallory@evil.example", to=address(1, altered), body=ATTACK),
            "--recipient", address(1, altered), expect_exit=67)
    other = token(s.desk, 2)
    attempt(tap, s, "the token of another ticket",
            message(subject="Re: [SUP-1]", sender="mallory@evil.example", to=address(1, other), body=ATTACK),
            "--recipient", address(1, other), expect_exit=67)
    attempt(tap, s, "an agent address forged from outside (tag and References only)",
            message(subject="Re: [SUP-1] private matter", sender=AGENT, body=ATTACK,
                    headers=["In-Reply-To: <x@y>", "References: <x@y>"]))
    attempt(tap, s, "a stranger who knows the token",
            message(subject="Re: [SUP-1]", sender="mallory@evil.example", to=address(1, good), body=ATTACK),
            "--recipient", address(1, good))
    attempt(tap, s, "the requester of another ticket at this ticket's token",
            message(subject="Re: [SUP-1]", sender="bob@other.example", to=address(1, good), body=ATTACK),
            "--recipient", address(1, good))
    for forged in (f"<{CUSTOMER}@evil.example>", f"Alice <{CUSTOMER}>, Mallory <mallory@evil.example>",
                   f"Alice <{CUSTOMER}> <mallory@evil.example>"):
        raw = message(subject="Re: [SUP-1] private matter", body=ATTACK).replace(
            f"From: Alice Customer <{CUSTOMER}>".encode(), f"From: {forged}".encode())
        attempt(tap, s, f"an ambiguous From ({forged})", raw, "--sender", "mallory@evil.example")
    # An agent forwards a stranger's mail to the ticket: the commands in
    # it are the stranger's words, not the agent's.
    before = s.snapshot(1)[1:5]
    forwarded = ("---------- Forwarded message ---------\nFrom: Mallory <mallory@evil.example>\n"
                 "Date: Tue, 1 Dec 2026 09:00:00 +0200\nSubject: hi\nTo: <jane@support.example.com>\n\n" + ATTACK)
    p = s.desk.deliver(message(subject="Fwd: hi", sender=AGENT, to=address(1, good), body=forwarded),
                       "--recipient", address(1, good), env={"MAILDESK_NOW": NOW})
    tap.eq(p.returncode, 0, "an agent's forward is accepted")
    tap.eq(s.snapshot(1)[1:5], before, "the commands inside the forwarded message do not run")
    tap.ok(s.snapshot(1)[0] != "Resolved", "not even #status resolved")
    notes = [m for m in s.desk.show(1)["messages"] if m["internal"]]
    tap.ok(all(m["flag"] and m["flag"].startswith("unverified") for m in notes) and len(notes) >= 3,
           "what reached the ticket is kept as flagged internal notes", [m["flag"] for m in notes])
    s.close()


if __name__ == "__main__":
    run_tests(test_spoofing)
