#!/usr/bin/env python3
"""The desk's workflow by mail (issue 5), end to end: `maildesk deliver`
for what comes in, a real SMTP server for what goes out."""
import email
import email.policy
import os

from mdtest import Catcher, Desk, message, run_tests, token_address

AGENT = "jane@support.example.com"
CUSTOMER = "alice@customer.example"




class Conversation:
    def __init__(self, tap):
        self.tap = tap
        self.catcher = Catcher().start()
        self.desk = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{self.catcher.port}\n")
        self.desk.run("agent", "add", AGENT, "--name", "Jane Agent", check=True)
        self.seen = 0
        self.now = "2026-12-01T10:00:00+02:00"

    def deliver(self, msg, *args):
        p = self.desk.deliver(msg, *args, env={"MAILDESK_NOW": self.now})
        if p.returncode != 0:
            raise RuntimeError(p.stderr.decode())
        return p.stdout.decode().strip()

    def agent_says(self, ticket, body, subject="Re: [SUP-1] help"):
        tok = token_address(self.desk, ticket)
        return self.deliver(message(subject=subject, sender=AGENT, to=tok, body=body), "--recipient", tok)

    def customer_says(self, body, subject="Re: [SUP-1] help", sender=CUSTOMER, ticket=1):
        tok = token_address(self.desk, ticket)
        return self.deliver(message(subject=subject, sender=sender, to=tok, body=body), "--recipient", tok)

    def new_mail(self):
        """Flushes the outbox; returns [(rcpts, parsed message)] sent since last call."""
        self.desk.run("outbox", "flush", env={"MAILDESK_NOW": self.now})
        got = self.catcher.messages()
        fresh = got[self.seen:]
        self.seen = len(got)
        return [(env["rcpt_tos"], email.message_from_bytes(raw, policy=email.policy.default)) for env, raw in fresh]

    def status(self, ticket=1):
        return self.desk.show(ticket)["status"]

    def close(self):
        self.catcher.stop()
        self.desk.cleanup()


def to_of(mails, addr):
    return [m for rcpts, m in mails if addr in rcpts]


def body_of(m):
    return m.get_body(preferencelist=("plain",)).get_content()


def test_full_cycle(tap):
    c = Conversation(tap)
    c.deliver(message(subject="help", body="The export fails with error 500."))
    mails = c.new_mail()
    ack = to_of(mails, CUSTOMER)
    tap.eq(len(ack), 1, "the customer gets one acknowledgement")
    tap.ok(ack and "SUP-1" in ack[0]["Subject"] and "mailto:" in body_of(ack[0]) and "%23resolve" in body_of(ack[0]),
           "with the key and a mailto link that resolves the ticket", ack and body_of(ack[0]))
    raw_ack = c.catcher.messages()[0][1]
    tap.ok(b"\xc2\xb7" in raw_ack or b"=C2=B7" in raw_ack or b"charset=utf-8" not in raw_ack,
           "non-ASCII template text goes out as the UTF-8 it claims to be")
    tap.ok("·" in body_of(ack[0]), "and decodes back to the same text")
    relay = to_of(mails, AGENT)
    tap.ok(relay and "export fails" in body_of(relay[0]).lower(), "the agents get the new request", mails)
    tap.ok(relay and str(relay[0]["Reply-To"]).find(token_address(c.desk, 1)) >= 0,
           "whose Reply-To is the token address agents answer to")

    c.agent_says(1, "#ack")
    tap.eq(c.status(), "Request acknowledged", "#ack acknowledges")
    tap.ok(c.desk.show(1)["first_response_at"] is not None, "and meets the first response")

    c.agent_says(1, "#waiting\nWhich version are you running?")
    tap.eq(c.status(), "Waiting for customer", "#waiting asks the customer")
    mails = c.new_mail()
    asked = [m for m in to_of(mails, CUSTOMER) if "Which version" in body_of(m)]
    tap.eq(len(asked), 1, "the agent's question reaches the customer")
    tap.ok(asked and "Jane Agent" in str(asked[0]["From"]), "with the agent's name in From", asked and asked[0]["From"])
    tap.ok(all("#waiting" not in body_of(m) for m in to_of(mails, CUSTOMER)), "command lines are not relayed")

    c.customer_says("Version 5.1.3")
    tap.eq(c.status(), "In progress", "the customer's answer moves it to In progress")
    mails = c.new_mail()
    tap.ok(any("5.1.3" in body_of(m) for m in to_of(mails, AGENT)), "and reaches the agent")

    c.agent_says(1, "#internal\nLooks like the 5.1 regression, ask Bob.")
    mails = c.new_mail()
    tap.eq(to_of(mails, CUSTOMER), [], "an #internal note never reaches the customer")
    notes = [m for m in c.desk.show(1)["messages"] if "ask Bob" in m["body"]]
    tap.ok(notes and notes[0]["internal"], "it is stored as internal")

    c.agent_says(1, "#resolve\nFixed in 5.1.4.")
    tap.eq(c.status(), "Resolved", "#resolve resolves")
    mails = c.new_mail()
    tap.ok(any("Fixed in 5.1.4" in body_of(m) for m in to_of(mails, CUSTOMER)), "the customer reads the answer")

    c.customer_says("It broke again.")
    tap.eq(c.status(), "Reopened", "a reply within the reopen window reopens")
    c.agent_says(1, "Looking again.")
    tap.eq(c.status(), "In progress", "an agent reply takes a reopened ticket to In progress")
    c.agent_says(1, "#resolve")
    c.now = "2027-02-01T10:00:00+02:00"
    key = c.customer_says("Months later, a new problem.")
    tap.eq(key, "SUP-2", "after the window a reply opens a new ticket")
    tap.eq(c.desk.show(2).get("linked_ticket"), "SUP-1", "that links the old one")
    tap.eq(c.status(1), "Resolved", "and the old one stays resolved")
    hist = c.desk.show(1)["history"]
    tap.ok(all(h["actor"] and h["at"] for h in hist) and any(h["field"] == "status" and h["old"] == "Waiting for customer"
                                                           and h["new"] == "In progress" for h in hist),
           "every change is in the history with actor and time", hist)
    c.close()


def test_commands_and_errors(tap):
    c = Conversation(tap)
    c.deliver(message(subject="help", body="Question"))
    c.new_mail()
    c.agent_says(1, "#priority P7\n#category Cooking\n#status almost done\n#assign nobody@nowhere.example\n#frobnicate\n")
    mails = to_of(c.new_mail(), AGENT)
    errors = [body_of(m) for m in mails]
    tap.eq(len(errors), 5, "each bad command is answered by mail", errors)
    for word in ("P7", "Cooking", "almost done", "nobody@nowhere.example", "frobnicate"):
        tap.ok(any(word in e for e in errors), f"the answer names {word}", errors)
    t = c.desk.show(1)
    tap.eq((t["priority"], t["category"], t["status"]), ("P3", "Technical Request", "Waiting for triage"),
           "and nothing changed")

    c.agent_says(1, "#PRIORITY p1\n#Status In-Progress\n#assign me\n#category bug")
    t = c.desk.show(1)
    tap.eq((t["priority"], t["status"], t["assignee"], t["category"]), ("P1", "In progress", AGENT, "Bug"),
           "commands are case-insensitive and accept p1, In-Progress, me")

    c.customer_says("#priority P1\nPlease hurry")
    mails = to_of(c.new_mail(), CUSTOMER)
    tap.ok(any("agents" in body_of(m).lower() and "#priority" in body_of(m) for m in mails),
           "a customer using an agent command is told it is not allowed", [body_of(m) for m in mails])

    c.customer_says("#list")
    mails = to_of(c.new_mail(), CUSTOMER)
    tap.ok(any("[SUP-1]" in body_of(m) and "In progress" in body_of(m) for m in mails), "#list answers with the tickets",
           [body_of(m) for m in mails])

    c.customer_says("#resolve")
    tap.eq(c.status(), "Resolved", "the customer may #resolve")
    c.customer_says("#resolve")
    mails = to_of(c.new_mail(), CUSTOMER)
    tap.ok(any("resolved" in body_of(m).lower() for m in mails), "#resolve on a resolved ticket says why")
    c.close()


def test_status_the_reply_already_set(tap):
    """An agent's reply moves an acknowledged ticket to In progress before
    its commands run; its own "#status In progress" is then already done,
    not an error mailed back (as #category or #priority with the value a
    ticket has)."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="Question"))
    c.agent_says(1, "#ack")
    c.new_mail()
    c.agent_says(1, "#status In progress\nLooking into it now.")
    tap.eq(c.status(), "In progress", "the ticket is In progress")
    mails = c.new_mail()
    tap.eq([body_of(m) for m in to_of(mails, AGENT)], [], "the agent gets no command error")
    tap.eq(len([m for m in to_of(mails, CUSTOMER) if "Looking into it" in body_of(m)]), 1, "the customer gets the reply")
    moves = [h for h in c.desk.show(1)["history"] if h["field"] == "status" and h["new"] == "In progress"]
    tap.eq(len(moves), 1, "the move is recorded once", moves)
    p = c.desk.run("ticket", "set", "1", "status=In progress")
    tap.eq(p.returncode, 0, "ticket set to the status the ticket has succeeds, changing nothing", p.stderr.decode())
    c.close()


def test_reply_footer_shows_the_new_status(tap):
    """The footer of an agent's reply ("Ticket SUP-1 · STATUS · P3") shows
    the status the reply moved the ticket to, not the one it left."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="Question"))
    c.new_mail()
    for reply, want in (("First answer.", "Request acknowledged"), ("Second answer.", "In progress")):
        c.agent_says(1, reply)
        got = [body_of(m) for m in to_of(c.new_mail(), CUSTOMER) if reply in body_of(m)]
        tap.ok(len(got) == 1 and f"Ticket SUP-1 \u00b7 {want} \u00b7 P3" in got[0],
               f"the reply's footer says {want}", got)
        tap.eq(c.status(), want, f"the ticket is {want}")
    c.agent_says(1, "#priority P1\n#category Bug\nThird answer.")
    got = [body_of(m) for m in to_of(c.new_mail(), CUSTOMER) if "Third answer." in body_of(m)]
    tap.ok(len(got) == 1 and "Ticket SUP-1 \u00b7 In progress \u00b7 P1" in got[0],
           "a #priority in the same mail shows in the reply's footer", got)
    c.agent_says(1, "#resolve\nFixed in 5.1.4.")
    got = [body_of(m) for m in to_of(c.new_mail(), CUSTOMER)]
    tap.ok(len(got) == 1 and "Fixed in 5.1.4." in got[0] and "Ticket SUP-1 \u00b7 Resolved \u00b7 P1" in got[0],
           "a #resolve in the same mail shows in the reply's footer, and is told in it alone", got)
    c.close()


def test_status_told_in_the_reply(tap):
    """An agent's reply whose #waiting, #resolve or #status moves the
    ticket is one mail to each customer: the reply, saying what the
    status became; no status mail of its own.  A command alone still
    has its status mail, and a reply that moves the ticket by itself
    (a first answer, a reopened ticket's) says nothing of it."""
    c = Conversation(tap)
    bob = "bob@customer.example"
    c.deliver(message(subject="help", body="Question", headers=[f"Cc: Bob <{bob}>"]))
    c.new_mail()

    def one_line(text):
        return " ".join(text.split())

    c.agent_says(1, "#waiting\nWhich version do you run?")
    tap.eq(c.status(), "Waiting for customer", "#waiting in a reply sets the status")
    mails = c.new_mail()
    for who in (CUSTOMER, bob):
        got = [body_of(m) for m in to_of(mails, who)]
        tap.ok(len(got) == 1 and "Which version do you run?" in got[0]
               and "has changed from Waiting for triage to Waiting for customer." in one_line(got[0]),
               f"{who} gets one mail: the reply, with the change from the status they last knew", got)
    tap.ok(mails and all(m["Auto-Submitted"] is None for rcpts, m in mails),
           "sent as the agent's reply, not an automatic one", [m["Auto-Submitted"] for rcpts, m in mails])
    kinds = sorted({r["kind"] for r in c.desk.json("outbox", "list")})
    tap.ok("status-change" not in kinds, "no status mail is queued", kinds)

    c.customer_says("Version 5.1.3.")
    c.new_mail()
    c.agent_says(1, "#resolve\nFixed in 5.1.4.")
    got = [body_of(m) for m in to_of(c.new_mail(), CUSTOMER)]
    tap.ok(len(got) == 1 and "Fixed in 5.1.4." in got[0]
           and "has changed from In progress to Resolved." in one_line(got[0])
           and "reply to this message within 30 days and we will reopen" in one_line(got[0])
           and "Mark it resolved again:" in got[0], "#resolve: the reply says it is resolved, and how to reopen it",
           got)
    tap.eq(c.status(), "Resolved", "and it is")

    c.customer_says("It broke again.")
    c.new_mail()
    c.agent_says(1, "Looking again.")
    got = [body_of(m) for m in to_of(c.new_mail(), CUSTOMER)]
    tap.ok(len(got) == 1 and "has changed" not in got[0] and "Solved? Mark it resolved:" in got[0],
           "a reply that moves a reopened ticket by itself says nothing of it", got)

    c.agent_says(1, "#status Waiting for customer\n#priority P1\nCan you send the log?")
    got = [body_of(m) for m in to_of(c.new_mail(), CUSTOMER)]
    tap.ok(len(got) == 1 and "has changed from In progress to Waiting for customer." in one_line(got[0])
           and "\u00b7 Waiting for customer \u00b7 P1" in got[0], "#status too, beside a #priority", got)

    c.agent_says(1, "#resolve")
    mails = to_of(c.new_mail(), CUSTOMER)
    tap.ok(len(mails) == 1 and "Status update" in str(mails[0]["Subject"]),
           "a #resolve with no words still has its status mail", [m["Subject"] for m in mails])
    c.close()


def test_show_text_names_the_sender(tap):
    """`ticket show` in text names each message's sender: the desk's own
    mail is "out from" the desk, never "to" its own address."""
    desk = Desk()
    desk.deliver(message(subject="help", body="Question"), env={"MAILDESK_NOW": "2026-12-01T10:00:00+02:00"})
    text = desk.run("ticket", "show", "1", check=True).stdout.decode()
    heads = [line for line in text.splitlines() if line.startswith("--- #")]
    tap.ok(len(heads) == 2 and " from alice@customer.example " in heads[0]
           and " out from support@support.example.com " in heads[1], "in from the customer, out from the desk", heads)
    desk.cleanup()


def test_unassign(tap):
    """#assign none (and ticket set assignee= or assignee=none) takes the
    assignee off: reminders go to every agent again."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="Question"))
    c.agent_says(1, "#assign me")
    tap.eq(c.desk.show(1)["assignee"], AGENT, "#assign me assigns")
    c.agent_says(1, "#assign none")
    tap.eq(c.desk.show(1)["assignee"], None, "#assign none unassigns")
    hist = [h for h in c.desk.show(1)["history"] if h["field"] == "assignee"]
    tap.ok(hist and hist[-1]["old"] == AGENT and hist[-1]["new"] is None, "recorded in the history", hist)
    tap.eq([body_of(m) for m in to_of(c.new_mail(), AGENT) if "could not be carried out" in m["Subject"]], [],
           "without a command error")
    for value in ("", "none", " none"):
        c.desk.run("ticket", "set", "1", f"assignee={AGENT}", check=True)
        p = c.desk.run("ticket", "set", "1", f"assignee={value}")
        tap.eq((p.returncode, c.desk.show(1)["assignee"]), (0, None), f"ticket set assignee={value} unassigns",
               p.stderr.decode())
    c.close()


def test_assign_the_assignee(tap):
    """Setting the assignee a ticket already has changes nothing, as the
    manual says of every field: no history row "jane -> jane", no
    ticket update."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="Question"))
    c.agent_says(1, "#assign me")
    before = c.desk.show(1)
    c.agent_says(1, "#assign me")
    p = c.desk.run("ticket", "set", "1", f"assignee={AGENT.upper()}")
    tap.eq(p.returncode, 0, "ticket set to the assignee the ticket has succeeds", p.stderr.decode())
    after = c.desk.show(1)
    tap.eq(after["assignee"], AGENT, "the ticket keeps its assignee")
    tap.eq([(h["old"], h["new"]) for h in after["history"] if h["field"] == "assignee"], [(None, AGENT)],
           "the history records the assignment once", after["history"])
    tap.eq([body_of(m) for m in to_of(c.new_mail(), AGENT) if "could not be carried out" in m["Subject"]], [],
           "and the agent gets no command error")
    c.close()


def test_organizations(tap):
    c = Conversation(tap)
    c.desk.run("org", "add", "Acme", "--member", CUSTOMER, "--member", "bob@customer.example", check=True)
    c.deliver(message(subject="help", body="Shared question"))
    c.new_mail()
    t = c.desk.show(1)
    tap.eq((t["organization"], t["visibility"]), ("Acme", "private"), "a member's ticket is private by default")

    c.customer_says("I have more", sender="bob@customer.example")
    last = [m for m in c.desk.show(1)["messages"] if m["direction"] == "in"][-1]
    tap.eq((last["from"], last["internal"], last["flag"]), ("bob@customer.example", True, "unverified sender"),
           "a colleague's reply to a private ticket is only an unverified note")
    tap.eq(to_of(c.new_mail(), CUSTOMER), [], "which reaches no one")
    c.customer_says("#share")
    tap.eq(c.desk.show(1)["visibility"], "shared", "#share shares it with the organization")
    c.agent_says(1, "Here is the answer for everyone.")
    mails = c.new_mail()
    tap.ok(to_of(mails, "bob@customer.example") and to_of(mails, CUSTOMER), "members of a shared ticket get its mail")
    n_before = len([m for m in c.desk.show(1)["messages"] if m["direction"] == "in"])
    c.customer_says("Thanks from Bob", sender="bob@customer.example")
    n_after = len([m for m in c.desk.show(1)["messages"] if m["direction"] == "in"])
    tap.eq(n_after, n_before + 1, "and may reply to it")
    c.customer_says("#list", sender="bob@customer.example")
    mails = to_of(c.new_mail(), "bob@customer.example")
    tap.ok(any("[SUP-1]" in body_of(m) for m in mails), "and see it in #list")
    c.customer_says("#private")
    tap.eq(c.desk.show(1)["visibility"], "private", "#private takes it back")
    c.close()


def test_share_is_confirmed(tap):
    """The requester's #share or #private is answered: they are told, in
    reply to their message, whether the ticket is now shared with their
    organization or private.  Only they are (not the members), not in
    the mail that opened the ticket (its acknowledgement says it), and
    at most ack_rate_limit times an hour (their From may be forged)."""
    c = Conversation(tap)
    bob = "bob@customer.example"
    c.desk.run("org", "add", "Acme", "--member", CUSTOMER, "--member", bob, check=True)
    c.deliver(message(subject="help", body="Question"))
    c.new_mail()

    tok = token_address(c.desk, 1)
    c.deliver(message(subject="Re: [SUP-1] help", to=tok, body="#share", msgid="share-1"), "--recipient", tok)
    mails = c.new_mail()
    got = to_of(mails, CUSTOMER)
    b = got and " ".join(body_of(got[0]).split())
    tap.ok(len(got) == 1 and "shared" in str(got[0]["Subject"]) and "[SUP-1]" in str(got[0]["Subject"])
           and "is shared with Acme: its members receive the ticket's mail" in b and "#private" in b,
           "#share: the requester is told the ticket is shared with the organization", b)
    tap.ok(got and f"<{tok}>" in got[0]["Reply-To"] and got[0]["In-Reply-To"] == "<share-1@customer.example>"
           and got[0]["Auto-Submitted"] == "auto-replied", "in reply to their message, from the ticket's address",
           got and (got[0]["Reply-To"], got[0]["In-Reply-To"], got[0]["Auto-Submitted"]))
    tap.eq(to_of(mails, bob), [], "the members are not mailed about it")

    c.customer_says("#private\nAnd one more thing.")
    got = to_of(c.new_mail(), CUSTOMER)
    b = got and " ".join(body_of(got[0]).split())
    tap.ok(len(got) == 1 and "is private: only you and the people copied on it" in b
           and "members of Acme do not see it" in b, "#private: told it is private", b)
    c.customer_says("#private")
    got = to_of(c.new_mail(), CUSTOMER)
    tap.ok(len(got) == 1 and "is private" in body_of(got[0]), "asked again, told where it stands", got)

    c.agent_says(1, "#share")
    mails = c.new_mail()
    tap.eq(to_of(mails, CUSTOMER), [], "an agent's #share is refused, and the requester is told nothing")
    tap.eq(c.desk.show(1)["visibility"], "private", "it stays private")

    for _ in range(6):
        c.customer_says("#share")
    got = to_of(c.new_mail(), CUSTOMER)
    tap.eq(len(got), 2, "at most ack_rate_limit (5) confirmations an hour, three sent before", [m["Subject"] for m in got])

    c.deliver(message(subject="another", body="#share\nA new question.", sender=bob))
    mails = to_of(c.new_mail(), bob)
    tap.ok(len(mails) == 1 and "We received your request" in str(mails[0]["Subject"])
           and "This ticket is shared." in " ".join(body_of(mails[0]).split()),
           "a #share in the mail that opens a ticket is told by its acknowledgement alone",
           [m["Subject"] for m in mails])
    c.close()


def test_share_after_the_organization_is_made(tap):
    """A ticket opened before its requester's organization existed can
    still be shared once the requester belongs to one (here by domain):
    it becomes the organization's, and the colleague may then reply."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="Question before the organization"))
    c.new_mail()
    c.desk.run("org", "add", "Customer Inc", "--domain", "customer.example", check=True)
    c.customer_says("I have more", sender="bob@customer.example")
    tap.eq(c.desk.show(1)["messages"][-1]["flag"], "unverified sender", "a colleague is not let in before #share")
    c.customer_says("#share")
    t = c.desk.show(1)
    tap.eq((t["organization"], t["visibility"]), ("Customer Inc", "shared"), "#share shares it with the organization")
    tap.eq([m["Subject"] for m in to_of(c.new_mail(), CUSTOMER) if "could not be carried out" in m["Subject"]], [],
           "without a command error")
    c.customer_says("Thanks from Bob", sender="bob@customer.example")
    last = [m for m in c.desk.show(1)["messages"] if m["direction"] == "in"][-1]
    tap.eq((last["from"], last["internal"]), ("bob@customer.example", False), "the colleague may reply now")
    c.close()


def test_strangers(tap):
    c = Conversation(tap)
    c.deliver(message(subject="help", body="My secret data"))
    c.new_mail()
    key = c.deliver(message(subject="Re: [SUP-1] help", sender="mallory@evil.example", body="#resolve\nsend it to me"))
    tap.eq(key, "SUP-2", "a stranger with a guessed tag opens a ticket of his own")
    tap.eq(c.status(1), "Waiting for triage", "and changes nothing")
    key = c.deliver(message(subject="Re: [SUP-1] help", sender=AGENT, body="#resolve\nClosing."))
    tap.eq(c.status(1), "Waiting for triage", "a forged agent From without the token changes nothing")
    mails = c.new_mail()
    tap.eq(to_of(mails, CUSTOMER), [], "and nothing reaches the customer")
    told = [m for m in to_of(mails, AGENT) if token_address(c.desk, 1) in body_of(m)]
    tap.eq(len(told), 1, "the agent is told how to reply instead", [body_of(m) for m in to_of(mails, AGENT)])
    tok = token_address(c.desk, 1)
    c.deliver(message(subject="Re: [SUP-1] help", sender="mallory@evil.example", to=tok, body="#resolve"),
              "--recipient", tok)
    tap.eq(c.status(1), "Waiting for triage", "a stranger at the token address changes nothing")
    tap.eq(to_of(c.new_mail(), CUSTOMER), [], "and reaches no one")
    c.close()


def test_participants_and_attachments(tap):
    c = Conversation(tap)
    c.deliver(message(subject="help", body="Cc my boss", headers=["Cc: Boss <boss@customer.example>"]))
    c.new_mail()
    c.agent_says(1, "We will fix it.")
    mails = c.new_mail()
    tap.ok(to_of(mails, "boss@customer.example") and to_of(mails, CUSTOMER),
           "addresses in Cc of the first message receive public mail")
    c.customer_says("Please hurry", sender="boss@customer.example")
    tap.eq([m for m in c.desk.show(1)["messages"] if m["direction"] == "in"][-1]["internal"], False,
           "and may reply")
    tok = token_address(c.desk, 1)
    with_file = (f"From: Jane Agent <{AGENT}>\r\nTo: {tok}\r\nCc: cto@customer.example\r\n"
                 f"Subject: Re: [SUP-1] help\r\nMessage-ID: <att1@support.example.com>\r\nMIME-Version: 1.0\r\n"
                 f"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
                 f"The patch is attached.\r\n--B\r\nContent-Type: text/x-diff; name=\"fix.patch\"\r\n"
                 f"Content-Disposition: attachment; filename=\"fix.patch\"\r\n\r\n--- a\r\n+++ b\r\n--B--\r\n").encode()
    c.deliver(with_file, "--recipient", tok)
    mails = to_of(c.new_mail(), CUSTOMER)
    files = [part.get_filename() for m in mails for part in m.iter_attachments()]
    tap.ok("fix.patch" in files, "the agent's attachment reaches the customer", files)
    c.agent_says(1, "Also for the CTO.")
    tap.ok(to_of(c.new_mail(), "cto@customer.example"), "an address an agent copies becomes a participant")
    c.close()


def test_out_of_office(tap):
    """Out-of-office answers, an agent's or the customer's, are kept as
    internal notes: relayed to no one, no first response, no status move."""
    c = Conversation(tap)
    c.deliver(message(subject="help"))
    c.new_mail()
    tok = token_address(c.desk, 1)
    c.deliver(message(subject="Automatic reply: help", sender=AGENT, to=tok, body="I am out of office until Monday.",
                      headers=["Auto-Submitted: auto-replied"]), "--recipient", tok)
    t = c.desk.show(1)
    note = t["messages"][-1]
    tap.ok(note["internal"] and note["flag"].startswith("automatic:"), "the agent's out-of-office is an internal note",
           note)
    tap.eq(t["first_response_at"], None, "which is no first response")
    tap.eq(to_of(c.new_mail(), CUSTOMER), [], "and is not relayed to the customer")
    c.agent_says(1, "#waiting\nWhich version do you run?")
    tap.eq(c.status(), "Waiting for customer", "the agent asks the customer")
    c.new_mail()
    c.deliver(message(subject="Out of office", sender=CUSTOMER, to=tok, body="Away until Monday.",
                      headers=["Precedence: auto_reply", "X-Autoreply: yes"]), "--recipient", tok)
    tap.eq(c.status(), "Waiting for customer", "the customer's out-of-office does not move the ticket")
    tap.eq(to_of(c.new_mail(), AGENT), [], "nor is it relayed to the agents")
    c.close()


def test_large_organization(tap):
    """A shared ticket of an organization with more members than one mail
    may carry is still answered: several mails, everyone once."""
    c = Conversation(tap)
    members = [f"m{i}@acme.example" for i in range(1, 131)]
    args = ["org", "add", "ACME"]
    for m in members:
        args += ["--member", m]
    c.desk.run(*args, check=True)
    c.deliver(message(subject="help", sender=members[0]))
    c.desk.run("ticket", "set", "1", "visibility=shared", "--as", AGENT, env={"MAILDESK_NOW": c.now}, check=True)
    c.new_mail()
    p = c.desk.run("ticket", "reply", "1", "--as", AGENT, input=b"Fixed for all of you.\n", env={"MAILDESK_NOW": c.now})
    tap.eq(p.returncode, 0, "the agent's reply is accepted", p.stderr)
    mails = c.new_mail()
    got = sorted(r for rcpts, m in mails for r in rcpts)
    tap.eq(got, sorted(members), "every member gets it once")
    to_lines = {str(m["Message-ID"]): len(m["To"].addresses) for rcpts, m in mails}
    tap.eq(sorted(to_lines.values()), [30, 100], "as two mails (Message-IDs) of at most 100 addressees each", to_lines)
    c.close()


def outbox_rcpts(desk, kind):
    """The recipients of the rows of KIND in the outbox, sorted."""
    return sorted(r["to"] for r in desk.json("outbox", "list") if r["kind"] == kind)


def test_organization_of_thousands(tap):
    """Mail for a shared ticket goes to every member of its organization,
    however many: once read with LIMIT 1000, the members past the
    thousandth heard nothing, and nothing said so."""
    desk = Desk()
    try:
        desk.run("agent", "add", AGENT, check=True)
        members = [f"m{i:04}@acme.example" for i in range(1, 1006)]
        args = ["org", "add", "ACME"]
        for m in members:
            args += ["--member", m]
        desk.run(*args, check=True)
        now = {"MAILDESK_NOW": "2026-12-01T10:00:00+02:00"}
        requester = members[-1]
        p = desk.deliver(message(subject="help", sender=requester), env=now)
        tap.eq(p.returncode, 0, "a member (the last one made) opens a ticket", p.stderr)
        desk.run("ticket", "set", "1", "visibility=shared", "--as", AGENT, env=now, check=True)
        p = desk.run("ticket", "reply", "1", "--as", AGENT, input=b"Fixed for all of you.\n", env=now)
        tap.eq(p.returncode, 0, "the agent's reply is accepted", p.stderr)
        tap.eq(outbox_rcpts(desk, "agent-reply"), members, "all 1,005 members get the agent's reply, once each")

        author = members[2]
        tok = token_address(desk, 1)
        p = desk.deliver(message(subject="Re: [SUP-1] help", sender=author, to=tok, body="#resolve\nWorks now.\n"),
                         "--recipient", tok, env=now)
        tap.eq(p.returncode, 0, "a member resolves the shared ticket", p.stderr)
        tap.eq(desk.show(1)["status"], "Resolved", "it is resolved")
        tap.eq(outbox_rcpts(desk, "status-change"), members,
               "every member hears of it (its author too: that is the confirmation)")
    finally:
        desk.cleanup()


def test_agents_of_thousands(tap):
    """A customer's reply on an unassigned ticket goes to every agent,
    however many (the agents were read with LIMIT 1000 too)."""
    import sqlite3
    desk = Desk()
    try:
        desk.run("agent", "add", AGENT, check=True)
        agents = [f"agent{i:04}@support.example.com" for i in range(1, 1005)]
        with sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db")) as c:
            c.executemany("INSERT INTO people (email, is_agent, created_at) VALUES (?, 1, 0)", [(a,) for a in agents])
        now = {"MAILDESK_NOW": "2026-12-01T10:00:00+02:00"}
        p = desk.deliver(message(subject="help"), env=now)
        tap.eq(p.returncode, 0, "a customer opens a ticket nobody is assigned", p.stderr)
        everyone = sorted(agents + [AGENT])
        tap.eq(outbox_rcpts(desk, "customer-reply"), everyone, "all 1,005 agents get the new request")
        tok = token_address(desk, 1)
        p = desk.deliver(message(subject="Re: [SUP-1] help", to=tok, body="Any news?\n"), "--recipient", tok, env=now)
        tap.eq(p.returncode, 0, "the customer writes again", p.stderr)
        tap.eq(outbox_rcpts(desk, "customer-reply"), sorted(everyone * 2), "and all 1,005 get the reply")
    finally:
        desk.cleanup()


def with_file(sender, to, subject, name, data):
    """A reply that is only a file: an empty text part and an attachment."""
    from email.message import EmailMessage
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{os.urandom(8).hex()}@customer.example>"
    m.set_content("")
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m.as_bytes()


def test_file_only_replies(tap):
    """A reply that is only a file is a reply: the agent's reaches the
    customer and is the first response, the customer's wakes the ticket."""
    c = Conversation(tap)
    c.deliver(message(subject="help"))
    c.new_mail()
    tok = token_address(c.desk, 1)
    c.deliver(with_file(AGENT, tok, "Re: [SUP-1] help", "fix.patch", b"--- a\n+++ b\n"), "--recipient", tok)
    t = c.desk.show(1)
    tap.ok(t["first_response_at"] is not None, "the agent's file-only reply is the first response")
    sent = to_of(c.new_mail(), CUSTOMER)
    tap.ok(sent and any(p.get_filename() == "fix.patch" for p in sent[0].iter_attachments()),
           "and reaches the customer with the file")
    c.agent_says(1, "#waiting\nPlease send the logs.")
    c.new_mail()
    c.deliver(with_file(CUSTOMER, tok, "Re: [SUP-1] help", "console.log", b"ERROR 42\n"), "--recipient", tok)
    tap.eq(c.status(), "In progress", "the customer's file-only answer takes the ticket out of Waiting for customer")
    tap.eq(len(to_of(c.new_mail(), AGENT)), 1, "and the agents hear of it")
    c.close()


def agent_mail_with(tok, parts, msgid):
    """The agent's reply to ticket 1 with PARTS: (headers, body bytes) each."""
    head = (f"From: Jane Agent <{AGENT}>\r\nTo: {tok}\r\nSubject: Re: [SUP-1] help\r\n"
            f"Message-ID: <{msgid}@support.example.com>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
            "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe files.\r\n").encode()
    body = b"".join(b"--B\r\n" + h.encode() + b"\r\n\r\n" + data + b"\r\n" for h, data in parts)
    return head + body + b"--B--\r\n"


def test_attachment_charsets(tap):
    """The charset the agent declared goes out again; undeclared text goes
    out as UTF-8 only when its bytes are UTF-8 with 8-bit characters."""
    c = Conversation(tap)
    c.deliver(message(subject="help"))
    c.new_mail()
    tok = token_address(c.desk, 1)
    utf8 = "Grüße aus Köln\n".encode()
    latin1 = "Grüße aus Köln\n".encode("iso-8859-1")

    def named(name, ctype, cte="8bit"):
        return f"Content-Type: {ctype}\r\nContent-Disposition: attachment; filename={name}\r\n" \
               f"Content-Transfer-Encoding: {cte}"
    import base64
    parts = [(named("utf8.txt", "text/plain; charset=utf-8"), utf8),
             (named("latin1.txt", "text/plain; charset=ISO-8859-1", "base64"), base64.b64encode(latin1)),
             (named("bare.txt", "text/plain"), utf8),
             (named("ascii.txt", "text/plain"), b"plain ASCII\n"),
             (named("bare-latin1.txt", "text/plain"), latin1),
             (named("data.csv", "text/csv; charset=\"windows-1252\""), b"a;b\n"),
             (named("junk.txt", "text/plain; charset=\"utf-8 bad\""), b"x\n"),
             (named("blob.bin", "application/octet-stream", "base64"), base64.b64encode(utf8))]
    c.deliver(agent_mail_with(tok, parts, "charsets"), "--recipient", tok)
    sent = to_of(c.new_mail(), CUSTOMER)
    got = {p.get_filename(): (p.get_content_type(), p.get_param("charset")) for m in sent for p in m.iter_attachments()}
    tap.eq(got, {"utf8.txt": ("text/plain", "utf-8"), "latin1.txt": ("text/plain", "ISO-8859-1"),
                 "bare.txt": ("text/plain", "utf-8"), "ascii.txt": ("text/plain", None),
                 "bare-latin1.txt": ("text/plain", None), "data.csv": ("text/csv", "windows-1252"),
                 "junk.txt": ("text/plain", None), "blob.bin": ("application/octet-stream", None)},
           "each attachment goes out with the charset declared, or UTF-8 seen in undeclared text, or none")
    files = {p.get_filename(): p.get_payload(decode=True) for m in sent for p in m.iter_attachments()}
    tap.eq((files.get("latin1.txt"), files.get("bare.txt")), (latin1, utf8), "with their bytes unchanged")
    for m in sent:
        for p in m.iter_attachments():
            if p.get_filename() in ("utf8.txt", "latin1.txt", "bare.txt"):
                tap.eq(p.get_content(), "Grüße aus Köln\n", f"{p.get_filename()} reads as written")
    shown = [a["content_type"] for m in c.desk.show(1)["messages"] for a in m["attachments"]]
    tap.ok(shown and all(";" not in t for t in shown), "ticket show --json keeps content_type the bare type", shown)
    c.close()


def test_kept_copy_has_the_attachments(tap):
    """The copy of an agent's reply kept on the ticket lists the files the
    customer was sent, naming the same blobs; mail without files keeps none."""
    c = Conversation(tap)
    c.deliver(message(subject="help"))
    c.new_mail()
    tok = token_address(c.desk, 1)
    patch = b"--- a\n+++ b\n"
    c.deliver(agent_mail_with(tok, [("Content-Type: text/x-diff\r\nContent-Disposition: attachment; "
                                     "filename=fix.patch", patch)], "one"), "--recipient", tok)
    c.new_mail()
    msgs = c.desk.show(1)["messages"]
    copies = [m for m in msgs if m["direction"] == "out"]
    tap.eq([m["flag"] for m in copies], ["sent: ack", "sent: agent-reply"], "the ticket keeps the ack and the reply",
           [m["flag"] for m in copies])
    tap.eq(copies[0]["attachments"], [], "the acknowledgement's copy has no attachment")
    import hashlib
    want = [{"filename": "fix.patch", "content_type": "text/x-diff", "size": len(patch),
             "sha256": hashlib.sha256(patch).hexdigest(), "depth": 0}]
    tap.eq(copies[-1]["attachments"], want, "the reply's copy has the file it carried")
    tap.eq(msgs[-2]["attachments"], want, "the same blob as the agent's own message")
    blob_dir = os.path.join(c.desk.dir, "var", "spool", "blob")
    blobs = [n for d, _, names in os.walk(blob_dir) for n in names]
    tap.eq(blobs.count(hashlib.sha256(patch).hexdigest()), 1, "kept once in the spool", blobs)
    text = c.desk.run("ticket", "show", "1", check=True).stdout.decode()
    tap.eq(text.count("[attachment] fix.patch (text/x-diff"), 2, "ticket show lists it under both messages", text)

    c.customer_says("Thanks")
    c.new_mail()
    c.desk.run("ticket", "set", "1", "status=Resolved", "--as", AGENT, env={"MAILDESK_NOW": c.now}, check=True)
    c.new_mail()
    tap.eq([m["attachments"] for m in c.desk.show(1)["messages"] if m["direction"] == "out"][2:], [[]],
           "the status change's copy has none", c.desk.show(1)["messages"])

    many = [(f"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=f{i:03}.txt",
             f"file {i}\n".encode()) for i in range(105)]
    c.deliver(agent_mail_with(tok, many, "many"), "--recipient", tok)
    sent = to_of(c.new_mail(), CUSTOMER)
    names = [p.get_filename() for m in sent for p in m.iter_attachments()]
    kept = [a["filename"] for a in c.desk.show(1)["messages"][-1]["attachments"]]
    tap.eq(len(names), 100, "a reply with 105 files sends the first 100 (MD_COMPOSE_MAX_ATTACHMENTS)")
    tap.eq(kept, names, "and its copy lists exactly those, in order")
    c.close()


def test_reply_from_command_line(tap):
    """`ticket reply --as` writes as the agent the desk knows, by name."""
    c = Conversation(tap)
    c.deliver(message(subject="help"))
    c.new_mail()
    p = c.desk.run("ticket", "reply", "1", "--as", AGENT, input=b"We are on it.\n", env={"MAILDESK_NOW": c.now})
    tap.eq(p.returncode, 0, "ticket reply --as succeeds", p.stderr)
    to_alice = to_of(c.new_mail(), CUSTOMER)
    tap.eq(len(to_alice), 1, "the reply goes to the customer")
    if to_alice:
        tap.ok(to_alice[0]["From"].addresses[0].display_name.startswith("Jane Agent"), "From names the agent",
               str(to_alice[0]["From"]))
        tap.ok("We are on it." in body_of(to_alice[0]), "with the text")
    c.close()


def test_reply_from_script_without_agent(tap):
    """DESIGN 3: `ticket reply ID` replies from a script with the text on
    stdin and nothing else; without --as or MAILDESK_AGENT it writes as
    the desk itself."""
    c = Conversation(tap)
    c.deliver(message(subject="help"))
    c.new_mail()
    env = {"MAILDESK_NOW": c.now, "MAILDESK_AGENT": ""}
    p = c.desk.run("ticket", "reply", "SUP-1", input=b"We are on it.\n", env=env)
    tap.eq(p.returncode, 0, "ticket reply ID without --as succeeds", p.stderr)
    to_alice = to_of(c.new_mail(), CUSTOMER)
    tap.eq(len(to_alice), 1, "the reply goes to the customer")
    if to_alice:
        tap.ok("We are on it." in body_of(to_alice[0]), "with the text")
        tap.eq(to_alice[0]["From"].addresses[0].addr_spec, "support@support.example.com", "from the desk's address")
        lines = body_of(to_alice[0]).replace("\r\n", "\n").split("\n")
        after = lines[lines.index("-- ") + 1] if "-- " in lines else None
        tap.eq(after, "Test Support", "signed by the desk's name, with no empty signer line")
    t = c.desk.show(1)
    tap.eq(t["status"], "Request acknowledged", "the desk's public reply acknowledges the ticket")
    tap.ok(t["first_response_at"] is not None, "and meets the first response")
    mine = [m for m in t["messages"] if m["direction"] == "in" and "We are on it." in m["body"]]
    tap.ok(mine and mine[0]["from"] == "support@support.example.com", "stored from the desk's address",
           [(m["from"], m["body"]) for m in t["messages"]])
    p = c.desk.run("ticket", "reply", "1", input=b"#priority P9\nMore.\n", env=env)
    tap.eq(p.returncode, 65, "a refused command in a scripted reply fails it (there is no mailbox to answer)")
    tap.ok(b"P9" in p.stderr, "and says why on stderr", p.stderr)
    tap.ok(not any("More." in m["body"] for m in c.desk.show(1)["messages"]), "nothing of that reply is kept")
    p = c.desk.run("ticket", "reply", "1", input=b"#priority P2\n#assign me\n", env=env)
    tap.eq(p.returncode, 65, "#assign me names no one when the desk replies")
    p = c.desk.run("ticket", "reply", "1", input=b"#share\n", env=env)
    tap.eq(p.returncode, 65, "a command the desk may not use is refused the same way", p.stderr)
    p = c.desk.run("ticket", "reply", "1", input=b"#priority P2\n#waiting\nWhich version?\n", env=env)
    tap.eq(p.returncode, 0, "agent commands work in the desk's reply", p.stderr)
    t = c.desk.show(1)
    tap.eq((t["priority"], t["status"]), ("P2", "Waiting for customer"), "and act on the ticket")
    c.close()


def test_every_mail_threads(tap):
    """DESIGN 8: In-Reply-To/References on the desk's mail, also on mail
    that answers no message of its own (a status change, a follow-up):
    it answers the thread's latest message."""
    c = Conversation(tap)
    c.deliver(message(subject="help", msgid="first"))
    ack = to_of(c.new_mail(), CUSTOMER)[0]
    p = c.desk.run("ticket", "set", "1", "status=Waiting for customer", env={"MAILDESK_NOW": c.now})
    tap.eq(p.returncode, 0, "ticket set succeeds", p.stderr)
    mails = to_of(c.new_mail(), CUSTOMER)
    tap.eq(len(mails), 1, "the customer hears of the status change")
    for label, m, parent in (("status change", mails[0] if mails else None, ack["Message-ID"]),):
        if not m:
            continue
        tap.eq(m["In-Reply-To"], parent, f"the {label} answers the latest message of the thread", m)
        tap.ok(m["References"] and m["References"].split()[0] == "<first@customer.example>"
               and m["References"].split()[-1] == parent, f"and References run from the first to it", m["References"])
    status_mail = mails[0] if mails else None
    c.now = "2026-12-04T10:00:01+02:00"  # 3 business days on: the first follow-up
    c.desk.run("tick", env={"MAILDESK_NOW": c.now}, check=True)
    followups = to_of(c.new_mail(), CUSTOMER)
    tap.eq(len(followups), 1, "a follow-up is sent")
    if followups and status_mail:
        tap.eq(followups[0]["In-Reply-To"], status_mail["Message-ID"], "the follow-up answers the status change")
    c.close()


def intake_rows(desk, sql, *args):
    import sqlite3
    with sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db")) as db:
        return db.execute(sql, args).fetchall()


def test_list_alone_at_intake(tap):
    """#list alone (commands only, once trimmed) in new mail to the
    intake address is answered with the list and opens no ticket."""
    c = Conversation(tap)
    c.desk.run("org", "add", "Acme", "--member", CUSTOMER, "--member", "bob@customer.example", check=True)
    c.deliver(message(subject="help", body="Shared question"))
    c.customer_says("#share")
    c.deliver(message(subject="bob's own", body="Private question", sender="bob@customer.example"))
    c.new_mail()

    alone = message(subject="my tickets", body="#list\n\n-- \nAlice Customer\nCustomer Inc.\n", msgid="list-1")
    tap.eq(c.deliver(alone), "", "#list alone to the intake address opens no ticket")
    tap.eq(len(c.desk.tickets()), 2, "no ticket is added")
    mails = c.new_mail()
    lists = [m for m in to_of(mails, CUSTOMER) if "Your tickets" in m["Subject"]]
    tap.eq(len(lists), 1, "the sender gets the #list answer", [m["Subject"] for _, m in mails])
    tap.ok(lists and "[SUP-1]" in body_of(lists[0]) and "[SUP-2]" not in body_of(lists[0]),
           "with their own tickets, not a colleague's private one", lists and body_of(lists[0]))
    tap.eq(len(mails), len(lists), "and nothing else goes out: no acknowledgement, nothing to the agents",
           [(r, m["Subject"]) for r, m in mails])
    tap.ok(lists and lists[0]["In-Reply-To"] == "<list-1@customer.example>" and lists[0]["Auto-Submitted"],
           "it answers the message, as automatic mail", lists and dict(lists[0]))
    kept = intake_rows(c.desk, "SELECT direction, internal, flag, raw_sha256 IS NOT NULL FROM messages "
                               "WHERE ticket_id IS NULL")
    tap.eq(kept, [("in", 1, "#list answered; no ticket", 1)], "the message is kept, on no ticket")

    tap.eq(c.deliver(alone), "duplicate", "a redelivery is a duplicate")
    tap.eq(c.new_mail(), [], "and answers nothing twice")
    tap.eq(len(intake_rows(c.desk, "SELECT id FROM messages WHERE ticket_id IS NULL")), 1, "nor is it kept twice")

    c.deliver(message(subject="list", body="#list", sender="bob@customer.example"))
    bob = [body_of(m) for m in to_of(c.new_mail(), "bob@customer.example")]
    tap.ok(len(bob) == 1 and "[SUP-1]" in bob[0] and "[SUP-2]" in bob[0] and "shared with your organization" in bob[0],
           "a colleague's #list has their own tickets and the organization's shared ones", bob)

    c.deliver(message(subject="list", body="#list", headers=["Auto-Submitted: auto-replied"]))
    c.deliver(message(subject="list", body="#list", headers=["List-Id: <l.customer.example>"]))
    tap.eq(c.new_mail(), [], "automatic mail and a list's get no answer")
    tap.eq(len(c.desk.tickets()), 2, "and open no ticket either")
    for i in range(6):
        c.deliver(message(subject=f"list {i}", body="#list"))
    tap.eq(len(to_of(c.new_mail(), CUSTOMER)), 4, "answers to one sender keep to ack_rate_limit (5 an hour)")
    c.close()


def test_commands_at_intake(tap):
    """Command lines in mail that opens a ticket: the requester's #share
    and #private run on it, every other one is answered with the reason."""
    c = Conversation(tap)
    c.desk.run("org", "add", "Acme", "--member", CUSTOMER, check=True)
    tap.eq(c.deliver(message(subject="help", body="#share\nThe export fails.")), "SUP-1", "the mail opens its ticket")
    tap.eq(c.desk.show(1)["visibility"], "shared", "#share shares the new ticket")
    mails = c.new_mail()
    acks = [body_of(m) for m in to_of(mails, CUSTOMER) if "We received" in m["Subject"]]
    tap.ok(len(acks) == 1 and "This ticket is shared." in acks[0],
           "and the acknowledgement says it is shared", acks)
    tap.eq([m["Subject"] for m in to_of(mails, CUSTOMER) if "could not be carried out" in m["Subject"]], [],
           "without a command error")
    relay = [body_of(m) for m in to_of(mails, AGENT)]
    tap.ok(relay and "export fails" in relay[0] and "#share" not in relay[0], "agents get the request without it", relay)

    body = "#resolve\n#list\n#priority P1\n#frobnicate\nThe import fails too."
    tap.eq(c.deliver(message(subject="import", body=body)), "SUP-2", "a mail with other commands opens its ticket")
    t = c.desk.show(2)
    tap.eq((t["status"], t["priority"]), ("Waiting for triage", "P3"), "which they do not change")
    mails = c.new_mail()
    errors = [body_of(m) for m in to_of(mails, CUSTOMER) if "could not be carried out" in m["Subject"]]
    tap.eq(len(errors), 3, "each is answered by mail", errors)
    for line, why in (("#resolve", "replies to the ticket's address"), ("#list", "#list on its own"),
                      ("#priority P1", "only agents")):
        tap.ok(any(line in e and why in e.replace("\n", " ") for e in errors), f"{line}: {why}", errors)
    tap.eq(len([m for m in to_of(mails, CUSTOMER) if "We received" in m["Subject"]]), 1, "besides the acknowledgement")
    refused = [h for h in c.desk.show(2)["history"] if h["field"] == "command refused"]
    tap.eq(len(refused), 3, "every refusal is in the history", refused)
    relay = [body_of(m) for m in to_of(mails, AGENT)]
    tap.ok(relay and "#frobnicate" in relay[0] and "import fails" in relay[0],
           "a line naming no command ends them: it is the request's text, which agents get whole", relay)

    code = "#include <stdio.h>\nint main(void) { return puts(\"hi\"); }\nThis crashes."
    tap.eq(c.deliver(message(subject="crash", body=code)), "SUP-3", "a request that opens with '#include' opens its ticket")
    mails = c.new_mail()
    tap.eq([m["Subject"] for m in to_of(mails, CUSTOMER) if "could not be carried out" in m["Subject"]], [],
           "and is not answered as a mistyped command")
    relay = [body_of(m) for m in to_of(mails, AGENT)]
    tap.ok(relay and "#include <stdio.h>" in relay[0], "agents get its first line", relay)

    c.deliver(message(subject="for a customer", sender=AGENT,
                      body="#priority P1\n#assign me\nBob at Acme called: the site is slow."))
    t = c.desk.show(4)
    tap.eq((t["priority"], t["assignee"]), ("P3", None), "an agent's commands in mail to the intake do not run")
    errors = [body_of(m) for m in to_of(c.new_mail(), AGENT) if "could not be carried out" in m["Subject"]]
    tap.ok(len(errors) == 2 and all("reply address for agents" in e.replace("\n", " ") for e in errors),
           "and the agent is told where they count", errors)
    c.close()


def test_list_newest_open_first(tap):
    """#list of a customer with more tickets than it shows (200): the open
    ones first, then the newest, and a line saying there are more, not
    the 200 oldest by number."""
    import sqlite3
    c = Conversation(tap)
    c.deliver(message(subject="old but open", body="Still broken."))
    c.deliver(message(subject="old and done", body="Fixed since."))
    c.desk.run("ticket", "set", "2", "status=Resolved", env={"MAILDESK_NOW": c.now}, check=True)
    db = sqlite3.connect(os.path.join(c.desk.dir, "var", "maildesk.db"))
    cols = ("subject, category, priority, status, requester_id, organization_id, shared, assignee_id, created_at, "
            "updated_at, first_response_due, first_response_at, resolved_at, status_changed_at, due_at, "
            "linked_ticket_id, flag, tags")
    db.execute(f"WITH RECURSIVE k(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM k WHERE i < 210) "
               f"INSERT INTO tickets ({cols}) SELECT 'done ' || i, category, priority, status, requester_id, "
               f"organization_id, shared, assignee_id, created_at, updated_at, first_response_due, "
               f"first_response_at, resolved_at, status_changed_at, due_at, linked_ticket_id, flag, tags "
               f"FROM tickets, k WHERE tickets.id = 2")
    db.commit()
    db.close()
    c.new_mail()
    c.deliver(message(subject="my tickets", body="#list"))
    lists = [body_of(m) for m in to_of(c.new_mail(), CUSTOMER) if "Your tickets" in m["Subject"]]
    keys = lists and [line.split("]")[0][1:] for line in lists[0].splitlines() if line.startswith("[SUP-")]
    tap.eq(keys and (len(keys), keys[0], keys[1], keys[-1]), (200, "SUP-1", "SUP-210", "SUP-12"),
           "200 listed: the open one first, then the newest down to SUP-12", keys and keys[:3])
    tap.ok(lists and "There are more." in lists[0], "and it says there are more", lists and lists[0][-300:])
    c.close()


def test_resolved_notice_offers_no_resolving(tap):
    """The status mail that says a ticket is resolved still carries the
    resolve link (DESIGN 7), but not as "Solved? Mark it resolved", which
    asks the customer to do what was just done."""
    c = Conversation(tap)
    c.deliver(message(subject="help"))
    c.agent_says(1, "#waiting")
    mails = [m for m in to_of(c.new_mail(), CUSTOMER) if "Status update" in str(m["Subject"])]
    b = mails and body_of(mails[0])
    tap.ok(b and "Solved? Mark it resolved:" in b, "an open ticket's status mail offers resolving it", b)
    c.agent_says(1, "#resolve")
    mails = [m for m in to_of(c.new_mail(), CUSTOMER) if "Status update" in str(m["Subject"])]
    b = mails and body_of(mails[0])
    tap.ok(mails and "Resolved" in str(mails[0]["Subject"]) and "mailto:" in b, "the resolved notice has the link", b)
    tap.ok(b and "Mark it resolved:" not in b and "Mark it resolved again" in b,
           "offered for a reopen by mistake, not as if it were still open", b)
    c.close()


def test_list_reads_as_the_desk_writes(tap):
    """A #list answer shows times as every other mail of the desk does
    (its zone, not ISO UTC), resolve links like theirs (with the subject
    tag) and only for tickets still open, and no run of empty lines."""
    c = Conversation(tap)
    c.deliver(message(subject="first"))
    c.deliver(message(subject="second"))
    c.customer_says("#resolve", subject="Re: [SUP-1] first")
    c.new_mail()
    c.deliver(message(subject="my tickets", body="#list"))
    lists = [body_of(m).replace("\r\n", "\n") for m in to_of(c.new_mail(), CUSTOMER)
             if "Your tickets" in str(m["Subject"])]
    b = lists and lists[0]
    tap.ok(b and "Last update: Tue 01 Dec 2026 10:00 EET" in b and "2026-12-01T08:00:00Z" not in b,
           "the last update in the desk's zone", b)
    block = b and b[b.find("[SUP-2]"):b.find("[SUP-1]")]
    tap.ok(block and "mailto:" in block and "subject=Resolve%20%5BSUP-2%5D" in block,
           "an open ticket's resolve link carries its tag, as in other mail", block)
    tap.ok(b and "mailto:" not in b[b.find("[SUP-1]"):].split("\n\n")[0],
           "a resolved ticket offers no resolving", b)
    tap.ok(b and "\n\n\n" not in b, "no run of empty lines", b)
    c.close()


def test_agent_reply_threads_as_the_customer_sees_it(tap):
    """An agent's reply from their mail client reaches the customer as the
    desk's copy: In-Reply-To names mail the customer has, and neither it
    nor References names the agent's message, which the customer never
    got and whose Message-ID names the agent's machine."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="The export fails.", msgid="first"))
    c.new_mail()
    tok = token_address(c.desk, 1)
    c.deliver(message(subject="Re: [SUP-1] help", sender=AGENT, to=tok, body="Which version?",
                      msgid="j1@jane-laptop.corp", headers=["In-Reply-To: <first@customer.example>"]),
              "--recipient", tok)
    reply = [m for m in to_of(c.new_mail(), CUSTOMER) if "Which version" in body_of(m)]
    tap.eq(len(reply), 1, "the customer gets the agent's reply")
    if reply:
        irt = str(reply[0]["In-Reply-To"])
        tap.ok(irt == "<first@customer.example>" or irt.endswith("@support.example.com>"),
               "in reply to mail the customer has (theirs, or the desk's to them)", irt)
        tap.ok("jane-laptop" not in str(reply[0]["References"]) and "jane-laptop" not in str(reply[0]["In-Reply-To"]),
               "the agent's own Message-ID appears nowhere", (reply[0]["In-Reply-To"], reply[0]["References"]))
        tap.ok("<first@customer.example>" in str(reply[0]["References"]), "References still start the thread")
    c.customer_says("5.1.3")
    relay = [m for m in to_of(c.new_mail(), AGENT) if "5.1.3" in body_of(m)]
    tap.ok(relay and "jane-laptop" in str(relay[0]["References"]),
           "the agents' own copy of the thread still names the agent's message", relay and relay[0]["References"])
    c.close()


def test_agents_read_the_requesters_name(tap):
    """The agents' mail names the requester as the desk knows them, not
    only by address."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="The export fails."))
    relay = to_of(c.new_mail(), AGENT)
    tap.ok(relay and "Requester: Alice Customer <alice@customer.example>" in body_of(relay[0]),
           "Requester: Name <address>", relay and body_of(relay[0]))
    c.deliver(message(subject="help again", body="Nameless.", sender="bob@customer.example").replace(
        b"From: Alice Customer <bob@customer.example>", b"From: bob@customer.example"))
    relay = to_of(c.new_mail(), AGENT)
    lines = [l.strip() for l in body_of(relay[0]).splitlines() if l.startswith("Requester:")] if relay else []
    tap.ok(lines == ["Requester: bob@customer.example"],
           "the bare address when the desk knows no name", relay and body_of(relay[0]))
    c.close()


def test_agents_read_the_assignees_name(tap):
    """The agents' mail names the assignee as the desk knows them, not
    only by address; ticket.assignee stays the bare address."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="The export fails."))
    c.new_mail()
    c.agent_says(1, "#assign me")
    c.customer_says("Any news?")
    relay = to_of(c.new_mail(), AGENT)
    lines = [l for l in body_of(relay[0]).splitlines() if l.startswith("Assignee:")] if relay else []
    tap.eq(lines, [f"Assignee: Jane Agent <{AGENT}>"], "Assignee: Name <address>", relay and body_of(relay[0]))
    c.desk.run("agent", "add", "joe@support.example.com", check=True)
    c.desk.run("ticket", "set", "1", "assignee=joe@support.example.com", check=True)
    c.customer_says("Still there?")
    relay = to_of(c.new_mail(), "joe@support.example.com")
    lines = [l for l in body_of(relay[0]).splitlines() if l.startswith("Assignee:")] if relay else []
    tap.eq(lines, ["Assignee: joe@support.example.com"], "the bare address when the desk knows no name",
           relay and body_of(relay[0]))
    tap.eq(c.desk.show(1)["assignee"], "joe@support.example.com", "the ticket's assignee is still the address")
    c.close()


def test_attribution_without_a_name(tap):
    """A customer whose mail gives no display name is quoted to the agents
    by address once ("bob@x wrote"), not as "bob@x <bob@x>", and greeted
    without one; a named one keeps "Name <address>"."""
    c = Conversation(tap)
    bob = "bob@customer.example"
    c.deliver(message(subject="help", body="Nameless.", sender=bob).replace(
        f"From: Alice Customer <{bob}>".encode(), f"From: {bob}".encode()))
    relay = to_of(c.new_mail(), AGENT)
    tap.eq(relay and body_of(relay[0]).splitlines()[0], f"{bob} wrote on SUP-1:", "the address alone",
           relay and body_of(relay[0]))
    tok = token_address(c.desk, 1)
    c.deliver(message(subject="Re: [SUP-1] help", sender=bob, to=tok, body="#priority P1\nPlease hurry.").replace(
        f"From: Alice Customer <{bob}>".encode(), f"From: {bob}".encode()), "--recipient", tok)
    errors = [body_of(m) for m in to_of(c.new_mail(), bob) if "could not be carried out" in m["Subject"]]
    tap.eq(errors and errors[0].splitlines()[0], "Hello,", "a command error greets them without a name", errors)
    c.deliver(message(subject="other", body="Named."))
    relay = to_of(c.new_mail(), AGENT)
    tap.eq(relay and body_of(relay[0]).splitlines()[0], f"Alice Customer <{CUSTOMER}> wrote on SUP-2:",
           "a name with its address", relay and body_of(relay[0]))
    c.close()


def test_date_in_the_desks_zone(tap):
    """The Date of the desk's mail is the desk's local time ([calendar]
    timezone, with its daylight saving time), with its offset, not UTC."""
    c = Conversation(tap)
    c.deliver(message(subject="help", body="The export fails."))
    dates = {str(m["Date"]) for _, m in c.new_mail()}
    tap.eq(dates, {"Tue, 01 Dec 2026 10:00:00 +0200"}, "Kyiv in winter: EET, +0200")
    c.now = "2026-07-01T12:00:00Z"
    c.customer_says("Still failing in July.")
    dates = {str(m["Date"]) for _, m in c.new_mail()}
    tap.eq(dates, {"Wed, 01 Jul 2026 15:00:00 +0300"}, "and in summer: EEST, +0300")
    c.close()

    catcher = Catcher().start()
    desk = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n[calendar]\ntimezone = America/New_York\n")
    env = {"MAILDESK_NOW": "2026-07-01T12:00:00Z"}
    desk.deliver(message(subject="help", body="Hi."), env=env)
    desk.run("outbox", "flush", env=env)
    raw = [raw for _, raw in catcher.messages()]
    dates = {str(email.message_from_bytes(r, policy=email.policy.default)["Date"]) for r in raw}
    tap.eq(dates, {"Wed, 01 Jul 2026 08:00:00 -0400"}, "a zone west of UTC: -0400")
    catcher.stop()
    desk.cleanup()


if __name__ == "__main__":
    run_tests(test_date_in_the_desks_zone, test_attribution_without_a_name, test_agents_read_the_assignees_name, test_agents_read_the_requesters_name, test_agent_reply_threads_as_the_customer_sees_it, test_full_cycle, test_list_newest_open_first, test_commands_and_errors, test_status_the_reply_already_set, test_reply_footer_shows_the_new_status,
              test_status_told_in_the_reply, test_show_text_names_the_sender,
              test_unassign, test_assign_the_assignee, test_organizations,
              test_share_is_confirmed, test_share_after_the_organization_is_made, test_strangers,
              test_participants_and_attachments, test_out_of_office, test_large_organization,
              test_organization_of_thousands, test_agents_of_thousands, test_file_only_replies,
              test_attachment_charsets, test_kept_copy_has_the_attachments,
              test_reply_from_command_line, test_reply_from_script_without_agent,
              test_every_mail_threads, test_list_alone_at_intake, test_commands_at_intake,
              test_resolved_notice_offers_no_resolving, test_list_reads_as_the_desk_writes)
