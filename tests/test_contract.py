#!/usr/bin/env python3
"""DESIGN.md sections 1, 5, 7, 8 and 9 as an outside team would test them,
knowing only DESIGN.md: a configuration written from DESIGN 4's example
(the checkout's rules, templates and shipped intake forms), mail with no
intake fields, `maildesk deliver` for what comes in, a real SMTP server
for what goes out, MAILDESK_NOW and `maildesk tick` for time.  Reply
tokens are taken from the mail the desk sends, never computed."""
import email
import email.policy
import email.utils
import json
import os
import shutil
import subprocess
import tempfile

from mdtest import MAILDESK, TOP_SRCDIR, Catcher, free_port, run_tests

DOMAIN = "support.example.com"
INTAKE = f"support@{DOMAIN}"
AGENT = "jane@support.example.com"
AGENT2 = "bob@support.example.com"
LEADS = "leads@support.example.com"
ALICE = "alice@customer.example"
CAROL = "carol@customer.example"
MALLORY = "mallory@evil.example"
TUESDAY = "2026-12-01T10:00:00+02:00"


class Outsider:
    """A desk configured from DESIGN 4's example, run from the checkout."""

    def __init__(self, now=TUESDAY):
        self.catcher = Catcher().start()
        self.dir = tempfile.mkdtemp(prefix="maildesk-contract-")
        self.conf = os.path.join(self.dir, "maildesk.conf")
        with open(self.conf, "w") as f:
            f.write(f"""[desk]
name = Example Support
# addresses are local@domain; intake@domain opens tickets
domain = {DOMAIN}
intake = support
# subject tag [SUP-123]
ticket_prefix = SUP
# database, spool, secret key
data_dir = {self.dir}/var
rules = {TOP_SRCDIR}/filters/default.rules
templates = {TOP_SRCDIR}/templates/
forms = {TOP_SRCDIR}/filters/forms.conf

[lmtp]
listen = 127.0.0.1:{free_port()}
max_message_size = 50M

[smtp]
url = smtp://127.0.0.1:{self.catcher.port}
from = Example Support <support@support.example.com>

[calendar]
timezone = Europe/Kyiv
hours = Mon-Fri 09:00-17:00
holidays = 2026-12-25, 2027-01-01

[sla]
P1.first_response = 4h
P2.first_response = 24bh
P3.first_response = 24bh
P4.first_response = 24bh
# reminders to agents before a breach; the breach notice goes here too
remind_at = 50%, 75%, 90%
escalate_to = {LEADS}

[followup]
# business offsets after a ticket enters Waiting for customer
waiting_reminders = 3bd, 7bd
auto_resolve_after = 10bd
reopen_window = 30d
""")
        self.now = now
        self.seen = 0
        self.n = 0
        self.run("agent", "add", AGENT, "--name", "Jane Agent", check=True)
        self.run("agent", "add", AGENT2, "--name", "Bob Agent", check=True)

    def run(self, *args, input=None, check=False):
        env = dict(os.environ, MAILDESK_NOW=self.now)
        p = subprocess.run([MAILDESK, "-c", self.conf, *args], input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError(f"maildesk {' '.join(args)} exited {p.returncode}: {p.stderr.decode()}")
        return p

    def mail(self, sender, to, subject, body, headers=(), msgid=None, name=None):
        self.n += 1
        msgid = msgid or f"<m{self.n}.{os.urandom(4).hex()}@{sender.split('@')[1]}>"
        lines = [f"From: {name or sender.split('@')[0].title()} <{sender}>", f"To: {to}", f"Subject: {subject}",
                 f"Date: {email.utils.format_datetime(email.utils.parsedate_to_datetime('Tue, 01 Dec 2026 10:00:00 +0200'))}",
                 f"Message-ID: {msgid}", *headers, "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                 "", body]
        return "\r\n".join(lines).encode() + b"\r\n", msgid

    def deliver(self, raw, *args):
        return self.run("deliver", *args, input=raw)

    def send(self, sender, to, subject, body, headers=(), msgid=None):
        """Mail as an MTA hands it over: the envelope recipient is the To."""
        raw, msgid = self.mail(sender, to, subject, body, headers, msgid)
        p = self.deliver(raw, "--recipient", to, "--sender", sender)
        if p.returncode != 0:
            raise RuntimeError(f"deliver exited {p.returncode}: {p.stderr.decode()}")
        return msgid

    def tick(self):
        return self.run("tick", check=True)

    def outgoing(self):
        """The mail sent since the last call: [(recipients, parsed)]."""
        self.run("outbox", "flush", check=True)
        got = self.catcher.messages()
        fresh, self.seen = got[self.seen:], len(got)
        return [(env["rcpt_tos"], email.message_from_bytes(raw, policy=email.policy.default)) for env, raw in fresh]

    def show(self, ident):
        return json.loads(self.run("ticket", "show", str(ident), "--json", check=True).stdout)

    def tickets(self):
        return json.loads(self.run("ticket", "list", "--json", check=True).stdout)

    def status(self, ident):
        return self.show(ident)["status"]

    def close(self):
        self.catcher.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


def to(mails, addr):
    return [m for rcpts, m in mails if addr in rcpts]


def body(m):
    return m.get_body(preferencelist=("plain",)).get_content()


def reply_to(m):
    return email.utils.parseaddr(str(m["Reply-To"]))[1]


def open_ticket(d, subject="The export does not finish", text="Hello,\nthe nightly export stops half-way.\n",
                sender=ALICE):
    """A new ticket; returns (key, the acknowledgement, its token address)."""
    d.send(sender, INTAKE, subject, text)
    key = d.tickets()[-1]["key"]
    acks = to(d.outgoing(), sender)
    ack = acks[0] if acks else None
    return key, ack, (reply_to(ack) if ack else None)


def num(key):
    return int(key.split("-")[1])


# --- DESIGN 1: every row of the status table -----------------------------

def test_status_table(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    tap.eq(d.status(key), "Waiting for triage", "1: a new ticket waits for triage (no intake fields given)")
    tap.ok(ack is not None and tok.startswith(f"support+{key}.") and tok.endswith("@" + DOMAIN),
           "the acknowledgement's Reply-To is the ticket's token address", ack and ack["Reply-To"])
    tap.ok(ack is not None and ("license" in body(ack).lower()), "and it asks for the missing intake fields")

    d.send(AGENT, tok, f"Re: [{key}] x", "#ack")
    tap.eq(d.status(key), "Request acknowledged", "1: #ack acknowledges")
    d.send(AGENT, tok, f"Re: [{key}] x", "#status In progress")
    tap.eq(d.status(key), "In progress", "1: the agent sets In progress")
    d.send(AGENT, tok, f"Re: [{key}] x", "#waiting\nWhich version do you run?")
    tap.eq(d.status(key), "Waiting for customer", "1: #waiting waits for the customer")
    d.outgoing()
    d.send(ALICE, tok, f"Re: [{key}] x", "Version 5.1.")
    tap.eq(d.status(key), "In progress", "1: the customer's reply takes it to In progress")
    d.send(ALICE, tok, f"Re: [{key}] x", "#resolve\nThat fixed it, thanks.")
    tap.eq(d.status(key), "Resolved", "1: the customer resolves it")
    d.outgoing()
    d.now = "2026-12-10T10:00:00+02:00"
    d.send(ALICE, tok, f"Re: [{key}] x", "It broke again.")
    tap.eq(d.status(key), "Reopened", "1: a reply within the reopen window reopens")
    d.send(AGENT, tok, f"Re: [{key}] x", "Looking at it again.")
    tap.eq(d.status(key), "In progress", "1: an agent's reply takes a reopened ticket to In progress")
    d.send(AGENT, tok, f"Re: [{key}] x", "#resolve\nFixed for good.")
    tap.eq(d.status(key), "Resolved", "1: the agent resolves it")
    d.send(ALICE, tok, f"Re: [{key}] x", "Once more, sorry.")
    tap.eq(d.status(key), "Reopened", "reopened again")
    d.send(AGENT, tok, f"Re: [{key}] x", "#status In progress")
    tap.eq(d.status(key), "In progress", "1: the agent sets a reopened ticket In progress")
    d.send(AGENT, tok, f"Re: [{key}] x", "#resolve")
    d.outgoing()

    d.now = "2027-02-01T10:00:00+02:00"
    p = d.deliver(d.mail(ALICE, tok, f"Re: [{key}] x", "A new problem, months later.")[0], "--recipient", tok)
    tap.eq(p.returncode, 0, "a reply after the window is accepted")
    new = [t for t in d.tickets() if t["key"] != key]
    tap.eq(len(new), 1, "1: a reply after the window opens a new ticket")
    tap.eq(d.status(key), "Resolved", "the old ticket stays resolved")
    if new:
        shown = d.show(new[0]["key"])
        links = {k: v for k, v in shown.items() if "link" in k.lower()}
        tap.ok(any(v in (key, num(key)) or (isinstance(v, dict) and key in json.dumps(v)) for v in links.values()),
               "that links the old one", links)
        tap.eq(shown["status"], "Waiting for triage", "and waits for triage")
        subjects = [str(m["Subject"]) for m in to(d.outgoing(), ALICE)]
        tap.ok(any(f"[{new[0]['key']}]" in s for s in subjects), "and is acknowledged", subjects)
    d.close()


def test_first_public_reply_acknowledges(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    d.send(AGENT, tok, f"Re: [{key}] x", "Thanks, we are looking at it.")
    tap.eq(d.status(key), "Request acknowledged", "1: the first public reply acknowledges")
    tap.ok(d.show(key)["first_response_at"] is not None, "9: and meets the first response")
    mails = d.outgoing()
    tap.eq(len([m for m in to(mails, ALICE) if "looking at it" in body(m)]), 1, "the customer gets the reply")
    d.send(AGENT, tok, f"Re: [{key}] x", "Found it, a fix is coming.")
    tap.eq(d.status(key), "In progress", "1: the next public reply takes it to In progress")
    d.close()


def test_followups_and_auto_resolve(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    d.send(AGENT, tok, f"Re: [{key}] x", "#waiting\nCan you send the log?")
    d.outgoing()
    got = {}
    # Tue 1 Dec: 3bd -> Fri 4 Dec, 7bd -> Thu 10 Dec, 10bd -> Tue 15 Dec
    for day in ("2026-12-03", "2026-12-04", "2026-12-09", "2026-12-10", "2026-12-14", "2026-12-15"):
        d.now = f"{day}T12:00:00+02:00"
        d.tick()
        d.tick()
        got[day] = to(d.outgoing(), ALICE)
    tap.eq([day for day, m in got.items() if m], ["2026-12-04", "2026-12-10", "2026-12-15"],
           "9: follow-ups at 3bd and 7bd, then the resolution at 10bd, each once",
           {k: [m["Subject"] for m in v] for k, v in got.items()})
    tap.eq(d.status(key), "Resolved", "1: no reply, timeout: Resolved")
    last = got["2026-12-15"]
    tap.ok(last and "reopen" in body(last[0]).lower(), "with a notice that a reply reopens it",
           last and body(last[0]))
    tap.ok(last and last[0]["Auto-Submitted"] in ("auto-generated", "auto-replied"),
           "8: the notice is marked Auto-Submitted", last and last[0]["Auto-Submitted"])
    d.send(ALICE, tok, f"Re: [{key}] x", "Sorry, I was away. Here is the log.")
    tap.eq(d.status(key), "Reopened", "a reply to it reopens the ticket")
    d.close()


# --- DESIGN 5: dedupe, threading, authorization ---------------------------

def test_dedupe(tap):
    d = Outsider()
    raw, _ = d.mail(ALICE, INTAKE, "Twice", "Same message twice.", msgid="<same@customer.example>")
    p1, p2 = d.deliver(raw), d.deliver(raw)
    tap.eq((p1.returncode, p2.returncode), (0, 0), "5.2: the same message twice is accepted both times")
    tap.eq(len(d.tickets()), 1, "5.2: and opens one ticket")
    tap.eq(len(to(d.outgoing(), ALICE)), 1, "and is acknowledged once")
    raw = (f"From: Alice <{ALICE}>\r\nTo: {INTAKE}\r\nSubject: No Message-ID\r\n"
           f"Date: Tue, 01 Dec 2026 10:00:00 +0200\r\n\r\nThis one has no Message-ID.\r\n").encode()
    p1, p2 = d.deliver(raw), d.deliver(raw)
    tap.eq((p1.returncode, p2.returncode, len(d.tickets())), (0, 0, 2),
           "5.2: without a Message-ID the same raw message twice is one ticket")
    d.close()


def test_threading(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    d.deliver(d.mail(ALICE, INTAKE, "more", "By In-Reply-To.", headers=[f"In-Reply-To: {ack['Message-ID']}"])[0])
    d.deliver(d.mail(ALICE, INTAKE, "more", "By References.",
                     headers=[f"References: <x@y.example> {ack['Message-ID']}"])[0])
    d.deliver(d.mail(ALICE, INTAKE, f"Re: [{key}] more", "By the subject tag.")[0])
    d.deliver(d.mail(ALICE, tok, "no tag here", "By the token.")[0], "--recipient", tok)
    tap.eq(len(d.tickets()), 1, "5.4: replies thread by token, In-Reply-To, References and subject tag")
    bodies = [m["body"] for m in d.show(key)["messages"]]
    for what in ("In-Reply-To", "References", "subject tag", "token"):
        tap.ok(any(f"By {'the ' if what in ('subject tag', 'token') else ''}{what}." in b for b in bodies),
               f"the reply by {what} is on the ticket", bodies)
    up = tok.replace("support+", "SUPPORT+").upper()
    d.deliver(d.mail(ALICE, up, "no tag", "Upper-case token.")[0], "--recipient", up)
    tap.eq(len(d.tickets()), 1, "5.4: the token is compared case-insensitively")
    d.close()


def test_unverified_sender(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    d.outgoing()
    d.send(MALLORY, tok, f"Re: [{key}] x", "#resolve\nI am not on this ticket.")
    t = d.show(key)
    tap.eq(t["status"], "Waiting for triage", "5.4: an unauthorized sender changes no state")
    note = [m for m in t["messages"] if "not on this ticket" in m["body"]]
    tap.ok(note and note[0]["internal"], "5.4: it is an internal note", note)
    tap.ok("unverified sender" in json.dumps(t), "5.4: flagged \"unverified sender\"")
    mails = d.outgoing()
    tap.eq(to(mails, ALICE), [], "5.4: nothing is sent to the customer")
    tap.eq(to(mails, MALLORY), [], "nor to the stranger, whose commands are not answered")
    d.close()


def test_unverified_agent(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    d.outgoing()
    d.send(AGENT, INTAKE, f"Re: [{key}] x", "#resolve\nClosing this.")
    t = d.show(key)
    tap.eq(len(d.tickets()), 1, "an agent's mail with the subject tag threads")
    tap.eq(t["status"], "Waiting for triage", "5.4: an agent's From without the token runs no command")
    note = [m for m in t["messages"] if "Closing this" in m["body"]]
    tap.ok(note and note[0]["internal"], "5.4: it is an internal note", note)
    tap.ok("unverified agent" in json.dumps(t), "5.4: flagged \"unverified agent\"")
    mails = d.outgoing()
    tap.eq(to(mails, ALICE), [], "nothing reaches the customer")
    told = to(mails, AGENT)
    tap.ok(told and tok.lower() in body(told[0]).lower(), "5.4: the agent is told by mail how to reply",
           [body(m) for m in told])
    d.close()


# --- DESIGN 7: commands by mail ------------------------------------------

def test_agent_commands(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    d.outgoing()
    d.send(AGENT, tok, f"Re: [{key}] x", "#priority P2\n#category Bug\n#assign me")
    t = d.show(key)
    tap.eq((t["priority"], t["category"], t["assignee"]), ("P2", "Bug", AGENT), "7: #priority, #category, #assign me")
    d.send(AGENT, tok, f"Re: [{key}] x", f"#assign {AGENT2}")
    tap.eq(d.show(key)["assignee"], AGENT2, "7: #assign <email>")
    d.send(AGENT, tok, f"Re: [{key}] x", "#priority ER")
    tap.eq(d.show(key)["priority"], "ER", "7: #priority ER")
    d.send(AGENT, tok, f"Re: [{key}] x", "#category Security Issue/Incident")
    tap.eq(d.show(key)["category"], "Security Issue/Incident", "7: a category with a slash")
    d.outgoing()
    d.send(AGENT, tok, f"Re: [{key}] x", "#internal\nCustomer is on the old cluster.")
    t = d.show(key)
    note = [m for m in t["messages"] if "old cluster" in m["body"]]
    tap.ok(note and note[0]["internal"], "7: #internal stores an internal note")
    tap.eq([body(m) for m in to(d.outgoing(), ALICE)], [], "7: and sends nothing to the customer")
    tap.eq(t["first_response_at"], None, "9: an internal note is not a first response")
    tap.eq(t["status"], "Waiting for triage", "and moves no status")
    d.send(AGENT, tok, f"Re: [{key}] x", "#priority P9")
    d.send(AGENT, tok, f"Re: [{key}] x", "#status Sleeping")
    d.send(AGENT, tok, f"Re: [{key}] x", "#category Cooking")
    d.send(AGENT, tok, f"Re: [{key}] x", "#assign nobody@nowhere.example")
    d.send(AGENT, tok, f"Re: [{key}] x", "#frobnicate")
    errs = [body(m) for m in to(d.outgoing(), AGENT)]
    for word in ("P9", "Sleeping", "Cooking", "nobody@nowhere.example", "frobnicate"):
        tap.ok(any(word in e and "reason" in e.lower() for e in errs),
               f"7: a failing command ({word}) is answered by mail with the reason", errs)
    t = d.show(key)
    tap.eq((t["priority"], t["category"], t["status"]), ("ER", "Security Issue/Incident", "Waiting for triage"),
           "and changes nothing")
    d.close()


def test_customer_commands(tap):
    d = Outsider()
    d.run("org", "add", "Customer Inc", "--member", ALICE, "--member", CAROL, check=True)
    key, ack, tok = open_ticket(d)
    tap.eq(d.show(key)["visibility"], "private", "1: a member's ticket is private by default")
    tap.eq(d.show(key)["organization"], "Customer Inc", "and belongs to the organization")
    d.send(CAROL, tok, f"Re: [{key}] x", "Colleague here, more details.")
    t = d.show(key)
    note = [m for m in t["messages"] if "Colleague here" in m["body"]]
    tap.ok(note and note[0]["internal"] and "unverified sender" in json.dumps(t),
           "a colleague on a private ticket is an unverified sender")
    d.outgoing()
    d.send(ALICE, tok, f"Re: [{key}] x", "#share")
    tap.eq(d.show(key)["visibility"], "shared", "7: #share shares it with the organization")
    d.send(CAROL, tok, f"Re: [{key}] x", "Colleague again, with more details.")
    note = [m for m in d.show(key)["messages"] if "Colleague again" in m["body"]]
    tap.ok(note and not note[0]["internal"], "1: a member may reply to a shared ticket")
    d.outgoing()
    d.send(CAROL, INTAKE, "list please", "#list")
    lists = [body(m) for m in to(d.outgoing(), CAROL)]
    tap.ok(any(key in b for b in lists), "7: #list shows an organization member the shared ticket", lists)
    d.send(ALICE, tok, f"Re: [{key}] x", "#private")
    tap.eq(d.show(key)["visibility"], "private", "7: #private makes it private again")
    d.outgoing()
    d.send(CAROL, INTAKE, "list please", "#list")
    lists = [body(m) for m in to(d.outgoing(), CAROL)]
    tap.ok(lists and not any(key in b for b in lists), "and #list no longer shows it to the colleague", lists)
    d.send(ALICE, tok, f"Re: [{key}] x", "#list")
    lists = [body(m) for m in to(d.outgoing(), ALICE)]
    tap.ok(any(key in b for b in lists), "7: #list shows the requester's own ticket", lists)
    d.send(ALICE, tok, f"Re: [{key}] x", "#priority P1\nPlease hurry.")
    answers = [body(m) for m in to(d.outgoing(), ALICE)]
    tap.ok(any("#priority" in b and "reason" in b.lower() for b in answers),
           "7: an agent command from a customer is answered with the reason", answers)
    tap.eq(d.show(key)["priority"], "P3", "and changes nothing")
    d.send(ALICE, tok, f"Re: [{key}] x", "#resolve")
    tap.eq(d.status(key), "Resolved", "7: the customer's #resolve")
    d.outgoing()
    d.send(ALICE, tok, f"Re: [{key}] x", "#resolve")
    answers = [body(m) for m in to(d.outgoing(), ALICE)]
    tap.ok(any("reason" in b.lower() for b in answers), "7: #resolve that cannot be done is answered", answers)
    d.close()


def test_resolve_link(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    b = body(ack)
    tap.ok("mailto:" in b and ("%23resolve" in b.lower() or "#resolve" in b), "7: a notification carries a mailto "
           "link that resolves the ticket", b)
    d.send(AGENT, tok, f"Re: [{key}] x", "An answer.")
    mails = to(d.outgoing(), ALICE)
    tap.ok(mails and "mailto:" in body(mails[0]), "and so does an agent's reply")
    d.close()


# --- DESIGN 8: mail going out ---------------------------------------------

def test_outgoing_headers(tap):
    d = Outsider()
    raw, msgid = d.mail(ALICE, INTAKE, "Grüße: the export fails", "The export fails.")
    d.deliver(raw)
    key = d.tickets()[0]["key"]
    mails = d.outgoing()
    ack = to(mails, ALICE)[0]
    tap.ok(str(ack["Message-ID"]).strip().endswith(f"@{DOMAIN}>"), "8: Message-ID under the desk's domain",
           ack["Message-ID"])
    tap.eq(str(ack["In-Reply-To"]).strip(), msgid, "8: In-Reply-To the customer's message")
    tap.ok(msgid in str(ack["References"]), "8: References it", ack["References"])
    tap.ok(f"[{key}]" in str(ack["Subject"]), "8: the subject tag", ack["Subject"])
    tap.ok("Grüße" in str(ack["Subject"]), "8: the subject survives encoding", ack["Subject"])
    tap.ok(reply_to(ack).startswith(f"support+{key}."), "8: Reply-To the token address", ack["Reply-To"])
    tap.ok(str(ack["Auto-Submitted"]) in ("auto-replied", "auto-generated"), "8: the acknowledgement is Auto-Submitted",
           ack["Auto-Submitted"])
    tok = reply_to(ack)
    d.send(AGENT, tok, f"Re: [{key}] x", "A human answer.")
    rep = [m for m in to(d.outgoing(), ALICE) if "human answer" in body(m)]
    tap.ok(rep and f"[{key}]" in str(rep[0]["Subject"]) and reply_to(rep[0]) == tok,
           "8: an agent's reply carries the tag and the token Reply-To")
    tap.ok(rep and str(rep[0]["Message-ID"]).strip().endswith(f"@{DOMAIN}>") and rep[0]["In-Reply-To"]
           and rep[0]["References"], "8: its own Message-ID, In-Reply-To and References")
    tap.ok(rep and str(rep[0].get("Auto-Submitted", "no")) == "no", "a person's reply is not marked automatic",
           rep and rep[0]["Auto-Submitted"])
    d.close()


def test_no_automatic_answers(tap):
    d = Outsider()
    cases = {"Auto-Submitted": (ALICE, ["Auto-Submitted: auto-replied"]),
             "List-Id": (ALICE, ["List-Id: Customers <customers.lists.customer.example>"]),
             "Precedence bulk": (ALICE, ["Precedence: bulk"]),
             "Precedence list": (ALICE, ["Precedence: list"]),
             "Precedence junk": (ALICE, ["Precedence: junk"]),
             "MAILER-DAEMON": ("MAILER-DAEMON@mx.customer.example", []),
             "postmaster": ("postmaster@customer.example", []),
             "no-reply": ("no-reply@shop.example", [])}
    for what, (sender, headers) in cases.items():
        d.send(sender, INTAKE, f"Automatic {what}", "Automatic text.", headers=headers)
        tap.eq([m["Subject"] for m in to(d.outgoing(), sender)], [], f"8: no automatic answer to {what}")
    tap.eq(len(d.tickets()), len(cases), "but every message is kept on a ticket")
    # our own mail coming back: the acknowledgement, as a misconfigured
    # forward or an auto-forward would return it
    key, ack, tok = open_ticket(d, sender=CAROL)
    n = len(d.tickets())
    d.deliver(bytes(ack), "--recipient", INTAKE)
    d.deliver(bytes(ack), "--recipient", tok)
    tap.eq(d.outgoing(), [], "8: nothing answers our own mail coming back")
    tap.ok(len(d.tickets()) <= n, "and it opens no ticket")
    d.close()


def test_no_automatic_answers_to_list_replies(tap):
    """A reply that comes through a list or as bulk mail is a person's and
    acts (it reopens, its #resolve resolves), but the desk's automatic
    status mail must not answer it (DESIGN 8)."""
    for what, hdr in (("List-Id", "List-Id: Customers <customers.lists.customer.example>"),
                      ("Precedence bulk", "Precedence: bulk")):
        d = Outsider()
        key, ack, tok = open_ticket(d)
        d.send(AGENT, tok, f"Re: [{key}] x", "#resolve\nFixed.")
        d.outgoing()
        d.send(ALICE, tok, f"Re: [{key}] x", "It broke again.", headers=[hdr])
        tap.eq(d.status(key), "Reopened", f"a reply with {what} within the window reopens")
        mails = d.outgoing()
        tap.eq([str(m["Subject"]) for m in to(mails, ALICE)], [], f"8: with no automatic status mail to it ({what})")
        tap.ok(any("broke again" in body(m) for m in to(mails, AGENT)), "the agents still read it")
        d.send(ALICE, tok, f"Re: [{key}] x", "#resolve", headers=[hdr])
        tap.eq(d.status(key), "Resolved", f"its #resolve resolves ({what})")
        tap.eq([str(m["Subject"]) for m in to(d.outgoing(), ALICE)], [], f"8: with no automatic status mail ({what})")
        d.close()


def test_ack_rate_limit(tap):
    d = Outsider()
    for i in range(20):
        d.send(ALICE, INTAKE, f"Question {i}", f"Question number {i}.")
    acks = to(d.outgoing(), ALICE)
    tap.eq(len(d.tickets()), 20, "twenty new requests are twenty tickets")
    tap.ok(1 <= len(acks) < 20, f"8: acknowledgements to one sender are rate-limited ({len(acks)} of 20)")
    d.close()


def test_dsn(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d)
    raw = (f"From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
           f"To: {tok}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           f"Date: Tue, 01 Dec 2026 10:05:00 +0200\r\nMessage-ID: <dsn1@mx.customer.example>\r\n"
           f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n"
           f"--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
           f"--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n"
           f"Final-Recipient: rfc822; {ALICE}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           f"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
           f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ack['Message-ID']}\r\n"
           f"Subject: {ack['Subject']}\r\n\r\n--R--\r\n").encode()
    p = d.deliver(raw, "--recipient", tok, "--sender", "")
    tap.eq(p.returncode, 0, "8: a DSN is accepted")
    tap.eq(len(d.tickets()), 1, "8: a DSN opens no ticket")
    notes = [m for m in d.show(key)["messages"] if m["internal"]]
    tap.eq(len(notes), 1, "8: it attaches to its ticket as an internal note")
    tap.eq(d.status(key), "Waiting for triage", "and moves nothing")
    tap.eq(d.outgoing(), [], "and is answered by no one")
    d.deliver(raw.replace(b"dsn1@", b"dsn2@").replace(tok.encode(), INTAKE.encode()), "--recipient", INTAKE,
              "--sender", "")
    tap.eq(len(d.tickets()), 1, "8: a DSN to the intake address naming our mail opens no ticket either")
    d.close()


# --- DESIGN 9: SLA ---------------------------------------------------------

def test_first_response_due(tap):
    d = Outsider()
    d.send(ALICE, INTAKE, "Production is down", "Our production is down, nothing works.")
    t = d.tickets()[0]
    tap.eq(t["priority"], "P1", "6: an outage is P1 with the shipped rules")
    tap.eq(t["first_response_due"], "2026-12-01T12:00:00Z", "9: P1 is due 4 calendar hours later (ISO UTC)")
    d.now = "2026-12-04T16:00:00+02:00"
    d.send(ALICE, INTAKE, "Exports skip rows", "The CSV export skips some rows.")
    t = [t for t in d.tickets() if "Exports" in t["subject"]][0]
    tap.eq(t["priority"], "P3", "a partial loss of function is P3")
    tap.eq(t["first_response_due"], "2026-12-09T14:00:00Z", "9: 24 business hours from Friday 16:00 is Wednesday 16:00")
    d.send(AGENT, reply_to(to(d.outgoing(), ALICE)[-1]), f"Re: [{t['key']}] x", "#priority P1")
    tap.eq(d.show(t["key"])["first_response_due"], "2026-12-04T18:00:00Z", "9: recomputed when the priority changes")
    d.close()


def test_reminders_and_breach(tap):
    d = Outsider()
    d.send(ALICE, INTAKE, "Production is down", "Our production is down, nothing works.")
    key = d.tickets()[0]["key"]
    d.run("ticket", "set", key, f"assignee={AGENT}", check=True)
    d.outgoing()
    seen = {}
    for at in ("11:00", "12:01", "12:30", "13:01", "13:30", "13:37", "13:50", "14:01", "15:00"):
        d.now = f"2026-12-01T{at}:00+02:00"
        d.tick()
        d.tick()
        seen[at] = [(sorted(rcpts), str(m["Subject"])) for rcpts, m in d.outgoing()]
    def when(pred):
        return [at for at, mails in seen.items() for m in mails if pred(m)]
    reminder = lambda m: "remind" in m[1].lower()
    breach = lambda m: "breach" in m[1].lower()
    tap.eq(when(lambda m: reminder(m) and AGENT in m[0]), ["12:01", "13:01", "13:37"],
           "9: reminders to the assignee at 50, 75 and 90 %, each once", seen)
    tap.eq(when(lambda m: breach(m) and AGENT in m[0]), ["14:01"], "9: the breach notice to the assignee, once", seen)
    tap.eq(when(lambda m: breach(m) and LEADS in m[0]), ["14:01"], "9: and to escalate_to, once", seen)
    tap.eq(when(lambda m: ALICE in m[0]), [], "the customer hears nothing of it")
    d.run("outbox", "flush", check=True)
    tap.eq(d.outgoing(), [], "9: tick is idempotent: nothing twice")
    d.close()


def test_ack_stops_the_clock(tap):
    d = Outsider()
    key, ack, tok = open_ticket(d, subject="Production is down", text="Our production is down.")
    d.now = "2026-12-01T10:30:00+02:00"
    d.send(AGENT, tok, f"Re: [{key}] x", "#ack")
    tap.eq(d.show(key)["first_response_at"], "2026-12-01T08:30:00Z", "9: #ack meets the first response")
    d.outgoing()
    for at in ("12:01", "13:01", "13:37", "14:01"):
        d.now = f"2026-12-01T{at}:00+02:00"
        d.tick()
    tap.eq([str(m["Subject"]) for _, m in d.outgoing()], [], "9: no reminder or breach once it is met")
    d.close()


if __name__ == "__main__":
    run_tests(test_status_table, test_first_public_reply_acknowledges, test_followups_and_auto_resolve,
              test_dedupe, test_threading, test_unverified_sender, test_unverified_agent,
              test_agent_commands, test_customer_commands, test_resolve_link,
              test_outgoing_headers, test_no_automatic_answers, test_no_automatic_answers_to_list_replies,
              test_ack_rate_limit, test_dsn,
              test_first_response_due, test_reminders_and_breach, test_ack_stops_the_clock)
