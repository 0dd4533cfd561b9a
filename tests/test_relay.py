#!/usr/bin/env python3
"""The desk as a relay (security review, session 9): anyone can write to
the desk under any From and name anyone in Cc, so mail that a stranger's
message makes the desk send must not reach addresses of the stranger's
choosing in numbers.  What the outbox queues is what would go out."""
import base64
import collections
import hashlib
import hmac
import os

from mdtest import Desk, message, run_tests

AGENT = "jane@support.example.com"
NOW = "2026-12-01T10:00:00+02:00"
ENV = {"MAILDESK_NOW": NOW}


def token_address(desk, ticket_id):
    with open(os.path.join(desk.dir, "var", "secret.key"), "rb") as f:
        key = f.read()
    token = base64.b32encode(hmac.new(key, str(ticket_id).encode(), hashlib.sha256).digest()).decode().lower()[:10]
    return f"support+SUP-{ticket_id}.{token}@support.example.com"


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


if __name__ == "__main__":
    run_tests(test_command_errors_to_a_forged_sender)
