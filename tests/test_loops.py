#!/usr/bin/env python3
"""Loop and storm safety (issue 4, RFC 3834): two desks pointed at each
other, an auto-responder, the acknowledgement rate limit, and bounces."""
import email
import email.policy

from mdtest import Catcher, Desk, message, run_tests

NOW = "2026-12-01T10:00:00+02:00"


class Wired:
    """A desk whose outgoing mail lands in its own SMTP catcher."""

    def __init__(self, domain):
        self.catcher = Catcher().start()
        self.desk = Desk(domain=domain, extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{self.catcher.port}\n")
        self.taken = 0

    def outgoing(self):
        self.desk.run("outbox", "flush", env={"MAILDESK_NOW": NOW})
        got = self.catcher.messages()
        fresh = got[self.taken:]
        self.taken = len(got)
        return fresh

    def close(self):
        self.catcher.stop()
        self.desk.cleanup()


def test_two_desks(tap):
    a, b = Wired("a.example"), Wired("b.example")
    # B's desk writes to A, as if an agent of B had opened a ticket at A.
    first = message(subject="Your service is down", sender="support@b.example", to="support@a.example")
    a.desk.deliver(first, "--recipient", "support@a.example", env={"MAILDESK_NOW": NOW})
    total, rounds = 0, 0
    for rounds in range(1, 11):
        moved = 0
        for src, dst in ((a, b), (b, a)):
            for env, raw in src.outgoing():
                for rcpt in env["rcpt_tos"]:
                    if rcpt.endswith("@" + dst.desk.domain):
                        dst.desk.deliver(raw, "--recipient", rcpt, "--sender", env["mail_from"],
                                         env={"MAILDESK_NOW": NOW})
                        moved += 1
        total += moved
        if moved == 0:
            break
    tap.ok(moved == 0, f"the exchange stops by itself (after {rounds} rounds)")
    tap.ok(total <= 2, f"after a small number of messages ({total})")
    a.close()
    b.close()


def test_auto_responder(tap):
    a = Wired("a.example")
    a.desk.deliver(message(subject="Help", msgid="h1@customer.example"), env={"MAILDESK_NOW": NOW})
    acks = a.outgoing()
    tap.eq(len(acks), 1, "one acknowledgement")
    ack = email.message_from_bytes(acks[0][1], policy=email.policy.default)
    vacation = message(subject="Out of office: " + ack["Subject"], to=acks[0][0]["mail_from"],
                       headers=["Auto-Submitted: auto-replied", f"In-Reply-To: {ack['Message-ID']}"],
                       body="I am on holiday until Monday.")
    a.desk.deliver(vacation, "--recipient", acks[0][0]["mail_from"], env={"MAILDESK_NOW": NOW})
    again = [m for m in a.outgoing() if "alice@customer.example" in m[0]["rcpt_tos"]]
    tap.eq(again, [], "nothing automatic answers an auto-reply")
    for hdr in ("Precedence: bulk", "Precedence: Bulk", "X-Auto-Response-Suppress: ALL", "List-Id: <news.example.org>",
                "X-Maildesk-Loop: other.example"):
        a.desk.deliver(message(subject="newsletter", headers=[hdr]), env={"MAILDESK_NOW": NOW})
    a.desk.deliver(message(subject="bounce", sender="MAILER-DAEMON@mx.example"), env={"MAILDESK_NOW": NOW})
    a.desk.deliver(message(subject="noreply", sender="no-reply@shop.example"), env={"MAILDESK_NOW": NOW})
    to_senders = [m for m in a.outgoing() if not any(r.endswith("@a.example") for r in m[0]["rcpt_tos"])]
    tap.eq(to_senders, [], "nor list mail, bulk mail, our loop header, MAILER-DAEMON or no-reply senders")
    a.close()


def test_null_sender(tap):
    """RFC 3834 and RFC 5321 6.1: mail with a null envelope sender (<>,
    or a Return-Path of <> when the entry point has no envelope) opens
    its ticket but is never answered automatically."""
    a = Wired("a.example")
    a.desk.deliver(message(subject="Away", sender="bob@customer.example"), "--sender", "",
                   env={"MAILDESK_NOW": NOW})
    a.desk.deliver(message(subject="Away again", sender="carol@customer.example", headers=["Return-Path: <>"]),
                   env={"MAILDESK_NOW": NOW})
    tap.eq(len(a.desk.tickets()), 2, "both open tickets")
    tap.eq(a.outgoing(), [], "neither gets an acknowledgement")
    a.desk.deliver(message(subject="Real", sender="dave@customer.example"), "--sender", "dave@customer.example",
                   env={"MAILDESK_NOW": NOW})
    tap.eq(len(a.outgoing()), 1, "while a real sender does")
    a.close()


def test_rate_limit(tap):
    a = Wired("a.example")
    for i in range(8):
        a.desk.deliver(message(subject=f"ticket {i}"), env={"MAILDESK_NOW": NOW})
    acks = [m for m in a.outgoing() if m[0]["rcpt_tos"] == ["alice@customer.example"]]
    tap.eq(len(acks), 5, "acknowledgements to one sender are limited to 5 an hour")
    tap.eq(len(a.desk.tickets()), 8, "while every ticket is still opened")
    a.desk.deliver(message(subject="later"), env={"MAILDESK_NOW": "2026-12-01T11:30:00+02:00"})
    a.desk.run("outbox", "flush", env={"MAILDESK_NOW": "2026-12-01T11:30:00+02:00"})
    tap.eq(len([m for m in a.catcher.messages() if m[0]["rcpt_tos"] == ["alice@customer.example"]]), 6,
           "an hour later they flow again")
    a.close()


def dsn(original_id, failed, envelope_to, msgid="dsn1@mx.customer.example"):
    return (f"From: MAILER-DAEMON@mx.customer.example\r\nTo: {envelope_to}\r\nSubject: Undelivered Mail\r\n"
            f"Message-ID: <{msgid}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n"
            f"--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            f"--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n"
            f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
            f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_id}\r\n"
            f"Subject: whatever\r\n\r\n--R--\r\n").encode()


def test_bounce(tap):
    a = Wired("a.example")
    a.desk.deliver(message(subject="Help", sender="gone@customer.example"), env={"MAILDESK_NOW": NOW})
    env, raw = a.outgoing()[0]
    ack = email.message_from_bytes(raw, policy=email.policy.default)
    report = dsn(ack["Message-ID"], "gone@customer.example", env["mail_from"])
    p = a.desk.deliver(report, "--recipient", env["mail_from"], "--sender", "", env={"MAILDESK_NOW": NOW})
    tap.eq(p.returncode, 0, "the DSN is accepted")
    tap.eq(len(a.desk.tickets()), 1, "and opens no ticket")
    notes = [m for m in a.desk.show(1)["messages"] if m["flag"] == "bounce"]
    tap.ok(notes and notes[0]["internal"], "it is an internal note on the ticket of the bounced mail")
    a.desk.deliver(message(subject="Another", sender="gone@customer.example"), env={"MAILDESK_NOW": NOW})
    tap.eq(len(a.desk.tickets()), 2, "a later message still opens a ticket")
    a.desk.deliver(dsn("<unknown@x>", "gone@customer.example", "support@a.example"), env={"MAILDESK_NOW": NOW})
    tap.eq(len(a.desk.tickets()), 2, "a DSN for mail we do not know opens no ticket either")
    a.close()


def test_bouncing_address(tap):
    a = Wired("a.example")
    a.desk.deliver(message(subject="Help", sender="gone@customer.example"), env={"MAILDESK_NOW": NOW})
    env, raw = a.outgoing()[0]
    ack = email.message_from_bytes(raw, policy=email.policy.default)
    a.desk.deliver(dsn(ack["Message-ID"], "gone@customer.example", env["mail_from"]), "--recipient",
                   env["mail_from"], env={"MAILDESK_NOW": NOW})
    tok = env["mail_from"]
    a.desk.run("agent", "add", "jane@a.example", check=True)
    a.desk.run("ticket", "set", "1", "status=Resolved", "--as", "jane@a.example", env={"MAILDESK_NOW": NOW}, check=True)
    acks = [m for m in a.outgoing() if "gone@customer.example" in m[0]["rcpt_tos"]]
    tap.ok(tok.startswith("support+SUP-1."), "the desk's mail goes out from the ticket's own address (VERP)", tok)
    tap.eq(len(acks), 0, "automatic mail stops to an address that bounced", acks)
    a.close()


def test_forged_bounce(tap):
    """Anyone can write a delivery report: one that did not come back to
    the ticket's own address, or that names an address the desk never
    mailed on that ticket, stops no mail."""
    a = Wired("a.example")
    a.desk.run("agent", "add", "jane@a.example", check=True)
    a.desk.deliver(message(subject="Help", sender="alice@customer.example"), env={"MAILDESK_NOW": NOW})
    env_alice, raw = a.outgoing()[0]
    ack = email.message_from_bytes(raw, policy=email.policy.default)
    a.desk.deliver(message(subject="Mine", sender="mallory@evil.example"), env={"MAILDESK_NOW": NOW})
    env_mallory, _ = a.outgoing()[0]
    # To the intake, naming Alice's acknowledgement, from Mallory.
    a.desk.deliver(dsn(ack["Message-ID"], "alice@customer.example", "support@a.example"),
                   "--recipient", "support@a.example", "--sender", "", env={"MAILDESK_NOW": NOW})
    # To Mallory's own ticket address, which he knows, naming Alice and the agent.
    for victim in ("alice@customer.example", "jane@a.example"):
        a.desk.deliver(dsn("<x@evil.example>", victim, env_mallory["mail_from"], msgid=f"{victim}@evil.example"),
                       "--recipient", env_mallory["mail_from"], "--sender", "", env={"MAILDESK_NOW": NOW})
    tap.eq(len(a.desk.tickets()), 2, "the reports open no ticket")
    a.desk.deliver(message(subject="New one", sender="carol@customer.example"), env={"MAILDESK_NOW": NOW})
    tap.eq(len([m for m in a.outgoing() if "jane@a.example" in m[0]["rcpt_tos"]]), 1,
           "the agent a report named still hears of new tickets")
    a.desk.run("ticket", "set", "1", "status=Resolved", "--as", "jane@a.example", env={"MAILDESK_NOW": NOW},
               check=True)
    to_alice = [m for m in a.outgoing() if "alice@customer.example" in m[0]["rcpt_tos"]]
    tap.eq(len(to_alice), 1, "Alice still gets the desk's automatic mail", to_alice)
    # The real thing still works: a report to her ticket's address.
    a.desk.deliver(dsn(ack["Message-ID"], "alice@customer.example", env_alice["mail_from"], msgid="real@mx.example"),
                   "--recipient", env_alice["mail_from"], "--sender", "", env={"MAILDESK_NOW": NOW})
    a.desk.run("ticket", "set", "1", "status=Reopened", "--as", "jane@a.example", env={"MAILDESK_NOW": NOW},
               check=True)
    tap.eq([m for m in a.outgoing() if "alice@customer.example" in m[0]["rcpt_tos"]], [],
           "while a report that came back to her ticket's address stops it")
    a.close()


def test_own_mail(tap):
    """The desk's own mail come back, or mail claiming one of its own
    addresses, opens nothing, changes nothing and is answered by no one."""
    a = Wired("a.example")
    a.desk.run("agent", "add", "jane@a.example", check=True)
    a.desk.deliver(message(subject="Help", headers=["Cc: security@a.example, bob@customer.example"]),
                   env={"MAILDESK_NOW": NOW})
    env, raw = a.outgoing()[0]
    status = a.desk.show(1)["status"]
    # The acknowledgement, looped back to the ticket's address by a misconfigured forward.
    p = a.desk.deliver(raw, "--recipient", env["mail_from"], env={"MAILDESK_NOW": NOW})
    tap.eq(p.returncode, 0, "the looped acknowledgement is accepted")
    notes = [m for m in a.desk.show(1)["messages"] if (m.get("flag") or "").startswith("loop:")]
    tap.ok(len(notes) == 1 and notes[0]["internal"], "kept as an internal note on its ticket", notes)
    tap.eq(a.desk.show(1)["status"], status, "which changes nothing")
    tap.eq(a.outgoing(), [], "and tells no one")
    for sender in ("support@a.example", "security@a.example"):
        a.desk.deliver(message(subject="From the desk", sender=sender), env={"MAILDESK_NOW": NOW})
    tap.eq(len(a.desk.tickets()), 1, "mail from the desk's own addresses opens no ticket")
    tap.eq(a.outgoing(), [], "nor is answered")
    a.desk.run("ticket", "reply", "1", "--as", "jane@a.example", input=b"On it.\n", env={"MAILDESK_NOW": NOW},
               check=True)
    rcpts = sorted(r for m in a.outgoing() for r in m[0]["rcpt_tos"])
    tap.eq(rcpts, ["alice@customer.example", "bob@customer.example"],
           "a desk address in Cc does not become a participant")
    a.desk.deliver(message(subject="Another", headers=["Cc: Postmaster@a.example"]), env={"MAILDESK_NOW": NOW})
    a.outgoing()
    a.desk.run("ticket", "reply", "2", "--as", "jane@a.example", input=b"Again.\n", env={"MAILDESK_NOW": NOW},
               check=True)
    tap.ok(all("postmaster@a.example" not in [r.lower() for r in m[0]["rcpt_tos"]] for m in a.outgoing()),
           "nor does the desk's postmaster")
    # An agent whose address a rule takes (security@) is still an agent.
    a.desk.run("agent", "add", "security@a.example", check=True)
    tok = env["mail_from"]
    a.desk.deliver(message(subject="Re: [SUP-1] Help", sender="security@a.example", to=tok, body="Looking."),
                   "--recipient", tok, env={"MAILDESK_NOW": NOW})
    last = [m for m in a.desk.show(1)["messages"] if m["direction"] == "in"][-1]
    tap.ok(not last["internal"] and last["from"] == "security@a.example", "an agent at a rule's address replies",
           last)
    a.close()


if __name__ == "__main__":
    run_tests(test_two_desks, test_auto_responder, test_null_sender, test_rate_limit, test_bounce, test_bouncing_address,
              test_forged_bounce, test_own_mail)
