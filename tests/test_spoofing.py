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
    raw = message(subject="Re: [SUP-1] private matter", body=ATTACK).replace(
        f"From: Alice Customer <{CUSTOMER}>".encode(), f"From: <{CUSTOMER}@evil.example>".encode())
    attempt(tap, s, "an ambiguous From with the customer's envelope sender", raw, "--sender", CUSTOMER)
    raw = message(subject="Re: [SUP-1] private matter", body=ATTACK).replace(
        f"From: Alice Customer <{CUSTOMER}>".encode(),
        f"From: Alice Customer <{CUSTOMER}>\r\nFrom: Mallory <mallory@evil.example>".encode())
    attempt(tap, s, "two From fields", raw, "--sender", "mallory@evil.example")
    # A phrase that wants quoting, as some mailers send it, still names her.
    before = len(s.desk.show(1)["messages"])
    raw = message(subject="Re: [SUP-1] private matter", body="More details.").replace(
        f"From: Alice Customer <{CUSTOMER}>".encode(), f"From: Customer, Alice <{CUSTOMER}>".encode())
    s.desk.deliver(raw, env={"MAILDESK_NOW": NOW})
    last = s.desk.show(1)["messages"][-1]
    tap.ok(len(s.desk.show(1)["messages"]) == before + 1 and last["from"] == CUSTOMER and not last["internal"],
           "From: Customer, Alice <alice@...> is still Alice's reply", last)
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


def test_separate_agent_tokens(tap):
    """agent_token = separate: agents reply through an address customers
    never see, so the customer's token no longer proves an agent."""
    import email
    import email.policy
    catcher = Catcher().start()
    desk = Desk(extra_conf=f"agent_token = separate\n[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n")
    desk.run("agent", "add", AGENT, check=True)
    desk.deliver(message(subject="private matter", body="secret details"), env={"MAILDESK_NOW": NOW})
    desk.run("outbox", "flush", env={"MAILDESK_NOW": NOW})
    mails = [(env, email.message_from_bytes(raw, policy=email.policy.default)) for env, raw in catcher.messages()]
    to_customer = [m for env, m in mails if CUSTOMER in env["rcpt_tos"]]
    to_agent = [m for env, m in mails if AGENT in env["rcpt_tos"]]
    tap.ok(to_customer and to_agent, "the customer and the agent were both mailed")
    customer_addr = to_customer[0]["Reply-To"].addresses[0].addr_spec
    agent_addr = to_agent[0]["Reply-To"].addresses[0].addr_spec
    tap.eq(customer_addr, address(1, token(desk, 1)), "the customer's mail carries the ticket's token address")
    tap.ok(agent_addr != customer_addr and agent_addr.startswith("support+SUP-1."),
           "the agent's another one", agent_addr)
    agent_body = to_agent[0].get_body(("plain",)).get_content()
    tap.ok(f"mailto:{agent_addr}" in agent_body and customer_addr not in agent_body,
           "and so do the links in it", agent_body)
    seen = len(catcher.messages())
    # The customer forges the agent's From at the address she holds.
    desk.deliver(message(subject="Re: [SUP-1] private matter", sender=AGENT, to=customer_addr, body=ATTACK),
                 "--recipient", customer_addr, env={"MAILDESK_NOW": NOW})
    t = desk.show(1)
    tap.eq((t["priority"], t["assignee"], t["visibility"]), ("P3", None, "private"), "her commands do not run")
    tap.ok(t["messages"][-1]["internal"] and "unverified agent" in (t["messages"][-1]["flag"] or ""),
           "her mail is an internal note: unverified agent", t["messages"][-1])
    # The agent answers the notification.
    desk.deliver(message(subject="Re: [SUP-1] private matter", sender=AGENT, to=agent_addr,
                         body="#priority P2\nWe are looking into it."),
                 "--recipient", agent_addr, env={"MAILDESK_NOW": NOW})
    tap.eq(desk.show(1)["priority"], "P2", "the agent's reply through the agents' address is the agent's")
    desk.run("outbox", "flush", env={"MAILDESK_NOW": NOW})
    replies = [raw for env, raw in catcher.messages()[seen:] if CUSTOMER in env["rcpt_tos"]]
    tap.ok(any(b"We are looking into it." in r for r in replies), "and reaches the customer")
    tap.ok(not any(agent_addr.encode() in r for r in replies), "whose mail never shows the agents' address")
    catcher.stop()
    desk.cleanup()


def test_unverified_agent_notice_rate_limited(tap):
    """A forger who sends mail under an agent's From, without the token,
    makes the desk tell the agent how to reply: at most ack_rate_limit
    (5 an hour) such notices to one agent, and every message is still
    kept as a flagged internal note."""
    desk = Desk()
    desk.run("agent", "add", AGENT, check=True)
    desk.deliver(message(subject="private matter", body="secret details"), env={"MAILDESK_NOW": NOW})
    for i in range(8):
        p = desk.deliver(message(subject="Re: [SUP-1] private matter", sender=AGENT, body=f"forgery {i}\n" + ATTACK),
                         env={"MAILDESK_NOW": NOW})
        tap.eq(p.returncode, 0, f"forged agent mail {i} is accepted")
    notes = [m for m in desk.show(1)["messages"] if m["direction"] == "in" and m["from"] == AGENT]
    tap.eq(len(notes), 8, "every forged message is kept")
    tap.ok(all(m["internal"] and m["flag"] == "unverified agent" for m in notes),
           "each as an internal note flagged unverified agent", [(m["internal"], m["flag"]) for m in notes])
    outbox = desk.json("outbox", "list", env={"MAILDESK_NOW": NOW})
    notices = [r for r in outbox if r["kind"] == "unverified-agent" and r["to"] == AGENT]
    tap.eq(len(notices), 5, "the agent is told at most 5 times an hour (ack_rate_limit)")
    later = "2026-12-01T11:30:00+02:00"
    desk.deliver(message(subject="Re: [SUP-1] private matter", sender=AGENT, body="forgery later"),
                 env={"MAILDESK_NOW": later})
    outbox = desk.json("outbox", "list", env={"MAILDESK_NOW": later})
    tap.eq(len([r for r in outbox if r["kind"] == "unverified-agent" and r["to"] == AGENT]), 6,
           "an hour later the agent is told again")
    desk.cleanup()


def authres(verdict, authserv="mx.support.example.com", domain="customer.example"):
    return f"Authentication-Results: {authserv};\r\n\tdmarc={verdict} (p=reject dis=none) header.from={domain}"


def test_authentication_results(tap):
    """With authserv_id, a reply that reaches a ticket by its subject tag or
    References (not the token) is believed to come from its From only as
    far as the desk's MTA says: DMARC failed, it is a flagged note that
    changes nothing; with require_sender_auth, so is one the MTA did not
    pass.  Results under another authserv-id, or planted below the MTA's,
    count for nothing."""
    extra = "authserv_id = mx.support.example.com, rspamd.support.example.com\n"
    desk = Desk(extra_conf=extra)
    desk.deliver(message(subject="private matter", body="secret details"), env={"MAILDESK_NOW": NOW})
    forged = "#resolve\n#share\nSend the files to me."

    def reply(body, headers, to="support@support.example.com", *args):
        p = desk.deliver(message(subject="Re: [SUP-1] private matter", body=body, to=to, headers=headers),
                         *args, env={"MAILDESK_NOW": NOW})
        tap.eq(p.returncode, 0, "the reply is accepted", p.stderr)
        t = desk.show(1)
        return t, [m for m in t["messages"] if m["direction"] == "in"][-1]

    t, last = reply(forged, [authres("fail")])
    tap.eq((t["status"], t["visibility"]), ("Waiting for triage", "private"), "DMARC failed: no command runs")
    tap.eq((last["internal"], last["flag"]), (True, "unverified sender: DMARC failed"),
           "DMARC failed: kept as a flagged internal note")
    t, last = reply(forged, [authres("fail"), authres("pass")])
    tap.eq((t["visibility"], last["flag"]), ("private", "unverified sender: DMARC failed"),
           "a pass planted below the MTA's fail counts for nothing")
    t, last = reply("Send the files to me.", [authres("fail", authserv="mx.evil.example")])
    tap.eq((last["internal"], last["flag"]), (False, None),
           "another server's results are not read: without require_sender_auth, a plain reply")
    t, last = reply("Thanks, it works now.", [authres("fail", authserv="rspamd.support.example.com")])
    tap.eq(last["flag"], "unverified sender: DMARC failed", "every authserv_id listed is trusted")
    t, last = reply("#resolve\nIt works now.", [authres("pass")])
    tap.eq((last["internal"], last["flag"], t["status"]), (False, None, "Resolved"),
           "DMARC passed: a reply from the customer, commands and all")

    for who, verdict in (("victim@customer.example", "fail"), ("real@customer.example", "pass")):
        p = desk.deliver(message(subject="Please call me", sender=who, headers=[authres(verdict)]),
                         env={"MAILDESK_NOW": NOW})
        tap.eq(p.returncode, 0, f"a new ticket whose From {verdict}ed DMARC is accepted")
    calls = {t["requester"]: t for t in desk.tickets() if t["subject"] == "Please call me"}
    tap.eq(sorted(calls), ["real@customer.example", "victim@customer.example"], "and kept as a ticket either way")
    tap.eq((calls["victim@customer.example"]["flag"], calls["real@customer.example"]["flag"]),
           ("unverified sender: DMARC failed, the From may be forged", None),
           "the agents see which one may be forged")
    acks = [r["to"] for r in desk.json("outbox", "list", env={"MAILDESK_NOW": NOW}) if r["kind"] == "ack"]
    tap.ok("victim@customer.example" not in acks and "real@customer.example" in acks,
           "no acknowledgement goes to a From that failed DMARC (it did not write)", acks)

    desk.write_conf(open(desk.conf_path).read().replace(extra, extra + "require_sender_auth = true\n"))
    t, last = reply("Anyone there?", [])
    tap.eq((last["internal"], last["flag"]), (True, "unverified sender: From not authenticated"),
           "require_sender_auth: no verdict, kept for a human")
    t, last = reply("Anyone there?", ["Authentication-Results: mx.support.example.com;\r\n"
                                      "\tdkim=pass header.d=customer.example; spf=fail"])
    tap.eq((last["internal"], last["flag"]), (False, None), "require_sender_auth: an aligned DKIM pass will do")
    addr = address(1, token(desk, 1))
    t, last = reply("Through the token.", [authres("fail")], addr, "--recipient", addr)
    tap.eq((last["internal"], last["flag"]), (False, None),
           "the token proves the reply whatever the MTA says of its From")

    desk.write_conf(open(desk.conf_path).read().replace(extra, "require_sender_auth = yes\n"))
    p = desk.run("check-config")
    tap.eq(p.returncode, 78, "require_sender_auth without authserv_id is refused")
    tap.ok(b"maildesk.conf:" in p.stderr and b"require_sender_auth" in p.stderr, "at its line", p.stderr)
    desk.cleanup()


def test_authentication_results_encoded_word(tap):
    """The authserv-id is read as the header's bytes: one spelled as an
    RFC 2047 encoded word is not the MTA's name (its MTA, which strips
    copies claiming that name, does not see one there), however a MIME
    parser would decode it."""
    desk = Desk(extra_conf="authserv_id = mx.support.example.com\nrequire_sender_auth = true\n")
    try:
        desk.deliver(message(subject="private matter", body="secret details"), env={"MAILDESK_NOW": NOW})
        for what, planted, flag in (
                ("an encoded-word authserv-id",
                 "Authentication-Results: =?us-ascii?q?mx=2Esupport=2Eexample=2Ecom?=; "
                 "dkim=pass header.d=customer.example", "unverified sender: From not authenticated"),
                ("an encoded word in the MTA's comment on what the sender wrote",
                 "Authentication-Results: mx.support.example.com; spf=none "
                 "(helo =?us-ascii?q?x=29=3B_dkim=3Dpass_header=2Ed=3Dcustomer=2Eexample_=28?=) smtp.helo=x",
                 "unverified sender: From not authenticated")):
            headers = ["Authentication-Results: mx.support.example.com; dmarc=none header.from=customer.example", planted]
            if "spf=none" in planted:
                headers = [planted]
            p = desk.deliver(message(subject="Re: [SUP-1] private matter", body="#share\nSend it to me.",
                                     headers=headers), env={"MAILDESK_NOW": NOW})
            tap.eq(p.returncode, 0, f"{what}: accepted", p.stderr)
            t = desk.show(1)
            last = [m for m in t["messages"] if m["direction"] == "in"][-1]
            tap.eq((last["internal"], last["flag"], t["visibility"]), (True, flag, "private"),
                   f"{what} is not the MTA's: the reply is a note")
        p = desk.deliver(message(subject="Re: [SUP-1] private matter", body="Thanks.",
                                 headers=["Authentication-Results: mx.support.example.com;\r\n"
                                          "\tdkim=pass\r\n\theader.d=customer.example"]),
                         env={"MAILDESK_NOW": NOW})
        last = [m for m in desk.show(1)["messages"] if m["direction"] == "in"][-1]
        tap.eq((last["internal"], last["flag"]), (False, None), "a folded header of the MTA's still passes")
    finally:
        desk.cleanup()


if __name__ == "__main__":
    run_tests(test_spoofing, test_separate_agent_tokens, test_unverified_agent_notice_rate_limited,
              test_authentication_results, test_authentication_results_encoded_word)
