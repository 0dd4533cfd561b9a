#!/usr/bin/env python3
"""Merging a duplicate ticket (`maildesk ticket merge ID INTO`): its mail,
participants and fields move to the ticket that carries on; it is
resolved quietly and points there; mail to its address, tag or
Message-IDs reaches the other; different customers' tickets are never
merged; a purge later removes both without breaking the link."""

import email
import email.policy
import os
import sqlite3

from mdtest import Catcher, Desk, message, run_tests, token_address

AGENT = "jane@support.example.com"
ALICE = "alice@acme.example"
NOW = {"MAILDESK_NOW": "2026-12-01T10:00:00+02:00"}




def test_merge(tap):
    desk = Desk()
    try:
        desk.run("agent", "add", AGENT, check=True)
        desk.run("org", "add", "Acme", "--domain", "acme.example", check=True)
        first = message(subject="Printer broken", sender=ALICE, body="It prints nothing.", msgid="first")
        dup = message(subject="Printer still broken", sender=ALICE, msgid="dup",
                      body="Model: LX-500\nIt still prints nothing.",
                      headers=["Cc: carol@acme.example"])
        for raw in (first, dup, message(subject="Mine", sender="bob@other.example"),
                    message(subject="Colleague's", sender="dave@acme.example")):
            tap.eq(desk.deliver(raw, env=NOW).returncode, 0, "delivered")
        outbox_before = len(desk.json("outbox", "list", env=NOW))

        p = desk.run("ticket", "merge", "SUP-2", "1", "--as", AGENT, env=NOW)
        tap.ok(p.returncode == 0 and p.stdout == b"SUP-2 merged into SUP-1\n", "merged", p.stdout + p.stderr)
        one, two = desk.show(1), desk.show(2)
        tap.eq((two["status"], two["merged_into"], two["messages"]), ("Resolved", "SUP-1", []),
               "the duplicate is resolved, points on, and holds no mail")
        tap.eq([m["subject"] for m in one["messages"] if m["direction"] == "in"],
               ["Printer broken", "Printer still broken"], "its mail is on the ticket that carries on")
        tap.ok(any(h["field"] == "merged" and h["new"] == "SUP-2" and h["actor"] == AGENT for h in one["history"]),
               "whose history says what was merged, and by whom", one["history"])
        tap.ok(any(h["field"] == "merged_into" and h["new"] == "SUP-1" for h in two["history"]),
               "the duplicate's history says where it went")
        new = desk.json("outbox", "list", env=NOW)[outbox_before:]
        tap.eq(sorted((r["kind"], r["to"]) for r in new), [("merged", ALICE), ("merged", "carol@acme.example")],
               "no status mail: one notice, to those who had the duplicate's mail", new)
        tap.eq(desk.show(1)["merged_into"], None, "the other points nowhere")
        tap.eq(desk.show(1)["participants"], ["carol@acme.example"],
               "whom the customer copied on the duplicate takes part in the other (ticket show lists them)")
        p = desk.run("ticket", "show", "1")
        tap.ok(b"Participants: carol@acme.example\n" in p.stdout, "in its text form too", p.stdout[:400])

        before = len(one["messages"])
        for what, raw, args in (
                ("the duplicate's reply address",
                 message(subject="Re: Printer still broken", sender=ALICE, to=token_address(desk, 2), body="By token."),
                 ("--recipient", token_address(desk, 2))),
                ("its subject tag", message(subject="[SUP-2] again", sender=ALICE, body="By tag."), ()),
                ("a Message-ID of its mail",
                 message(subject="Re: x", sender=ALICE, body="By reference.", headers=["In-Reply-To: <dup@customer.example>"]),
                 ()),
                ("a participant it had, by its tag",
                 message(subject="[SUP-2] me too", sender="carol@acme.example", body="Carol here."), ())):
            p = desk.deliver(raw, *args, env=NOW)
            one = desk.show(1)
            last = one["messages"][-1]
            tap.ok(p.returncode == 0 and len(one["messages"]) == before + 1 and not last["internal"],
                   f"mail to {what} reaches the ticket that carries on, as a reply",
                   (p.stderr, last["body"], last["flag"]))
            before = len(one["messages"])
        tap.eq(desk.show(2)["messages"], [], "and none stays on the duplicate")

        for args, code, says, what in (
                (("3", "1"), 65, b"different customers", "another customer's ticket is refused"),
                (("2", "1"), 65, b"SUP-2 was merged into SUP-1 already", "merging twice is refused"),
                (("1", "2"), 65, b"SUP-2 was merged into SUP-1 already", "merging into a merged ticket is refused"),
                (("1", "1"), 65, b"into itself", "a ticket into itself is refused"),
                (("1", "99"), 66, b"", "an unknown ticket is 66")):
            p = desk.run("ticket", "merge", *args, env=NOW)
            tap.ok(p.returncode == code and says in p.stderr, what, (p.returncode, p.stderr))
        tap.eq(desk.show(3)["status"], "Waiting for triage", "a refused merge changes nothing")

        desk.run("ticket", "set", "4", "status=Resolved", env=NOW, check=True)
        p = desk.run("ticket", "merge", "1", "4", env=NOW)
        tap.ok(p.returncode == 65 and b"reopen it" in p.stderr, "merging into a resolved ticket is refused", p.stderr)
        desk.run("ticket", "set", "4", "status=Reopened", env=NOW, check=True)
        four_before = len(desk.show(4)["messages"])
        p = desk.run("ticket", "merge", "1", "4", env=NOW)
        tap.ok(p.returncode == 65 and b"not both shared" in p.stderr,
               "two members' private tickets are refused: each would read the other's mail", p.stderr)
        tap.eq((desk.show(1)["merged_into"], len(desk.show(4)["messages"])), (None, four_before),
               "and nothing moved")
        desk.run("ticket", "set", "4", "visibility=shared", env=NOW, check=True)
        p = desk.run("ticket", "merge", "1", "4", env=NOW)
        tap.eq(p.returncode, 65, "nor one shared and one private", p.stderr)
        desk.run("ticket", "set", "1", "visibility=shared", env=NOW, check=True)
        p = desk.run("ticket", "merge", "1", "4", env=NOW)
        tap.eq(p.returncode, 0, "one organization's shared tickets merge", p.stderr)
        tap.eq(desk.show(2)["merged_into"], "SUP-4", "what was merged into the merged one now points on too")
        four = desk.show(4)
        tap.eq(len([m for m in four["messages"] if m["direction"] == "in"]), 7, "with all the mail")
        p = desk.deliver(message(subject="[SUP-2] still?", sender=ALICE, body="Chain."), env=NOW)
        last = desk.show(4)["messages"][-1]
        tap.eq((last["body"].strip(), last["internal"]), ("Chain.", False),
               "the oldest tag still arrives, and the merged ticket's requester takes part in this one")

        desk.run("ticket", "set", "4", "status=Resolved", env=NOW, check=True)
        later = {"MAILDESK_NOW": "2027-06-01T10:00:00+02:00"}
        p = desk.run("purge", "--resolved-before", "30d", "--json", env=later)
        tap.eq(p.returncode, 0, "a purge removes merged tickets and the one they went into", p.stderr)
        left = sorted(t["id"] for t in desk.tickets())
        tap.eq(left, [3], "only the open ticket is left")
    finally:
        desk.cleanup()


def test_merge_by_mail(tap):
    """An agent's `#merge SUP-1` in a reply to a duplicate: the reply goes
    to the customer first, then the duplicate, reply and all, is merged.
    A bad or refused #merge is answered to the agent; a customer may not."""
    desk = Desk()
    try:
        desk.run("agent", "add", AGENT, check=True)
        for subject in ("Printer broken", "Printer still broken"):
            tap.eq(desk.deliver(message(subject=subject, sender=ALICE), env=NOW).returncode, 0, "delivered")
        tap.eq(desk.deliver(message(subject="Mine", sender="bob@other.example"), env=NOW).returncode, 0, "delivered")

        def agent_writes(ticket, body):
            to = token_address(desk, ticket)
            p = desk.deliver(message(subject=f"Re: [SUP-{ticket}]", sender=AGENT, to=to, body=body),
                             "--recipient", to, env=NOW)
            tap.eq(p.returncode, 0, "the agent's mail is accepted", p.stderr)
            return [r for r in desk.json("outbox", "list", env=NOW)]

        outbox = agent_writes(3, "#merge SUP-1\nSame printer?")
        tap.ok(any(r["kind"] == "command-error" and r["to"] == AGENT for r in outbox),
               "another customer's ticket: the agent is told why not", [(r["kind"], r["to"]) for r in outbox])
        three = desk.show(3)
        tap.eq((three["merged_into"], len(three["messages"]) > 1, desk.show(1)["merged_into"]), (None, True, None),
               "and nothing was merged")
        outbox = agent_writes(2, "#merge SUP-99\nHello")
        tap.ok(any(r["kind"] == "command-error" and r["to"] == AGENT for r in outbox[-3:]),
               "a ticket that does not exist is answered too")
        before = len(desk.json("outbox", "list", env=NOW))
        outbox = agent_writes(2, "#merge SUP-1\n#priority P2\nThis is the same as SUP-1; we go on there.")
        new = outbox[before:]
        tap.ok(any(r["kind"] == "agent-reply" and r["to"] == ALICE for r in new),
               "the agent's reply reaches the customer", [(r["kind"], r["to"]) for r in new])
        two, one = desk.show(2), desk.show(1)
        tap.eq((two["merged_into"], two["status"], two["priority"]), ("SUP-1", "Resolved", "P2"),
               "the duplicate is merged, after the message's other commands ran on it")
        bodies = [m["body"] for m in one["messages"]]
        tap.ok(any("we go on there" in b for b in bodies), "the agent's reply moved with the rest", bodies)
        p = desk.deliver(message(subject="Re: [SUP-3]", sender="bob@other.example", to=token_address(desk, 3),
                                 body="#merge SUP-1\nplease"), "--recipient", token_address(desk, 3), env=NOW)
        tap.eq(desk.show(3)["merged_into"], None, "a customer's #merge does nothing")
        tap.ok(any(h["field"] == "command refused" and "only agents" in (h["new"] or "")
                   for h in desk.show(3)["history"]), "and is refused in the history")
    finally:
        desk.cleanup()


def test_merge_keeps_what_was_private(tap):
    """One requester's tickets: a private one does not go into one shared
    with their organization (the organization would read it); a shared
    one may go into a private one (fewer readers, not more)."""
    desk = Desk()
    try:
        desk.run("org", "add", "Acme", "--domain", "acme.example", check=True)
        for subject in ("Salary question", "Printer"):
            tap.eq(desk.deliver(message(subject=subject, sender=ALICE), env=NOW).returncode, 0, "delivered")
        desk.run("ticket", "set", "2", "visibility=shared", env=NOW, check=True)
        p = desk.run("ticket", "merge", "1", "2", env=NOW)
        tap.ok(p.returncode == 65 and b"SUP-1 is private and SUP-2 shared with Acme" in p.stderr,
               "private into shared is refused, saying why", p.stderr)
        p = desk.run("ticket", "merge", "2", "1", env=NOW)
        tap.eq((p.returncode, desk.show(2)["merged_into"], desk.show(1)["visibility"]), (0, "SUP-1", "private"),
               "shared into private merges, and stays private")
    finally:
        desk.cleanup()


def test_merge_tells_the_customer(tap):
    """Whoever got the duplicate's mail gets one short notice that it was
    merged and where it goes on, as mail of the ticket that carries on
    (its Reply-To and tag), so that answering it lands there; not the
    agent who merged, nor a participant whose address bounces.  By mail,
    the agent's reply on the duplicate goes first, then the notice."""
    catcher = Catcher().start()
    desk = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n")
    seen = [0]

    def new_mail():
        desk.run("outbox", "flush", env=NOW, check=True)
        got = catcher.messages()[seen[0]:]
        seen[0] += len(got)
        return [(sorted(env["rcpt_tos"]), email.message_from_bytes(raw, policy=email.policy.default))
                for env, raw in got]

    def text(m):
        return " ".join(m.get_body(preferencelist=("plain",)).get_content().split())

    try:
        desk.run("agent", "add", AGENT, check=True)
        for raw in (message(subject="Printer broken", sender=ALICE, msgid="first"),
                    message(subject="Printer still broken", sender=ALICE, msgid="dup",
                            headers=["Cc: carol@acme.example, dan@acme.example"]),
                    message(subject="Mine", sender="bob@other.example"),
                    message(subject="Printer, third time", sender=ALICE, msgid="third")):
            tap.eq(desk.deliver(raw, env=NOW).returncode, 0, "delivered")
        new_mail()
        db = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"))
        db.execute("UPDATE people SET bouncing = 1 WHERE email = 'dan@acme.example'")
        db.commit()
        db.close()

        p = desk.run("ticket", "merge", "SUP-2", "SUP-1", "--as", AGENT, env=NOW)
        tap.eq(p.returncode, 0, "merged", p.stderr)
        mails = new_mail()
        tap.eq(sorted(r for rcpts, m in mails for r in rcpts), [ALICE, "carol@acme.example"],
               "one notice each, to the duplicate's requester and the participant whose address works")
        m = mails[0][1] if mails else None
        body = m and text(m)
        tap.ok(m and "[SUP-1]" in m["Subject"] and "[SUP-2]" not in m["Subject"] and "SUP-2" in m["Subject"],
               "its subject carries the tag of the ticket that carries on", m and m["Subject"])
        tap.ok(m and f"<{token_address(desk, 1)}>" in m["Reply-To"], "and its Reply-To", m and m["Reply-To"])
        tap.ok(body and 'Your request SUP-2, "Printer still broken", is about the same matter as ticket SUP-1, '
               '"Printer broken", so we have merged the two' in body and "mailto:" in body,
               "it says what was merged into what, with the resolve link", body)
        tap.ok(m and m["Auto-Submitted"] == "auto-generated" and "<dup@customer.example>" in m["References"],
               "automatic, in the thread the customer knows", m and (m["Auto-Submitted"], m["References"]))
        one = desk.show(1)
        tap.ok(any(x["direction"] == "out" and x["flag"] == "sent: merged" for x in one["messages"]),
               "its copy is kept on the ticket that carries on", [x["flag"] for x in one["messages"]])

        answer = message(subject="Re: " + str(m["Subject"]), sender=ALICE, to=token_address(desk, 1),
                         body="Thanks, here is the log.", headers=[f"In-Reply-To: {m['Message-ID']}"])
        p = desk.deliver(answer, "--recipient", token_address(desk, 1), env=NOW)
        tap.ok(p.returncode == 0 and desk.show(1)["messages"][-1]["body"].strip() == "Thanks, here is the log.",
               "answering the notice lands on the ticket that carries on", p.stderr)
        new_mail()

        tok = token_address(desk, 4)
        p = desk.deliver(message(subject="Re: [SUP-4] Printer, third time", sender=AGENT, to=tok,
                                 body="#merge SUP-1\nThis is SUP-1 again; we go on there."),
                         "--recipient", tok, env=NOW)
        tap.eq((p.returncode, desk.show(4)["merged_into"]), (0, "SUP-1"), "an agent's #merge by mail merges", p.stderr)
        mails = new_mail()
        tap.eq([(rcpts, "[SUP-4]" in m["Subject"], "[SUP-1]" in m["Subject"]) for rcpts, m in mails],
               [([ALICE], True, False), ([ALICE], False, True)],
               "the customer gets the agent's reply, then the notice from the ticket that carries on",
               [(rcpts, m["Subject"]) for rcpts, m in mails])
        tap.ok(len(mails) == 2 and "Your request SUP-4" in text(mails[1][1])
               and f"<{token_address(desk, 1)}>" in mails[1][1]["Reply-To"], "saying where to reply",
               mails and text(mails[-1][1]))
    finally:
        catcher.stop()
        desk.cleanup()


def test_merge_notice_stays_private(tap):
    """A ticket shared with the organization merged into its requester's
    private one: the notice, mail of the private ticket (its subject, its
    reply address), goes to those who may read that one, not to the
    colleagues who read the shared one."""
    catcher = Catcher().start()
    desk = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n")
    try:
        desk.run("org", "add", "Acme", "--domain", "acme.example", "--member", "carol@acme.example", check=True)
        for subject, who in (("Salary question", ALICE), ("Printer", ALICE), ("Mine", "carol@acme.example")):
            tap.eq(desk.deliver(message(subject=subject, sender=who), env=NOW).returncode, 0, "delivered")
        desk.run("ticket", "set", "2", "visibility=shared", env=NOW, check=True)
        desk.run("outbox", "flush", env=NOW, check=True)
        seen = len(catcher.messages())
        desk.run("ticket", "merge", "2", "1", env=NOW, check=True)
        desk.run("outbox", "flush", env=NOW, check=True)
        got = [(sorted(env["rcpt_tos"]), raw) for env, raw in catcher.messages()[seen:]]
        tap.eq([rcpts for rcpts, _ in got], [[ALICE]], "the notice goes to the requester alone",
               [rcpts for rcpts, _ in got])
        tap.ok(not any(b"Salary" in raw for rcpts, raw in got if "carol@acme.example" in rcpts),
               "no colleague learns the private ticket's subject")
    finally:
        catcher.stop()
        desk.cleanup()


def test_reply_after_target_purged(tap):
    """A duplicate goes with the ticket it was merged into when that one
    is purged (here by erasing its requester, a colleague's): a reply to
    the duplicate's address then opens a new ticket, as one to the purged
    ticket's own address does, rather than reopening an empty one."""
    desk = Desk()
    try:
        desk.run("org", "add", "Acme", "--domain", "acme.example", check=True)
        for subject, who in (("VPN down", "bob@acme.example"), ("VPN down for me too", ALICE)):
            tap.eq(desk.deliver(message(subject=subject, sender=who), env=NOW).returncode, 0, "delivered")
            desk.run("ticket", "set", str(len(desk.tickets())), "visibility=shared", env=NOW, check=True)
        desk.run("ticket", "merge", "2", "1", env=NOW, check=True)
        p = desk.run("purge", "--person", "bob@acme.example", "--json", env=NOW)
        tap.eq(p.returncode, 0, "bob is erased, his ticket purged", p.stderr)
        tap.eq([t["id"] for t in desk.tickets()], [], "and the duplicate merged into it with it")

        reply = message(subject="Re: [SUP-2] VPN down for me too", sender=ALICE, to=token_address(desk, 2),
                        body="It is down again.")
        p = desk.deliver(reply, "--recipient", token_address(desk, 2), env=NOW)
        tap.eq((p.returncode, p.stdout), (0, b"SUP-3\n"), "alice's reply to the duplicate opens a new ticket",
               p.stdout + p.stderr)
        three = desk.show(3)
        tap.eq((three["requester"], [m["body"].strip() for m in three["messages"] if m["direction"] == "in"]),
               (ALICE, ["It is down again."]), "hers, with her message")
    finally:
        desk.cleanup()


def test_retention_waits_for_the_target(tap):
    """Retention purges a duplicate only with the ticket it was merged
    into: resolved by the merge long ago, it still leads a reply on to
    the open ticket, and goes once that one is purged."""
    desk = Desk()
    later = {"MAILDESK_NOW": "2027-03-01T10:00:00+02:00"}
    much_later = {"MAILDESK_NOW": "2027-06-01T10:00:00+02:00"}
    try:
        for subject in ("Printer broken", "Printer still broken"):
            tap.eq(desk.deliver(message(subject=subject, sender=ALICE), env=NOW).returncode, 0, "delivered")
        desk.run("ticket", "merge", "2", "1", env=NOW, check=True)
        p = desk.run("purge", "--resolved-before", "30", "--json", env=later)
        tap.eq(p.returncode, 0, "retention runs", p.stderr)
        tap.eq(sorted(t["id"] for t in desk.tickets()), [1, 2], "the duplicate of an open ticket is kept")
        reply = message(subject="Re: [SUP-2] Printer still broken", sender=ALICE, to=token_address(desk, 2),
                        body="Any news?")
        p = desk.deliver(reply, "--recipient", token_address(desk, 2), env=later)
        tap.eq((p.returncode, p.stdout), (0, b"SUP-1\n"), "a reply to it still reaches the open ticket",
               p.stdout + p.stderr)

        desk.run("ticket", "set", "1", "status=Resolved", env=later, check=True)
        p = desk.run("purge", "--resolved-before", "30", "--json", env=much_later)
        tap.eq(p.returncode, 0, "retention runs again", p.stderr)
        tap.eq([t["id"] for t in desk.tickets()], [], "and the duplicate goes with the ticket it was merged into")
    finally:
        desk.cleanup()


def test_first_response_carries_over(tap):
    """A duplicate still owed a first response hands its deadline to the
    ticket it is merged into, the earlier of the two winning; an answered
    ticket owes a response anew.  Its breach notice then comes on time,
    and the next public reply meets the deadline."""
    desk = Desk()
    at = lambda hhmm: {"MAILDESK_NOW": f"2026-12-01T{hhmm}:00+02:00"}
    try:
        desk.run("agent", "add", AGENT, check=True)
        desk.deliver(message(subject="Printer broken", sender=ALICE), env=at("10:00"))
        desk.run("ticket", "reply", "1", "--as", AGENT, input="Try turning it off and on.\n", env=at("10:30"),
                 check=True)
        desk.deliver(message(subject="Production is down", sender=ALICE), env=at("11:00"))
        desk.deliver(message(subject="Scanner slow", sender="bob@other.example"), env=at("11:00"))
        desk.deliver(message(subject="Production is down", sender="bob@other.example"), env=at("11:00"))
        one, two, three, four = (desk.show(i) for i in (1, 2, 3, 4))
        tap.ok(one["first_response_at"] and not two["first_response_at"], "SUP-1 is answered, SUP-2 not")
        tap.ok(two["first_response_due"] < one["first_response_due"] and
               four["first_response_due"] < three["first_response_due"], "and P1's SUP-2 and SUP-4 due first")

        desk.run("ticket", "merge", "2", "1", "--as", AGENT, env=at("12:00"), check=True)
        one = desk.show(1)
        tap.eq((one["first_response_at"], one["first_response_due"]), (None, two["first_response_due"]),
               "an answered ticket owes the duplicate's first response, by its deadline")
        tap.ok(any(h["field"] == "first_response_due" and h["new"] == two["first_response_due"]
                   for h in one["history"]), "in its history", one["history"])
        desk.run("ticket", "merge", "4", "3", env=at("12:00"), check=True)
        tap.eq(desk.show(3)["first_response_due"], four["first_response_due"],
               "an unanswered one takes the duplicate's deadline when it comes first")

        desk.run("tick", env=at("15:30"), check=True)
        breaches = [m["ticket"] for m in desk.json("outbox", "list") if m["kind"] == "sla-breach"]
        tap.eq(sorted(set(breaches)), ["SUP-1", "SUP-3"], "the breach notices come at the duplicates' deadlines")

        desk.run("ticket", "reply", "1", "--as", AGENT, input="Looking at production now.\n", env=at("15:40"),
                 check=True)
        tap.ok(desk.show(1)["first_response_at"], "the next reply is the first response")
    finally:
        desk.cleanup()


if __name__ == "__main__":
    run_tests(test_merge, test_merge_by_mail, test_merge_keeps_what_was_private, test_merge_tells_the_customer, test_merge_notice_stays_private,
              test_reply_after_target_purged, test_retention_waits_for_the_target,
              test_first_response_carries_over)
