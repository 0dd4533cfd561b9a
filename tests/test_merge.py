#!/usr/bin/env python3
"""Merging a duplicate ticket (`maildesk ticket merge ID INTO`): its mail,
participants and fields move to the ticket that carries on; it is
resolved quietly and points there; mail to its address, tag or
Message-IDs reaches the other; different customers' tickets are never
merged; a purge later removes both without breaking the link."""

from mdtest import Desk, message, run_tests, token_address

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
        tap.eq(len(desk.json("outbox", "list", env=NOW)), outbox_before, "quietly: no status mail")
        tap.eq(desk.show(1)["merged_into"], None, "the other points nowhere")

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
    run_tests(test_merge, test_reply_after_target_purged, test_first_response_carries_over)
