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


def asked_fields(body):
    """The fields a mail asks for: its "  * Label ..." lines."""
    return [line.strip() for line in body.splitlines() if line.startswith("  * ")]


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
    tap.eq(t["status"], "Waiting for triage", "missing fields move no status: it waits for triage (DESIGN 1)")
    tap.eq(t["fields"], {"country": "Germany", "environment_type": "staging", "domain": "staging.acme.example",
                         "company": "Acme GmbH", "license_key": "ABC-123-XYZ", "version": "5.1.3",
                         "ref": "release/5.1"},
           "the valid fields are stored, normalized, under any case and synonym; the invalid link is not")
    mails = c.mails()
    tap.eq((len(mails), len(acks(mails)), questions(mails)), (1, 1, []),
           "the customer gets one mail, the acknowledgement, which asks the question", mails)
    body = acks(mails)[0] if acks(mails) else ""
    listed = asked_fields(body)
    tap.eq(len(listed), 4, "it lists four fields", body)
    tap.ok(any(l.startswith("* Repository link") and "https://github.com/acme/shop" in l and "SSH" in l for l in listed),
           "the repository link, quoted back, is asked again in SSH form", listed)
    for label in ("Admin first name", "Admin last name", "Admin email"):
        tap.ok(any(l.startswith("* " + label) for l in listed), f"{label} is asked for", listed)
    for label in ("Country", "Company", "License key", "Preferred domain", "Tag or branch"):
        tap.ok(not any(l.startswith("* " + label) for l in listed), f"{label}, already given, is not", listed)
    tap.ok("Admin email: \n" in body, "with lines to fill in", body)
    hist = c.desk.show(1)["history"]
    tap.eq([h for h in hist if h["field"] == "status"], [
        {"at": hist[0]["at"], "actor": CUSTOMER, "field": "status", "old": None, "new": "Waiting for triage"}],
        "the only status in the history is the new ticket's", hist)
    tap.ok(any(h["field"] == "fields missing" and h["actor"] == "intake" and "Repository link (invalid)" in h["new"]
               for h in hist), "what was asked is recorded as intake's", hist)

    c.reply(1, "Here you are:\n\nAdmin first name: Jane\nADMIN LAST NAME: Doe\nadmin e-mail: <Jane.Doe@acme.example>\n"
               "Repo: git@github.com:acme/shop.git\n")
    t = c.desk.show(1)
    tap.eq(t["status"], "Waiting for triage", "the reply that completes the form leaves it in triage")
    tap.eq(len(t["fields"]), 11, "all eleven fields are collected", t["fields"])
    tap.eq((t["fields"].get("admin_email"), t["fields"].get("repository")),
           ("jane.doe@acme.example", "git@github.com:acme/shop.git"), "as written in the reply")
    tap.eq(questions(c.mails()), [], "nothing is asked again")
    tap.ok(any(h["field"] == "fields missing" and h["new"] == "none" for h in t["history"]),
           "the history says the form is complete", t["history"])

    c.reply(1, "Any news?\n")
    tap.eq(questions(c.mails()), [], "a later reply asks nothing either")
    tap.eq(c.desk.show(1)["status"], "Waiting for triage", "and leaves the status alone")
    c.close()


def test_partial_answer(tap):
    c = Intake()
    c.new_ticket("Bug in checkout", "The checkout throws an exception.\nCompany: Acme GmbH\n")
    t = c.desk.show(1)
    tap.eq((t["category"], t["status"]), ("Bug", "Waiting for triage"), "a bug without a license key waits for triage")
    mails = c.mails()
    tap.eq(([asked_fields(b) for b in acks(mails)], questions(mails)), ([["* License key"]], []),
           "its acknowledgement asks for the key, and nothing else is mailed", mails)
    c.reply(1, "Sorry, which key do you mean?\n")
    tap.eq(c.desk.show(1)["status"], "Waiting for triage", "a reply without fields is an ordinary reply")
    tap.eq(questions(c.mails()), [], "and is not answered with the question again")

    c.new_ticket("Another bug", "The export crashes.\nLicense: XYZ-1\n")
    t = c.desk.show(2)
    tap.eq((t["status"], t["fields"]), ("Waiting for triage", {"company": "Acme GmbH", "license_key": "XYZ-1"}),
           "a remembered company is not asked again on the requester's next ticket")
    mails = c.mails()
    tap.eq(([asked_fields(b) for b in acks(mails)], questions(mails)), ([[]], []), "so nothing is asked", mails)
    c.close()


def test_partial_answer_asks_for_the_rest(tap):
    """A customer who answers intake's question in part is asked for the
    rest; the ticket stays where DESIGN's workflow puts it, and intake
    neither follows it up nor resolves it."""
    c = Intake(now="2026-12-01T10:00:00+02:00")
    c.new_ticket("New environment request", NEW_ENVIRONMENT)
    c.mails()
    c.now = "2026-12-03T10:00:00+02:00"
    c.reply(1, "Admin first name: Jane\nAdmin last name: Doe\n")
    t = c.desk.show(1)
    tap.eq(t["status"], "Waiting for triage", "a partial answer moves no status")
    asked = questions(c.mails())
    tap.eq([[l.split(" (")[0] for l in asked_fields(b)] for b in asked], [["* Repository link", "* Admin email"]],
           "the customer is asked for the rest, once", asked)
    tap.ok(any(h["field"] == "fields missing" and h["new"] == "Repository link, Admin email" for h in t["history"]),
           "and the history says what", t["history"])
    c.now = "2026-12-31T10:00:00+02:00"
    c.desk.run("tick", env={"MAILDESK_NOW": c.now}, check=True)
    tap.eq((c.desk.show(1)["status"], [s for s, _ in c.mails() if "resolved" in s.lower()]),
           ("Waiting for triage", []), "weeks later it still waits for triage: intake resolves nothing")
    c.close()


def test_agent_question_takes_over(tap):
    """Once an agent has answered, intake asks nothing: a customer's reply
    with some fields goes to the agent (In progress after #waiting)."""
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


def test_agent_reply_acknowledges(tap):
    """A ticket that lacks fields follows DESIGN 1's table like any other:
    an agent's reply acknowledges it, and the customer's fields later
    move it nowhere else."""
    c = Intake()
    c.desk.run("agent", "add", "jane@support.example.com", check=True)
    c.new_ticket("Bug in checkout", "The checkout throws an exception.\n")
    p = c.desk.run("ticket", "reply", "1", "--as", "jane@support.example.com", input=b"We are looking at it.\n",
                   env={"MAILDESK_NOW": c.now})
    t = c.desk.show(1)
    tap.eq((p.returncode, t["status"]), (0, "Request acknowledged"), "the agent's reply acknowledges it")
    tap.ok(t["first_response_at"], "and meets the first response")
    c.mails()
    c.reply(1, "License key: ABC-1\nCompany: Acme GmbH\n")
    t = c.desk.show(1)
    tap.eq((t["status"], t["fields"]), ("Request acknowledged", {"license_key": "ABC-1", "company": "Acme GmbH"}),
           "the fields are stored; the status stays")
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
    tap.eq(t["status"], "Waiting for triage", "a notice without its figures waits for triage")
    asked = acks(c.mails())
    tap.ok(asked and "Launch date" in asked[0] and '"lots" is not a number' in asked[0],
           "its acknowledgement names the missing date and the figure that is not a number", asked)
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
    tap.eq((len(acks(mails)), len(questions(mails))), (5, 0), "at most 5 an hour to one sender (ack_rate_limit)")
    tap.ok(all(len(asked_fields(b)) == 4 for b in acks(mails)), "each asking the question", mails)
    tap.eq(len(c.desk.tickets()), 9, "while every ticket is opened")
    c.close()


def test_partial_answers_are_rate_limited(tap):
    """The question after a partial answer is automatic mail too, held to
    the per-sender limit (ack_rate_limit, 5 an hour) of its own kind."""
    c = Intake()
    c.new_ticket("New environment request", NEW_ENVIRONMENT)
    c.mails()
    for i in range(7):
        c.reply(1, f"Admin first name: Jane{i}\n")
    tap.eq(len(questions(c.mails())), 5, "seven partial answers in an hour get five questions")
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
    tap.eq([asked_fields(b) for b in acks(c.mails())], [["* License key", "* Company"]],
           "a customer's like ticket is still asked, in its acknowledgement")
    c.close()


def test_form_of_reply_looking_request(tap):
    """Mail that looks like a reply (In-Reply-To, References) to nothing
    the desk knows opens a ticket with its form as any request does (the
    writer finds the form; for other mail ingest found it beforehand)."""
    c = Intake()
    plain = c.new_ticket("New environment request", NEW_ENVIRONMENT)
    replyish = c.deliver(message(subject="New environment request", body=NEW_ENVIRONMENT,
                                 headers=["In-Reply-To: <unknown@customer.example>",
                                          "References: <unknown@customer.example>"]))
    tap.eq((plain, replyish), ("SUP-1", "SUP-2"), "both open a ticket")
    first, second = c.desk.show(1), c.desk.show(2)
    tap.eq(second["fields"], first["fields"], "with the same fields stored", second["fields"])
    form = lambda t: [h["new"] for h in t["history"] if h["field"] == "form"]
    tap.eq(form(second), form(first), "under the same form", second["history"])
    tap.ok(form(first), "which is one", first["history"])
    asked = [asked_fields(b) for b in acks(c.mails())]
    tap.eq(len(asked), 2, "both are acknowledged", asked)
    tap.ok(len(asked) == 2 and asked[0] and asked[0] == asked[1], "asking the same", asked)
    c.close()


if __name__ == "__main__":
    run_tests(test_new_environment, test_partial_answer, test_partial_answer_asks_for_the_rest,
              test_agent_question_takes_over, test_agent_reply_acknowledges, test_access_complete, test_go_live,
              test_estimates_across_weekend_and_holiday, test_questions_are_automatic_mail,
              test_partial_answers_are_rate_limited, test_agent_opens_without_question,
              test_form_of_reply_looking_request)
