#!/usr/bin/env python3
"""Intake forms (issue 10) end to end: `maildesk deliver` for what comes
in, a real SMTP server for what goes out, the shipped filters/forms.conf."""
import email
import email.policy
import os

from mdtest import TOP_SRCDIR, Catcher, Desk, message, run_tests
from test_workflow import token_address

CUSTOMER = "alice@customer.example"
FORMS = os.path.join(TOP_SRCDIR, "filters", "forms.conf")
QUESTION = "A few details needed"


class Intake:
    def __init__(self, now="2026-12-01T10:00:00+02:00", holidays="2026-12-25, 2027-01-01"):
        self.catcher = Catcher().start()
        self.desk = Desk(forms=FORMS, extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{self.catcher.port}\n"
                                                 f"[calendar]\ntimezone = Europe/Kyiv\nhours = Mon-Fri 09:00-17:00\n"
                                                 f"holidays = {holidays}\n")
        self.now = now
        self.seen = 0

    def deliver(self, msg, *args):
        p = self.desk.deliver(msg, *args, env={"MAILDESK_NOW": self.now})
        if p.returncode != 0:
            raise RuntimeError(p.stderr.decode())
        return p.stdout.decode().strip()

    def new_ticket(self, subject, body):
        return self.deliver(message(subject=subject, body=body))

    def reply(self, ticket, body):
        tok = token_address(self.desk, ticket)
        return self.deliver(message(subject=f"Re: [SUP-{ticket}] details", to=tok, body=body), "--recipient", tok)

    def mails(self):
        """Mail to the customer since the last call: [(subject, body)]."""
        self.desk.run("outbox", "flush", env={"MAILDESK_NOW": self.now}, check=True)
        got = self.catcher.messages()
        fresh, self.seen = got[self.seen:], len(got)
        out = []
        for env, raw in fresh:
            if CUSTOMER not in env["rcpt_tos"]:
                continue
            m = email.message_from_bytes(raw, policy=email.policy.default)
            out.append((str(m["Subject"]), m.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")))
        return out

    def close(self):
        self.catcher.stop()
        self.desk.cleanup()


def questions(mails):
    return [body for subject, body in mails if QUESTION in subject]


def acks(mails):
    return [body for subject, body in mails if "We received your request" in subject]


NEW_ENVIRONMENT = """Hello,

please deploy a new staging environment for our shop.

Country: Germany
environment type: Staging
Preferred Domain: staging.acme.example
Company: Acme GmbH
Licence Key: ABC-123-XYZ
Version: 5.1.3
Repository: https://github.com/acme/shop
Branch: release/5.1

Thanks,
Alice
"""


def test_new_environment(tap):
    c = Intake()
    tap.eq(c.new_ticket("New environment request", NEW_ENVIRONMENT), "SUP-1", "a new environment request opens a ticket")
    t = c.desk.show(1)
    tap.eq(t["category"], "New Environment Request", "classified by the default rules")
    tap.eq(t["status"], "Waiting for customer", "missing fields put it in Waiting for customer")
    tap.eq(t["fields"], {"country": "Germany", "environment_type": "staging", "domain": "staging.acme.example",
                         "company": "Acme GmbH", "license_key": "ABC-123-XYZ", "version": "5.1.3",
                         "ref": "release/5.1"},
           "the valid fields are stored, normalized, under any case and synonym; the invalid link is not")
    mails = c.mails()
    asked = questions(mails)
    tap.eq(len(asked), 1, "exactly one question mail", mails)
    body = asked[0] if asked else ""
    listed = [line.strip() for line in body.split("\n\n")[2].splitlines()] if asked else []
    tap.eq(len(listed), 4, "it lists four fields", body)
    tap.ok(any(l.startswith("* Repository link") and "https://github.com/acme/shop" in l and "SSH" in l for l in listed),
           "the repository link, quoted back, is asked again in SSH form", listed)
    for label in ("Admin first name", "Admin last name", "Admin email"):
        tap.ok(any(l.startswith("* " + label) for l in listed), f"{label} is asked for", listed)
    for label in ("Country", "Company", "License key", "Preferred domain", "Tag or branch"):
        tap.ok(not any(l.startswith("* " + label) for l in listed), f"{label}, already given, is not", listed)
    tap.ok("Admin email: \n" in body, "with lines to fill in", body)
    tap.eq(len(acks(mails)), 1, "and the acknowledgement")
    hist = c.desk.show(1)["history"]
    tap.ok(any(h["field"] == "status" and h["actor"] == "intake" and h["new"] == "Waiting for customer" for h in hist),
           "the wait is recorded in the history as intake's", hist)
    tap.ok(any(h["field"] == "fields missing" and "Repository link (invalid)" in h["new"] for h in hist),
           "and what was asked")

    c.reply(1, "Here you are:\n\nAdmin first name: Jane\nADMIN LAST NAME: Doe\nadmin e-mail: <Jane.Doe@acme.example>\n"
               "Repo: git@github.com:acme/shop.git\n")
    t = c.desk.show(1)
    tap.eq(t["status"], "Waiting for triage", "the reply that completes the form returns the ticket to triage")
    tap.eq(len(t["fields"]), 11, "all eleven fields are collected", t["fields"])
    tap.eq((t["fields"].get("admin_email"), t["fields"].get("repository")),
           ("jane.doe@acme.example", "git@github.com:acme/shop.git"), "as written in the reply")
    mails = c.mails()
    tap.eq(questions(mails), [], "nothing is asked again")
    tap.ok(any("every detail" in body for _, body in mails), "the customer is told the request is complete", mails)

    c.reply(1, "Any news?\n")
    tap.eq(questions(c.mails()), [], "a later reply asks nothing either")
    tap.eq(c.desk.show(1)["status"], "Waiting for triage", "and leaves the status alone")
    c.close()


def test_partial_answer(tap):
    c = Intake()
    c.new_ticket("Bug in checkout", "The checkout throws an exception.\nCompany: Acme GmbH\n")
    t = c.desk.show(1)
    tap.eq((t["category"], t["status"]), ("Bug", "Waiting for customer"), "a bug without a license key waits")
    tap.eq(len(questions(c.mails())), 1, "the customer is asked once")
    c.reply(1, "Sorry, which key do you mean?\n")
    tap.eq(c.desk.show(1)["status"], "In progress", "a reply without fields is an ordinary reply")
    tap.eq(questions(c.mails()), [], "and is not answered with the question again")

    c.new_ticket("Another bug", "The export crashes.\nLicense: XYZ-1\n")
    t = c.desk.show(2)
    tap.eq((t["status"], t["fields"]), ("Waiting for triage", {"company": "Acme GmbH", "license_key": "XYZ-1"}),
           "a remembered company is not asked again on the requester's next ticket")
    tap.eq(questions(c.mails()), [], "so nothing is asked")
    c.close()


def test_partial_answer_restarts_followups(tap):
    """The customer who answers an intake question in part did respond:
    the ticket keeps waiting for the rest, but its follow-ups and its
    auto-resolve count from that reply, not from the question."""
    c = Intake(now="2026-12-01T10:00:00+02:00")
    c.new_ticket("New environment request", NEW_ENVIRONMENT)    # waits from Tue 1 10:00
    c.mails()

    def tick(now):
        c.now = now
        c.desk.run("tick", env={"MAILDESK_NOW": now}, check=True)
        return [subject for subject, _ in c.mails() if "Waiting for your reply" in subject
                or "Ticket resolved" in subject]

    c.now = "2026-12-03T10:00:00+02:00"                          # Thu 3: two of the four fields
    c.reply(1, "Admin first name: Jane\nAdmin last name: Doe\n")
    t = c.desk.show(1)
    tap.eq(t["status"], "Waiting for customer", "a partial answer keeps the ticket waiting for the rest")
    tap.ok(any(h["field"] == "followup" and h["new"] == "restarted" and h["at"].startswith("2026-12-03")
               for h in t["history"]), "the history says the follow-ups start over", t["history"])
    tap.eq(len(questions(c.mails())), 1, "and the customer is asked for the rest")
    # 3bd, 7bd, 10bd from Thu 3 10:00: Tue 8, Mon 14, Thu 17 (not Fri 4, Thu 10, Tue 15 from the question)
    tap.eq(tick("2026-12-04T10:30:00+02:00"), [], "no follow-up three working days after the question")
    tap.eq(len(tick("2026-12-08T10:00:00+02:00")), 1, "the first follow-up three working days after the reply")
    tap.eq(tick("2026-12-10T10:30:00+02:00"), [], "none seven working days after the question")
    tap.eq(len(tick("2026-12-14T10:00:00+02:00")), 1, "the second seven working days after the reply")
    tap.eq(tick("2026-12-15T10:30:00+02:00"), [], "not resolved ten working days after the question")
    tap.eq(c.desk.show(1)["status"], "Waiting for customer", "the ticket still waits then")
    tap.eq(tick("2026-12-17T10:00:00+02:00"), ["[SUP-1] Ticket resolved: New environment request"],
           "resolved ten working days after the reply")
    c.close()


def test_agent_question_takes_over(tap):
    """An agent who asks the customer something (#waiting) while intake
    waits for fields takes the wait over: the customer's next reply goes
    to a person (In progress), fields or not."""
    c = Intake()
    c.desk.run("agent", "add", "jane@support.example.com", check=True)
    c.new_ticket("New environment request", NEW_ENVIRONMENT)
    p = c.desk.run("ticket", "reply", "1", "--as", "jane@support.example.com", input=b"#waiting\nWhich region?\n",
                   env={"MAILDESK_NOW": c.now})
    tap.eq((p.returncode, c.desk.show(1)["status"]), (0, "Waiting for customer"), "the agent's #waiting is taken")
    c.mails()
    c.reply(1, "Region: Frankfurt.\nAdmin first name: Jane\n")
    t = c.desk.show(1)
    tap.eq((t["status"], t["fields"].get("admin_first_name")), ("In progress", "Jane"),
           "a reply with some fields goes to In progress, and its fields are kept")
    tap.eq(questions(c.mails()), [], "intake asks nothing more: the agent handles it")
    c.close()


def test_answered_ticket_not_back_to_triage(tap):
    """An agent who answers while intake waits for fields has acknowledged
    the ticket: once the customer sends the fields it goes back to
    Request acknowledged, not to Waiting for triage."""
    c = Intake()
    c.desk.run("agent", "add", "jane@support.example.com", check=True)
    c.new_ticket("Bug in checkout", "The checkout throws an exception.\n")
    p = c.desk.run("ticket", "reply", "1", "--as", "jane@support.example.com", input=b"We are looking at it.\n",
                   env={"MAILDESK_NOW": c.now})
    tap.eq((p.returncode, c.desk.show(1)["status"]), (0, "Waiting for customer"), "the reply leaves the wait as it is")
    c.mails()
    c.reply(1, "License key: ABC-1\nCompany: Acme GmbH\n")
    tap.eq(c.desk.show(1)["status"], "Request acknowledged", "the fields complete: Request acknowledged")
    tap.eq([s for s, _ in c.mails() if "Waiting for triage" in s], [], "no status mail says Waiting for triage")
    c.close()


def test_access_complete(tap):
    c = Intake()
    c.new_ticket("SSH access request", "Please grant SSH access to our developer.\n\nName: Bob Builder\n"
                                       "E-mail: bob@acme.example\nCompany name: Acme GmbH\n")
    t = c.desk.show(1)
    tap.eq((t["category"], t["status"]), ("Access Request", "Waiting for triage"), "a complete access request waits for triage")
    tap.eq(t["fields"], {"name": "Bob Builder", "email": "bob@acme.example", "company": "Acme GmbH"}, "with its fields")
    mails = c.mails()
    tap.eq(questions(mails), [], "no question is asked")
    # Tuesday 10:00 + 2 working days = Thursday 10:00 EET
    tap.eq(t["due_at"], "2026-12-03T08:00:00Z", "SSH access (1-2 working days) is due in two working days")
    ack = acks(mails)
    tap.ok(ack and "Thu 03 Dec 2026 10:00" in ack[0] and "1-2 working days" in ack[0],
           "the acknowledgement promises the date", ack)
    report = {r["priority"]: r for r in c.desk.json("sla", "report", env={"MAILDESK_NOW": c.now})}
    tap.eq([(d["key"], d["due_at"], d["overdue"]) for d in report["P3"]["deliveries"]],
           [("SUP-1", "2026-12-03T08:00:00Z", False)], "sla report lists the promised delivery", report["P3"])
    later = {"MAILDESK_NOW": "2026-12-04T09:00:00+02:00"}
    report = {r["priority"]: r for r in c.desk.json("sla", "report", env=later)}
    tap.eq(report["P3"]["deliveries_overdue"], 1, "and counts it overdue once the date has passed")
    text = c.desk.run("sla", "report", env=later, check=True).stdout.decode()
    tap.ok("SUP-1" in text and "OVERDUE" in text, "in its text form too", text)
    c.close()


GO_LIVE = """Hello,

this is our go-live notice.

Launch date: {date}
Concurrent users: 200
Daily users: 5,000
Organizations: 40
Websites: 2
Products: ~120000
Attributes: 300
Categories: 1200
Web catalog: 150 content nodes
Media size: 40 GB
Integration flows: ERP (hourly), PIM (daily)
"""


def test_go_live(tap):
    c = Intake()
    c.new_ticket("Go-live notice for shop.acme.example", GO_LIVE.format(date="2026-12-11"))
    t = c.desk.show(1)
    tap.eq(t["status"], "Waiting for triage", "a complete go-live notice 10 days out is accepted")
    tap.eq(len(t["fields"]), 11, "with its sizing figures as fields", t["fields"])
    tap.ok("short-notice" in t["tags"], "but flagged", t["tags"])
    tap.ok(any(h["field"] == "go-live notice" and "10 days away" in (h["new"] or "") for h in t["history"]),
           "with the reason in the history", t["history"])
    mails = c.mails()
    tap.eq(questions(mails), [], "no question is asked")
    ack = acks(mails)
    tap.ok(ack and "at least 14 days" in ack[0] and "10 days away" in ack[0],
           "the customer is told the notice period", ack)

    c.new_ticket("Go-live notice", GO_LIVE.format(date="2026-12-21"))
    t = c.desk.show(2)
    tap.ok("short-notice" not in t["tags"], "20 days ahead is not flagged", t["tags"])
    ack = acks(c.mails())
    tap.ok(ack and "14 days" not in ack[0], "and its acknowledgement says nothing of the notice period", ack)

    c.new_ticket("Go-live notice", "We go live soon.\nProducts: lots\n")
    t = c.desk.show(3)
    tap.eq(t["status"], "Waiting for customer", "a notice without its figures is asked for them")
    asked = questions(c.mails())
    tap.ok(asked and "Launch date" in asked[0] and '"lots" is not a number' in asked[0],
           "the question names the missing date and the figure that is not a number", asked)
    c.reply(3, "Launch date: 2026-12-05\n")
    t = c.desk.show(3)
    tap.ok("short-notice" in t["tags"], "a launch date given in a reply is checked too", t["tags"])
    asked = questions(c.mails())
    tap.ok(asked and "at least 14 days" in asked[0] and "Launch date" not in asked[0].split("\n\n")[2],
           "the next question tells the notice period and no longer asks for the date", asked)
    c.close()


def test_estimates_across_weekend_and_holiday(tap):
    # Thursday 24 December, Friday 25 December a holiday
    c = Intake(now="2026-12-24T10:00:00+02:00")
    c.new_ticket("SSH access", "Please give SSH access.\nName: Bob\nEmail: bob@acme.example\nCompany: Acme\n")
    tap.eq(c.desk.show(1)["due_at"], "2026-12-29T08:00:00Z",
           "1-2 days from Thursday skip the holiday and the weekend: Tuesday")
    c.new_ticket("New environment request", NEW_ENVIRONMENT)
    tap.eq(c.desk.show(2)["due_at"], "2026-12-30T08:00:00Z", "2-3 days: Wednesday")
    c.new_ticket("Please add sub-domains", "Sub-domains: b2b.acme.example, eu.acme.example\n")
    t = c.desk.show(3)
    tap.eq((t["due_at"], t["fields"].get("subdomains")), (None, "b2b.acme.example, eu.acme.example"),
           "a task that requires investigation gets no date")
    mails = c.mails()
    tap.ok(any("Tue 29 Dec 2026 10:00" in body for body in acks(mails)), "the acknowledgement shows the date",
           acks(mails))
    c.close()

    c = Intake(now="2026-12-24T10:00:00+02:00", holidays="")
    c.new_ticket("SSH access", "Please give SSH access.\nName: Bob\nEmail: bob@acme.example\nCompany: Acme\n")
    tap.eq(c.desk.show(1)["due_at"], "2026-12-28T08:00:00Z", "without the holiday: Monday")
    c.close()


def test_questions_are_automatic_mail(tap):
    """The question is automatic mail like the acknowledgement: never to a
    bounce or daemon envelope sender, and within the per-sender limit."""
    c = Intake()
    c.deliver(message(subject="New environment request", body=NEW_ENVIRONMENT), "--sender", "MAILER-DAEMON@mx.example")
    c.deliver(message(subject="New environment request", body=NEW_ENVIRONMENT), "--sender", "")
    tap.eq(c.mails(), [], "no question (nor acknowledgement) to a daemon's or a null envelope sender")
    for i in range(7):
        c.new_ticket(f"New environment request {i}", NEW_ENVIRONMENT)
    mails = c.mails()
    tap.eq((len(acks(mails)), len(questions(mails))), (5, 5), "at most 5 of each an hour to one sender (ack_rate_limit)")
    tap.eq(len(c.desk.tickets()), 9, "while every ticket is opened")
    c.close()


def test_agent_opens_without_question(tap):
    """An agent opening a ticket (for a customer, say) knows the form:
    the ticket opens, with no question and no wait for its fields."""
    c = Intake()
    agent = "jane@support.example.com"
    c.desk.run("agent", "add", agent, check=True)
    tap.eq(c.deliver(message(subject="Bug in checkout", body="Acme's checkout throws an exception.\n", sender=agent)),
           "SUP-1", "the agent's mail opens a ticket")
    t = c.desk.show(1)
    tap.eq((t["category"], t["status"]), ("Bug", "Waiting for triage"), "which has a form but waits for triage")
    c.desk.run("outbox", "flush", env={"MAILDESK_NOW": c.now}, check=True)
    subjects = [email.message_from_bytes(raw, policy=email.policy.default)["Subject"]
                for env, raw in c.catcher.messages() if agent in env["rcpt_tos"]]
    tap.ok(subjects and not any(QUESTION in s for s in subjects), "the agent is not asked the form's questions", subjects)
    tap.eq([h for h in t["history"] if h["field"] == "fields missing"], [], "nor is anything recorded as missing")
    c.new_ticket("Bug in checkout", "The checkout throws an exception.\n")
    tap.eq(len(questions(c.mails())), 1, "a customer's like ticket is still asked")
    c.close()


if __name__ == "__main__":
    run_tests(test_new_environment, test_partial_answer, test_partial_answer_restarts_followups,
              test_agent_question_takes_over, test_answered_ticket_not_back_to_triage, test_access_complete, test_go_live,
              test_estimates_across_weekend_and_holiday, test_questions_are_automatic_mail,
              test_agent_opens_without_question)
