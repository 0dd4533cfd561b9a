#!/usr/bin/env python3
"""The desk as a relay (security review, session 9): anyone can write to
the desk under any From and name anyone in Cc, so mail that a stranger's
message makes the desk send must not reach addresses of the stranger's
choosing in numbers.  What the outbox queues is what would go out."""
import collections

from mdtest import Desk, message, run_tests, token_address

AGENT = "jane@support.example.com"
NOW = "2026-12-01T10:00:00+02:00"
ENV = {"MAILDESK_NOW": NOW}




def queued(desk):
    """(kind, recipient) -> how many rows the outbox holds."""
    return collections.Counter((r["kind"], r["to"]) for r in desk.json("outbox", "list"))


def test_command_errors_to_a_forged_sender(tap):
    """Twenty unknown commands in one message were twenty command-error
    mails to its From, which anyone can forge: one mail in, twenty out,
    each quoting the attacker's line, with no limit in replies."""
    desk = Desk()
    victim = "bob@victim.example"
    bomb = "".join(f"#buy{j} cheap pills at http://evil.example/{j}\n" for j in range(20))
    desk.deliver(message(subject="hello", sender=victim), env=ENV)
    for _ in range(3):
        desk.deliver(message(subject="Re: [SUP-1] hello", sender=victim, body=bomb), env=ENV)
    got = queued(desk)[("command-error", victim)]
    tap.ok(1 <= got <= 5, "command errors in replies to one address are held to ack_rate_limit (5) an hour", got)
    # At the intake only known commands count (others are text): an
    # agent's, refused to a customer, twenty times.
    desk.deliver(message(subject="fresh", sender="carol@victim.example",
                         body="#priority P1 http://evil.example\n" * 20), env=ENV)
    got = queued(desk)[("command-error", "carol@victim.example")]
    tap.ok(1 <= got <= 5, "and so are those at the intake, counted per answer, not per message", got)
    for _ in range(2):
        desk.deliver(message(subject="Re: [SUP-1] hello", sender=victim, body="#list\n" * 20), env=ENV)
    got = queued(desk)[("list", victim)]
    tap.ok(1 <= got <= 5, "and #list answers in replies likewise", got)
    # A verified agent's own mistakes are always answered.
    desk.run("agent", "add", AGENT, check=True)
    addr = token_address(desk, 1)
    desk.deliver(message(subject="Re: [SUP-1] hello", sender=AGENT, to=addr,
                         body="".join(f"#nonsense{j}\n" for j in range(7)) + "Looking.\n"),
                 "--recipient", addr, env=ENV)
    tap.eq(queued(desk)[("command-error", AGENT)], 7, "an agent at the token address gets every refusal")
    desk.cleanup()


def test_cc_is_no_relay(tap):
    """A stranger opens a ticket with victims in Cc (they become
    participants), then toggles it with #resolve and a reply: every
    toggle was a status mail to every victim, carrying the stranger's
    subject and display name, without limit."""
    desk = Desk()
    desk.run("agent", "add", AGENT, check=True)
    victims = [f"v{i}@victim{i}.example" for i in range(5)]
    spam = "CHEAP PILLS http://evil.example"
    desk.deliver(message(subject=spam, sender="mallory@evil.example",
                         headers=["Cc: " + ", ".join(victims)]), env=ENV)
    tap.eq(desk.show(1)["subject"], spam, "the ticket is opened")

    def toggle(times):
        for _ in range(times):
            desk.deliver(message(subject=f"Re: [SUP-1] {spam}", sender="mallory@evil.example",
                                 body="#resolve\n"), env=ENV)
            desk.deliver(message(subject=f"Re: [SUP-1] {spam}", sender="mallory@evil.example",
                                 body="Visit http://evil.example now\n"), env=ENV)

    toggle(3)
    t = desk.show(1)
    tap.eq(t["status"], "Reopened", "the requester's #resolve and reply still work")
    mailed = {v: sum(n for (kind, to), n in queued(desk).items() if to == v) for v in victims}
    tap.eq(set(mailed.values()), {0}, "no mail reaches addresses the desk never wrote to", mailed)

    # Once an agent has written to them they hear of the customer's
    # changes, but no more than ack_rate_limit of them an hour.
    addr = token_address(desk, 1)
    desk.deliver(message(subject=f"Re: [SUP-1] {spam}", sender=AGENT, to=addr, body="What is this?\n"),
                 "--recipient", addr, env=ENV)
    tap.eq(queued(desk)[("agent-reply", victims[0])], 1, "the agent's reply reaches the Cc")
    toggle(6)
    got = queued(desk)
    tap.ok(all(1 <= got[("status-change", v)] <= 5 for v in victims),
           "then a customer's status changes reach them at most 5 times an hour",
           [got[("status-change", v)] for v in victims])
    tap.ok(got[("status-change", "mallory@evil.example")] <= 5, "and the requester, whose From may be forged",
           got[("status-change", "mallory@evil.example")])
    desk.cleanup()


def test_cc_colleague_still_told(tap):
    """The ordinary case the rule above must keep: a colleague in Cc who
    has the agent's answer hears that the customer resolved it."""
    desk = Desk()
    desk.run("agent", "add", AGENT, check=True)
    desk.deliver(message(subject="printer", headers=["Cc: Bob <bob@customer.example>"]), env=ENV)
    addr = token_address(desk, 1)
    desk.deliver(message(subject="Re: [SUP-1] printer", sender=AGENT, to=addr, body="Restart it.\n"),
                 "--recipient", addr, env=ENV)
    desk.deliver(message(subject="Re: [SUP-1] printer", body="#resolve\nThanks, it works.\n"), env=ENV)
    tap.eq(desk.show(1)["status"], "Resolved", "the customer resolved it")
    tap.eq(queued(desk)[("status-change", "bob@customer.example")], 1, "and the colleague in Cc is told")
    desk.cleanup()


if __name__ == "__main__":
    run_tests(test_command_errors_to_a_forged_sender, test_cc_is_no_relay, test_cc_colleague_still_told)
