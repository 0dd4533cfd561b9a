#!/usr/bin/env python3
"""End to end (issue 6): a whole desk run through two simulated weeks
with MAILDESK_NOW.  Customers and agents write by mail (`deliver`),
`maildesk tick` runs several times at every step and `maildesk outbox
flush` sends to a real SMTP server on loopback (tests/smtp_catcher.py).
Every SLA reminder, breach notice, follow-up and auto-resolve notice
must reach the catcher at the step of its due time, exactly once, and
nothing else of the kind may.

The calendar is the default (Mon-Fri 09:00-17:00 Europe/Kyiv, EET in
December) with a holiday on Tuesday 8 December; the due times below are
worked out by hand from it."""
import datetime
import email
import email.policy
import os
import sqlite3

from mdtest import Catcher, Desk, message, run_tests, token_address

KYIV = datetime.timezone(datetime.timedelta(hours=2))  # EET: no DST change in December
AGENTS = ["jane@support.example.com", "joe@support.example.com"]
LEADS = "leads@support.example.com"


def t(day, hhmm):
    """December 2026, local time, as an aware datetime."""
    h, m = map(int, hhmm.split(":"))
    return datetime.datetime(2026, 12, day, h, m, tzinfo=KYIV)


def iso(when):
    return when.isoformat()




# What people do, in time order: (when, ticket it answers or None, sender, subject, body)
EVENTS = [
    (t(1, "09:30"), None, "alice@customer.example", "Export fails", "The export stops at 40%."),       # SUP-1 P3
    (t(1, "10:00"), None, "dave@customer.example", "Login page slow", "It takes a minute."),            # SUP-2 P3
    (t(1, "11:00"), 2, "jane@support.example.com", "Re: [SUP-2] Login page slow",
     "#waiting\n\nCould you send us the browser console log?"),
    (t(4, "09:00"), 2, "dave@customer.example", "Re: [SUP-2] Login page slow", "Attached soon, sorry."),
    (t(4, "10:00"), 2, "jane@support.example.com", "Re: [SUP-2] Login page slow",
     "#waiting\n\nWe still need the log."),
    (t(4, "16:00"), None, "bob@customer.example", "Checkout broken", "Nobody can pay."),               # SUP-3
    (t(4, "16:10"), 3, "jane@support.example.com", "Re: [SUP-3] Checkout broken", "#priority P1\n#assign me\n"),
    (t(7, "10:00"), 3, "jane@support.example.com", "Re: [SUP-3] Checkout broken", "We are on it."),
    (t(7, "10:00"), None, "carol@customer.example", "Invoice question", "Which VAT rate applies?"),    # SUP-4
    (t(7, "11:00"), 4, "jane@support.example.com", "Re: [SUP-4] Invoice question",
     "#waiting\n\nWhich country is the invoice for?"),
]

# (due, ticket, kind, recipient, detail): detail is the "remaining" of a reminder
EXPECTED = [
    # SUP-1, P3 24bh from Tue 09:30, never answered, unassigned: every agent; breach to leads too
    *[(t(2, "13:30"), "SUP-1", "reminder", a, "12 business hours") for a in AGENTS],
    *[(t(3, "11:30"), "SUP-1", "reminder", a, "6 business hours") for a in AGENTS],
    *[(t(3, "15:06"), "SUP-1", "reminder", a, "2 business hours 24 minutes") for a in AGENTS],
    *[(t(4, "09:30"), "SUP-1", "breach", a, None) for a in AGENTS + [LEADS]],
    # SUP-2: waiting from Tue 11:00, follow-up 1 at 2bd; the customer's reply cancels the rest
    (t(3, "11:00"), "SUP-2", "followup", "dave@customer.example", None),
    # waiting again from Fri 10:00: 2bd and 4bd (Tue 8 is a holiday), resolved at 6bd
    (t(9, "10:00"), "SUP-2", "followup", "dave@customer.example", None),
    (t(11, "10:00"), "SUP-2", "followup", "dave@customer.example", None),
    (t(15, "10:00"), "SUP-2", "auto-resolve", "dave@customer.example", None),
    # SUP-3: P1 from Fri 16:00 (4 calendar hours), assigned to jane
    (t(4, "18:00"), "SUP-3", "reminder", "jane@support.example.com", "2 hours"),
    (t(4, "19:00"), "SUP-3", "reminder", "jane@support.example.com", "1 hour"),
    (t(4, "19:36"), "SUP-3", "reminder", "jane@support.example.com", "24 minutes"),
    (t(4, "20:00"), "SUP-3", "breach", "jane@support.example.com", None),
    (t(4, "20:00"), "SUP-3", "breach", LEADS, None),
    # SUP-4: answered within the hour; waiting from Mon 11:00
    (t(10, "11:00"), "SUP-4", "followup", "carol@customer.example", None),
    (t(14, "11:00"), "SUP-4", "followup", "carol@customer.example", None),
    (t(16, "11:00"), "SUP-4", "auto-resolve", "carol@customer.example", None),
]

KINDS = {"SLA reminder:": "reminder", "SLA breached:": "breach", "Waiting for your reply:": "followup",
         "Ticket resolved:": "auto-resolve"}
START, END = t(1, "00:00"), t(16, "12:00")


def kind_of(msg):
    subject = str(msg["Subject"] or "")
    for prefix, kind in KINDS.items():
        if prefix in subject:
            return kind
    return None


def steps():
    """Every other hour of the two weeks, every event and every due time."""
    out = {e[0] for e in EVENTS} | {x[0] for x in EXPECTED}
    at = START
    while at <= END:
        out.add(at)
        at += datetime.timedelta(hours=2)
    return sorted(out)


def simulate(tap):
    catcher = Catcher().start()
    desk = Desk(extra_conf=f"agents = {', '.join(AGENTS)}\n"
                           f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n"
                           "from = Test Support <support@support.example.com>\n"
                           "[calendar]\nholidays = 2026-12-08\n"
                           f"[sla]\nescalate_to = {LEADS}\n"
                           "[followup]\nwaiting_reminders = 2bd, 4bd\nauto_resolve_after = 6bd\n")
    env0 = {"MAILDESK_NOW": iso(START)}
    for a in AGENTS:
        desk.run("agent", "add", a, env=env0, check=True)

    events = list(EVENTS)
    arrived = []   # (step, ticket, kind, rcpt, msg)
    seen = 0
    ticks_ok = True
    for step in steps():
        env = {"MAILDESK_NOW": iso(step)}
        while events and events[0][0] == step:
            _, ticket, sender, subject, body = events.pop(0)
            to = token_address(desk, ticket) if ticket else "support@support.example.com"
            p = desk.deliver(message(subject=subject, body=body, sender=sender, to=to), "--recipient", to, env=env)
            if p.returncode != 0:
                raise RuntimeError(f"deliver at {step}: {p.returncode} {p.stderr.decode()}")
        for _ in range(3):
            ticks_ok &= desk.run("tick", env=env).returncode == 0
        p = desk.run("outbox", "flush", env=env)
        if p.returncode != 0:
            raise RuntimeError(f"flush at {step}: {p.stderr.decode()}")
        got = catcher.messages()
        for envelope, raw in got[seen:]:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            kind = kind_of(msg)
            if kind:
                arrived.append((step, str(msg["X-Maildesk-Ticket"]), kind, envelope["rcpt_tos"][0], msg))
        seen = len(got)
    tap.ok(ticks_ok, "every tick exits 0")

    want = sorted((due, key, kind, rcpt) for due, key, kind, rcpt, _ in EXPECTED)
    have = sorted((step, key, kind, rcpt) for step, key, kind, rcpt, _ in arrived)
    tap.eq(len(have), len(want), "as many scheduler mails as expected")
    for w in want:
        n = have.count(w)
        tap.ok(n == 1, f"{w[1]} {w[2]} to {w[3]} at {w[0]:%a %d %H:%M}, exactly once",
               f"arrived {n} times; all arrivals of that kind and ticket: "
               + repr([(f"{h[0]:%a %d %H:%M}", h[3]) for h in have if h[1:3] == w[1:3]]))
    extra = [h for h in have if h not in want]
    tap.ok(not extra, "nothing unexpected arrived", repr(extra))

    for due, key, kind, rcpt, detail in EXPECTED:
        if not detail:
            continue
        msgs = [m for s, k, kd, r, m in arrived if (s, k, kd, r) == (due, key, kind, rcpt)]
        body = msgs[0].get_body(("plain",)).get_content() if msgs else ""
        tap.ok(f"({detail} left)" in body, f"{key} reminder at {due:%a %H:%M} says {detail} left", body)
    for key, who in (("SUP-2", "dave"), ("SUP-4", "carol")):
        msgs = [m for s, k, kd, r, m in arrived if k == key and kd == "followup"]
        body = msgs[-1].get_body(("plain",)).get_content() if msgs else ""
        resolve = [d for d, k, kd, _, _ in EXPECTED if k == key and kd == "auto-resolve"][0]
        tap.ok(f"{resolve:%d %b %Y %H:%M}" in body, f"{key}'s follow-up names the auto-resolve time", body)

    env = {"MAILDESK_NOW": iso(END)}
    fu = lambda n: ("followup", f"follow-up {n}")
    for key, resolved_at, series in (("SUP-2", t(15, "10:00"), [fu(1), fu(1), fu(2)]),
                                     ("SUP-4", t(16, "11:00"), [fu(1), fu(2)])):
        show = desk.json("ticket", "show", key, env=env)
        tap.eq((show["status"], show["resolved_at"]),
               ("Resolved", resolved_at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
               f"{key} resolved automatically")
        tap.eq([(h["field"], h["new"]) for h in show["history"] if h["actor"] == "system"],
               series + [("followup", "auto-resolve"), ("status", "Resolved")],
               f"{key}'s history records the follow-ups and the resolution")
    show = desk.json("ticket", "show", "SUP-1", env=env)
    tap.eq([(h["field"], h["new"]) for h in show["history"] if h["actor"] == "system"],
           [("sla", "reminder 50%"), ("sla", "reminder 75%"), ("sla", "reminder 90%"), ("sla", "breach")],
           "SUP-1's history records each reminder and the breach once")

    report = {r["priority"]: r for r in desk.json("sla", "report", env=env)}
    tap.eq(set(report), {"P1", "P2", "P3", "P4", "ER"}, "the report has every priority")
    tap.eq(set(report["P3"]), {"priority", "open", "due", "due_next_working_day", "breached", "met", "responded",
                               "median_first_response_business_hours", "deliveries", "deliveries_overdue"},
           "report JSON fields")
    tap.eq({k: report["P1"][k] for k in ("open", "breached", "met", "median_first_response_business_hours")},
           {"open": 1, "breached": 1, "met": 0, "median_first_response_business_hours": 2.0},
           "P1: SUP-3 answered after 2 business hours, too late for 4 hours")
    tap.eq({k: report["P3"][k] for k in ("open", "breached", "met", "median_first_response_business_hours")},
           {"open": 1, "breached": 1, "met": 2, "median_first_response_business_hours": 1.0},
           "P3: SUP-1 breached, SUP-2 and SUP-4 met in an hour")
    text = desk.run("sla", "report", env=env, check=True).stdout.decode()
    tap.ok("P3" in text and "BREACHED" in text, "the text report", text)
    catcher.cleanup()
    desk.cleanup()


def test_report_due_next_day(tap):
    """due_next_working_day counts open tickets due by the end of the next
    working day and no later."""
    desk = Desk()
    for when in (t(2, "10:00"), t(3, "16:00")):
        desk.deliver(message(subject="Question", headers=["Auto-Submitted: auto-generated"]),
                     env={"MAILDESK_NOW": iso(when)})
    # 24bh: SUP-1 is due Mon 7 10:00, SUP-2 Tue 8 16:00.  Fri 4 11:00 +
    # 1bd = Mon 7 11:00: SUP-1 is due by then, SUP-2 is not
    rows = {r["priority"]: r for r in desk.json("sla", "report", env={"MAILDESK_NOW": iso(t(4, "11:00"))})}
    tap.eq((rows["P3"]["open"], rows["P3"]["breached"], rows["P3"]["due_next_working_day"]), (2, 0, 1),
           "Friday: SUP-1 due by Monday 11:00, SUP-2 later")
    tap.eq(rows["P3"].get("due"), 2, "DESIGN 3's tickets due: both still awaiting a first response in time")
    rows = {r["priority"]: r for r in desk.json("sla", "report", env={"MAILDESK_NOW": iso(t(7, "17:00"))})}
    tap.eq((rows["P3"]["breached"], rows["P3"]["due_next_working_day"]), (1, 1),
           "Monday evening: SUP-1 breached, SUP-2 due by Tuesday's close")
    tap.eq(rows["P3"].get("due"), 1, "only SUP-2 is still due")
    text = desk.run("sla", "report", env={"MAILDESK_NOW": iso(t(7, "17:00"))}, check=True).stdout.decode()
    lines = text.splitlines()
    tap.ok(lines[0].split()[:4] == ["PRIORITY", "OPEN", "DUE", "DUE"] and
           any(l.split()[:5] == ["P3", "2", "1", "1", "1"] for l in lines), "the text report has the DUE column", text)
    desk.cleanup()


def test_report_since(tap):
    """`sla report --since` leaves out closed history, never open work."""
    d = Desk2()
    jane = ("--as", "jane@support.example.com")
    d.deliver(t(1, "10:00"), "Question", "q")                # SUP-1: answered in 1bh, resolved
    d.at(t(1, "11:00"), "ticket", "reply", "1", *jane, input=b"Answer.\n")
    d.at(t(1, "12:00"), "ticket", "set", "1", "status=Resolved", *jane)
    d.deliver(t(2, "10:00"), "Question two", "q")            # SUP-2: never answered, still open
    d.deliver(t(14, "10:00"), "Question three", "q")         # SUP-3: answered in 2bh
    d.at(t(14, "12:00"), "ticket", "reply", "3", *jane, input=b"Answer.\n")
    now = {"MAILDESK_NOW": iso(t(15, "10:00"))}
    fields = ("open", "breached", "met", "responded", "median_first_response_business_hours")

    def p3(*args):
        rows = {r["priority"]: r for r in d.desk.json("sla", "report", *args, env=now)}
        return tuple(rows["P3"][k] for k in fields)

    tap.eq(p3(), (2, 1, 2, 2, 1.5), "all time: SUP-1 and SUP-3 met, SUP-2 breached")
    tap.eq(p3("--since", "3d"), (2, 1, 1, 1, 2.0),
           "last 3 days: resolved SUP-1 left out, SUP-2 still open and breached, SUP-3 in")
    tap.eq(p3("--since", "30d"), p3(), "a window before the first ticket is all time")
    tap.eq(p3("--since", "3"), p3("--since", "72h"), "a bare number is days")
    text = d.desk.run("sla", "report", "--since", "3d", env=now, check=True).stdout.decode()
    tap.ok(any(l.split()[:6] == ["P3", "2", "0", "0", "1", "1"] for l in text.splitlines()),
           "the text report takes the window too", text)
    for bad in ("3bd", "soon"):
        p = d.desk.run("sla", "report", "--since", bad, env=now)
        tap.ok(p.returncode == 64 and b"--since" in p.stderr, f"--since {bad} is refused", p.stderr)
    d.close()


class Desk2:
    """A desk with one agent, its mail caught, driven at given times."""

    def __init__(self, extra=""):
        self.catcher = Catcher().start()
        self.desk = Desk(extra_conf=f"agents = jane@support.example.com\n"
                                    f"[smtp]\nurl = smtp://127.0.0.1:{self.catcher.port}\n{extra}")
        self.seen = 0

    def at(self, when, *args, input=None):
        return self.desk.run(*args, input=input, env={"MAILDESK_NOW": iso(when)}, check=True)

    def deliver(self, when, subject, body, ticket=None, sender="alice@customer.example"):
        to = token_address(self.desk, ticket) if ticket else "support@support.example.com"
        self.desk.deliver(message(subject=subject, body=body, sender=sender, to=to), "--recipient", to,
                          env={"MAILDESK_NOW": iso(when)})

    def tick(self, when):
        """Ticks twice, flushes; returns the kinds of the scheduler mail sent, with their bodies."""
        self.at(when, "tick")
        self.at(when, "tick")
        self.desk.run("outbox", "flush", env={"MAILDESK_NOW": iso(when)})
        got = self.catcher.messages()
        fresh, self.seen = got[self.seen:], len(got)
        out = []
        for env, raw in fresh:
            m = email.message_from_bytes(raw, policy=email.policy.default)
            if kind_of(m):
                out.append((kind_of(m), m.get_body(("plain",)).get_content()))
        return out

    def close(self):
        self.catcher.cleanup()
        self.desk.cleanup()


def waiting_desk(extra):
    """A Desk2 whose SUP-1 waits for the customer from Thu 3 15:00."""
    d = Desk2(extra)
    d.deliver(t(3, "14:00"), "Logs", "x")
    d.at(t(3, "15:00"), "ticket", "reply", "1", "--as", "jane@support.example.com",
         input=b"#waiting\nPlease send the logs.\n")
    d.tick(t(3, "15:30"))
    return d


def test_each_once(tap):
    """DESIGN 9: each reminder, breach notice and follow-up goes once,
    whatever moves its time afterwards; a met deadline stays met."""
    d = Desk2()
    d.deliver(t(4, "16:00"), "Export fails", "x")          # P3: due Wed 9 16:00
    d.tick(t(4, "16:30"))
    tap.eq([k for k, _ in d.tick(t(9, "16:00"))].count("breach"), 1, "the breach notice goes at the deadline")
    d.at(t(9, "17:00"), "ticket", "set", "1", "priority=P1", "--as", "jane@support.example.com")
    d.at(t(9, "17:05"), "ticket", "set", "1", "priority=P2", "--as", "jane@support.example.com")
    tap.eq([k for k, _ in d.tick(t(10, "12:00")) if k in ("breach", "reminder")], [],
           "and not again when the priority, and so the deadline, changes")

    d.deliver(t(1, "10:00"), "Question", "q")              # SUP-2, P3, due Wed 2 10:00
    d.at(t(1, "11:00"), "ticket", "reply", "2", "--as", "jane@support.example.com", input=b"Answer.\n")
    due = d.desk.json("ticket", "show", "2")["first_response_due"]
    d.at(t(1, "16:00"), "ticket", "set", "2", "priority=P1", "--as", "jane@support.example.com")
    tap.eq(d.desk.json("ticket", "show", "2")["first_response_due"], due,
           "a priority change after the first response keeps the deadline it met")
    d.close()

    # Follow-ups: 2bd and 4bd, resolution at 6bd (Mon 7 .. Fri 11 .. Tue 15 from Thu 3 15:00)
    d = waiting_desk("[followup]\nwaiting_reminders = 2bd, 4bd\nauto_resolve_after = 6bd\n")
    tap.eq([k for k, _ in d.tick(t(7, "15:00"))], ["followup"], "follow-up 1 on time")
    with open(d.desk.conf_path, "a") as f:
        f.write("[calendar]\nholidays = 2026-12-04\n")
    d.at(t(7, "16:00"), "ticket", "set", "1", "assignee=jane@support.example.com", "--as", "jane@support.example.com")
    tap.eq([k for k, _ in d.tick(t(8, "16:00"))], [], "an edited calendar does not send follow-up 1 again")
    d.close()

    # The desk was down for a week: one follow-up, not two, and the
    # customer still gets two business days before the resolution.
    d = waiting_desk("[followup]\nwaiting_reminders = 2bd, 4bd\nauto_resolve_after = 6bd\n")
    late = d.tick(t(16, "10:00"))
    tap.eq([k for k, _ in late], ["followup"], "after the outage: the last follow-up only, and no resolution yet")
    tap.ok(late and "18 Dec 2026 10:00" in late[0][1], "it names a resolution time still ahead",
           late[0][1] if late else "")
    tap.eq(d.desk.json("ticket", "show", "1")["status"], "Waiting for customer", "the ticket still waits")
    tap.eq([k for k, _ in d.tick(t(17, "10:00"))], [], "nothing the next day")
    tap.eq([k for k, _ in d.tick(t(18, "10:00"))], ["auto-resolve"], "resolved when the grace has passed")
    d.close()

    d = waiting_desk("[followup]\nwaiting_reminders = 1bd\nauto_resolve_after = 0d\n")
    fu = d.tick(t(4, "15:00"))
    tap.ok(fu and "close the ticket" not in fu[0][1], "without auto-resolve, no promise to close", fu)
    tap.ok(fu and "\n\n\n" not in fu[0][1].replace("\r\n", "\n"), "and no blank lines left where it was", fu)
    d.close()


def test_breach_reads_right_for_the_escalation(tap):
    """The breach notice also goes to [sla] escalate_to, usually no agent,
    whose #assign would be refused: it offers #assign only for a ticket
    nobody has, and tells a reader who is not an agent what to do."""
    d = Desk2(f"[sla]\nescalate_to = {LEADS}\n")
    d.deliver(t(4, "16:00"), "Export fails", "x")          # SUP-1, P3: due Wed 9 16:00
    d.deliver(t(4, "16:00"), "Import fails", "y")          # SUP-2, assigned
    d.at(t(4, "17:00"), "ticket", "set", "2", "assignee=jane@support.example.com")
    d.tick(t(4, "17:30"))
    breaches = {body.split("ticket ", 1)[1].split()[0]: body for kind, body in d.tick(t(9, "16:00"))
                if kind == "breach"}
    tap.eq(sorted(breaches), ["SUP-1", "SUP-2"], "both tickets' breach notices go", breaches)
    for key, body in sorted(breaches.items()):
        text = " ".join(body.split())
        tap.ok("If you read this as the escalation contact and are not an agent, forward this message to an agent"
               in text, f"{key}: a reader who is not an agent is told to forward it", body)
    unassigned = " ".join(breaches.get("SUP-1", "").split())
    tap.ok("No agent has taken the ticket yet: #assign me takes it" in unassigned,
           "an unassigned ticket's notice offers #assign me", unassigned)
    tap.ok("#assign" not in breaches.get("SUP-2", "#assign"), "an assigned one's does not",
           breaches.get("SUP-2"))
    d.close()


def test_waiting_again(tap):
    """An agent who asks a second question (#waiting, or #status Waiting
    for customer, on a ticket that already waits) restarts the follow-ups
    from that question: the first series is replaced, not run beside the
    new one."""
    for command in ("#waiting", "#status Waiting for customer"):
        waiting_again(tap, command)


def waiting_again(tap, command):
    d = waiting_desk("[followup]\nwaiting_reminders = 2bd, 4bd\nauto_resolve_after = 6bd\n")
    tap.eq([k for k, _ in d.tick(t(7, "15:00"))], ["followup"], f"{command}: follow-up 1 of the first wait")
    d.seen = len(d.catcher.messages())
    d.deliver(t(8, "10:00"), "Re: [SUP-1] Logs", command + "\nAnd which browser do you use?", ticket=1,
              sender="jane@support.example.com")
    show = d.desk.json("ticket", "show", "1")
    tap.eq(show["status"], "Waiting for customer", f"{command}: the ticket still waits")
    tap.ok(not any(h["field"] == "command refused" for h in show["history"]), f"{command} is not refused",
           show["history"])
    tap.ok(any(h["actor"] == "jane@support.example.com" and h["field"] == "status" and h["at"].startswith("2026-12-08")
               and (h["old"], h["new"]) == ("Waiting for customer", "Waiting for customer") for h in show["history"]),
           "the history records the agent's new wait", show["history"])
    d.desk.run("outbox", "flush", env={"MAILDESK_NOW": iso(t(8, "10:00"))})
    got = [(e["rcpt_tos"], raw) for e, raw in d.catcher.messages()[d.seen:]]
    tap.ok(got and not any(b"could not be carried out" in raw for _, raw in got),
           "and the agent gets no error (the customer gets the question)", got)
    db = sqlite3.connect(os.path.join(d.desk.dir, "var", "maildesk.db"))
    rows = db.execute("SELECT kind, arg, due_at, done_at FROM timers WHERE ticket_id = 1 "
                      "AND kind IN ('followup', 'auto-resolve') ORDER BY due_at").fetchall()
    db.close()
    stamp = lambda when: int(when.timestamp())
    tap.eq(rows, [("followup", "1", stamp(t(10, "10:00")), None), ("followup", "2", stamp(t(14, "10:00")), None),
                  ("auto-resolve", "", stamp(t(16, "10:00")), None)],
           "one series of timers, pending, from the new question")
    # The new series counts from Tue 8 10:00: 2bd Thu 10, 4bd Mon 14, 6bd Wed 16.
    plan = [(t(8, "16:00"), []), (t(9, "15:00"), []), (t(10, "10:00"), ["followup"]), (t(11, "15:00"), []),
            (t(14, "10:00"), ["followup"]), (t(15, "15:00"), []), (t(16, "10:00"), ["auto-resolve"]),
            (t(17, "10:00"), [])]
    for when, want in plan:
        got = d.tick(when)
        tap.eq([k for k, _ in got], want, f"{when:%a %d %H:%M}: {want or 'nothing'}")
        if want == ["followup"] and when.day == 10:
            body = got[0][1] if got else ""
            tap.ok("16 Dec 2026 10:00" in body, "the new follow-up names the new resolution time", body)
    show = d.desk.json("ticket", "show", "1")
    tap.eq([(h["field"], h["new"]) for h in show["history"] if h["actor"] == "system"],
           [("followup", "follow-up 1"), ("followup", "follow-up 1"), ("followup", "follow-up 2"),
            ("followup", "auto-resolve"), ("status", "Resolved")],
           "history: one follow-up of the first wait, then the whole new series")
    d.close()


def test_nobody_to_follow_up(tap):
    """Follow-ups that cannot be mailed (no requester address, or one
    that bounces) are recorded as not sent, never as sent; the ticket is
    still resolved automatically when its time comes."""
    fu = "[followup]\nwaiting_reminders = 2bd, 4bd\nauto_resolve_after = 6bd\n"
    for case, reason in (("no requester", "the ticket has no requester address"),
                         ("bouncing", "the requester's address bounces")):
        d = Desk2(fu)
        # An ambiguous From without an envelope sender names no one.
        sender = "alice@x@evil.example" if case == "no requester" else "alice@customer.example"
        d.deliver(t(3, "14:00"), "Logs", "x", sender=sender)
        tap.eq(d.desk.json("ticket", "show", "1")["requester"] is None, case == "no requester",
               f"{case}: the ticket's requester")
        if case == "bouncing":
            db = sqlite3.connect(os.path.join(d.desk.dir, "var", "maildesk.db"))
            db.execute("UPDATE people SET bouncing = 1 WHERE email = 'alice@customer.example'")
            db.commit()
            db.close()
        d.at(t(3, "15:00"), "ticket", "reply", "1", "--as", "jane@support.example.com",
             input=b"#waiting\nPlease send the logs.\n")
        d.tick(t(3, "15:30"))
        sent = [k for when in (t(7, "15:00"), t(9, "15:00"), t(11, "15:00")) for k, _ in d.tick(when)]
        tap.eq(sent, [], f"{case}: no follow-up and no notice is mailed")
        show = d.desk.json("ticket", "show", "1")
        tap.eq(show["status"], "Resolved", f"{case}: the ticket is still resolved automatically")
        tap.eq([(h["field"], h["new"]) for h in show["history"] if h["actor"] == "system"],
               [("followup", f"follow-up 1 not sent: {reason}"), ("followup", f"follow-up 2 not sent: {reason}"),
                ("followup", "auto-resolve"), ("status", "Resolved"),
                ("followup", f"auto-resolve notice not sent: {reason}")],
               f"{case}: the history says what was not sent, and why")
        d.close()

    # SLA reminders on a desk with no agent and no escalate_to: no one to tell.
    desk = Desk()
    desk.deliver(message(subject="Question"), env={"MAILDESK_NOW": iso(t(1, "10:00"))})   # 50% at Wed 2 14:00
    desk.run("tick", env={"MAILDESK_NOW": iso(t(3, "10:00"))}, check=True)
    show = desk.json("ticket", "show", "1")
    tap.eq([(h["field"], h["new"]) for h in show["history"] if h["actor"] == "system"],
           [("sla", "reminder 50% not sent: no agent to tell")],
           "an SLA notice with no one to receive it is recorded as not sent")
    desk.cleanup()


if __name__ == "__main__":
    run_tests(test_breach_reads_right_for_the_escalation, simulate, test_report_due_next_day, test_report_since, test_each_once, test_waiting_again, test_nobody_to_follow_up)
