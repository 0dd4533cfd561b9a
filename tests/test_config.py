#!/usr/bin/env python3
"""check-config reports every problem with file:line (issue 2)."""
import os
import re

from mdtest import TOP_SRCDIR, Desk, message, run_tests


def test_defaults(tap):
    desk = Desk()
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "the test desk's configuration is valid")
    tap.ok(b"configuration OK" in p.stdout, "and says so", p.stdout)
    example = os.path.join(TOP_SRCDIR, "contrib", "maildesk.conf.example")
    with open(example) as f:
        text = f.read()
    text = text.replace("data_dir = ./var", f"data_dir = {desk.dir}/var")
    text = text.replace("rules = filters/default.rules", f"rules = {TOP_SRCDIR}/filters/default.rules")
    text = text.replace("templates = templates/", f"templates = {TOP_SRCDIR}/templates/")
    desk.write_conf(text)
    p = desk.run("check-config")
    tap.ok(p.returncode == 0, "contrib/maildesk.conf.example is valid", p.stderr)
    desk.cleanup()


def test_every_problem(tap):
    desk = Desk()
    conf = f"""[desk]
data_dir = {desk.dir}/var
rules = {desk.dir}/bad.rules
templates = {TOP_SRCDIR}/templates/
colour = blue
agent_token = sometimes
[lmtp]
max_message_size = lots
[sla]
P1.first_response = 4x
remind_at = 50%, 150%
[calendar]
timezone = Mars/Olympus
hours = Mon-Fri 25:00-17:00
[followup]
reopen_window = banana
[nonsense]
"""
    desk.write_conf(conf)
    with open(os.path.join(desk.dir, "bad.rules"), "w") as f:
        f.write("rule broken\n  subject /unclosed(/\n  set priority P9\n")
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.eq(p.returncode, 78, "problems exit with EX_CONFIG")
    path = desk.conf_path
    for line, what in [(5, "unknown key \"colour\""), (6, "agent_token"), (8, "max_message_size"),
                       (10, "P1.first_response"), (11, "remind_at"), (16, "reopen_window"),
                       (17, "unknown group [nonsense]")]:
        tap.ok(f"{path}:{line}: " in err and what in err, f"line {line}: {what}", err)
    tap.ok(f"{desk.dir}/bad.rules:2: " in err, "a bad pattern is reported with the rules file's line", err)
    tap.ok(f"{desk.dir}/bad.rules:3: " in err, "a bad priority too", err)
    tap.ok("Mars/Olympus" in err or "timezone" in err, "an unknown zone is reported", err)
    p = desk.deliver(message())
    tap.eq(p.returncode, 75, "deliver on a broken configuration says retry later, keeping the mail")
    desk.cleanup()


def test_bad_templates(tap):
    import shutil
    desk = Desk()
    tdir = os.path.join(desk.dir, "templates")
    shutil.copytree(os.path.join(TOP_SRCDIR, "templates"), tdir)
    with open(os.path.join(tdir, "ack.tmpl"), "w") as f:
        f.write("Subject: Hi {{ticket.key}}\n\nHello {{customer.shoe_size}}\n{{#if due}}unclosed\n")
    text = open(desk.conf_path).read().replace(f"templates = {TOP_SRCDIR}/templates/", f"templates = {tdir}/")
    desk.write_conf(text)
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.eq(p.returncode, 78, "a broken template fails check-config")
    tap.ok(f"{tdir}/ack.tmpl:3:" in err and "customer.shoe_size" in err, "an unknown variable, with file:line", err)
    tap.ok("ack.tmpl" in err and "if" in err, "an unclosed {{#if}} too", err)
    desk.cleanup()


def test_ack_without_missing_warns(tap):
    """With intake forms, the acknowledgement is where customers are asked
    for the fields their form requires: an ack template without
    {{missing}} is a warning naming the file (exit status still 0)."""
    import shutil
    forms = os.path.join(TOP_SRCDIR, "filters", "forms.conf")
    desk = Desk(forms=forms)
    p = desk.run("check-config")
    tap.ok(p.returncode == 0 and b"warning" not in p.stderr, "the shipped ack template asks: no warning",
           p.stderr.decode())
    tdir = os.path.join(desk.dir, "templates")
    shutil.copytree(os.path.join(TOP_SRCDIR, "templates"), tdir)
    ack = open(os.path.join(tdir, "ack.tmpl")).read()
    start, end = ack.index("{{#if missing}}"), ack.index("{{/if}}", ack.index("{{form}}")) + len("{{/if}}")
    # {{#if missing}} alone shows no field: still a warning
    ack = ack[:start] + "{{#if missing}}\nSome details are missing; an agent will ask.\n{{/if}}" + ack[end:]
    with open(os.path.join(tdir, "ack.tmpl"), "w") as f:
        f.write(ack)
    text = open(desk.conf_path).read().replace(f"templates = {TOP_SRCDIR}/templates/", f"templates = {tdir}/")
    desk.write_conf(text)
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.eq(p.returncode, 0, "a warning alone leaves the exit status 0")
    tap.ok(b"configuration OK" in p.stdout, "and the configuration is still valid", p.stdout)
    tap.ok(f"{tdir}/ack.tmpl: warning: " in err and "{{missing}}" in err and forms in err,
           "a warning names the ack template, {{missing}} and the forms file", err)
    tap.eq(len(err.splitlines()), 1, "one line", err)
    with open(os.path.join(desk.dir, "bad.rules"), "w") as f:
        f.write("rule broken\n  subject /unclosed(/\n")
    desk.write_conf(text.replace(f"rules = {TOP_SRCDIR}/filters/default.rules", f"rules = {desk.dir}/bad.rules"))
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.ok(p.returncode == 78 and f"{desk.dir}/bad.rules:2: " in err and "ack.tmpl: warning: " in err,
           "with an error too: both printed, EX_CONFIG", err)
    desk.write_conf(text.replace(f"forms = {forms}", "forms = "))
    p = desk.run("check-config")
    tap.ok(p.returncode == 0 and not p.stderr, "without forms there is nothing to ask: no warning", p.stderr.decode())
    desk.cleanup()


def test_template_without_resolve_link_warns(tap):
    """DESIGN 7: every notification carries the link that marks the
    ticket resolved.  A template that drops {{resolve_link}} is a
    warning naming it; the shipped ones carry it (a `list`, in each of
    its {{tickets}})."""
    import shutil
    desk = Desk()
    p = desk.run("check-config")
    tap.ok(p.returncode == 0 and not p.stderr, "the shipped templates: no warning", p.stderr.decode())
    tdir = os.path.join(desk.dir, "templates")
    shutil.copytree(os.path.join(TOP_SRCDIR, "templates"), tdir)
    path = os.path.join(tdir, "agent-reply.tmpl")
    text = open(path).read()
    with open(path, "w") as f:
        f.write("\n".join(l for l in text.splitlines() if "resolve_link" not in l) + "\n")
    conf = open(desk.conf_path).read().replace(f"templates = {TOP_SRCDIR}/templates/", f"templates = {tdir}/")
    desk.write_conf(conf)
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.ok(p.returncode == 0 and f"{path}: warning: " in err and "{{resolve_link}}" in err,
           "agent-reply without the link: a warning naming it, exit 0", err)
    tap.eq(len(err.splitlines()), 1, "only that template", err)
    desk.cleanup()


def test_problems_in_file_order(tap):
    """check-config prints its problems by file (the configuration first,
    then the others by name) and line, whichever check found them, and
    quotes what it quotes in double quotes."""
    import shutil
    desk = Desk()
    tdir = os.path.join(desk.dir, "templates")
    shutil.copytree(os.path.join(TOP_SRCDIR, "templates"), tdir)
    with open(os.path.join(tdir, "ack.tmpl"), "w") as f:
        f.write("Subject: Hi {{nope}}\n\nHello {{customer.shoe_size}}\n")
    with open(os.path.join(tdir, "status-change.tmpl"), "w") as f:
        f.write("Subject: x\n\n{{also.bad}}\n")
    rules = os.path.join(desk.dir, "z.rules")
    with open(rules, "w") as f:
        f.write("rule broken\n  subject /unclosed(/\n  set priority P9\nrule two\n  from /x/\n  set category\n")
    desk.write_conf(f"""[desk]
data_dir = {desk.dir}/var
rules = {rules}
templates = {tdir}/
agent_token = sometimes
colour = blue
[sla]
P1.first_response = 4x
remind_at = 50%, 150%
[calendar]
timezone = Mars/Olympus
[lmtp]
max_message_size = lots
[followup]
reopen_window = banana
[nonsense]
""")
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.eq(p.returncode, 78, "the problems fail check-config")
    lines = err.splitlines()
    where = []
    for line in lines:
        m = re.match(r"(.+?):(\d+): ", line)
        where.append((m.group(1), int(m.group(2))) if m else (None, 0))
    tap.ok(all(f for f, _ in where), "every problem has its file:line", err)
    files = [f for f, _ in where]
    order = [desk.conf_path, os.path.join(tdir, "ack.tmpl"), os.path.join(tdir, "status-change.tmpl"), rules]
    tap.eq(sorted(set(files)), sorted(order), "the configuration's, the templates' and the rules' problems are all there",
           err)
    tap.eq(where, sorted(where, key=lambda w: (order.index(w[0]) if w[0] in order else 99, w[1])),
           "by file, the configuration first, and by line", err)
    conf_lines = [n for f, n in where if f == desk.conf_path]
    tap.eq(conf_lines, [5, 6, 8, 9, 11, 13, 15, 16], "the configuration's from its first line to its last", err)
    tap.eq([n for f, n in where if f == rules], [2, 3, 6], "the rules file's in line order", err)
    tap.ok(not re.search(r"'[^'\s]+'|[\u201c\u201d]", err), "no value is quoted in single or curly quotes", err)
    for quoted in ('"sometimes"', '"colour"', '"4x"', '"Mars/Olympus"', '"lots"', '"banana"', '"P9"',
                   '"set category"', '"nope"', '"customer.shoe_size"', '"also.bad"'):
        tap.ok(quoted in err, f"{quoted} in double quotes", err)
    desk.cleanup()


def test_same_mailbox_twice(tap):
    """Two [imap.NAME] sections polling one mailbox would race each other
    for every message and share one saved last UID: check-config and
    serve refuse it, naming both sections and their lines."""
    import subprocess
    from mdtest import free_port
    desk = Desk()
    port = free_port()
    base = open(desk.conf_path).read() + f"[lmtp]\nlisten = 127.0.0.1:{port}\n"

    def imap(name, url, user="support"):
        return f"[imap.{name}]\n# {name}\nurl = {url}\nuser = {user}\npassword_file = {desk.dir}/secret\n"

    def line_of(text, name):
        lines = text.splitlines()
        start = lines.index(f"[imap.{name}]")
        return next(i + 1 for i in range(start, len(lines)) if lines[i].startswith("url = "))

    cases = [("the same url", "imaps://imap.example.com/INBOX", "imaps://imap.example.com/INBOX"),
             ("the host's case, the default port and INBOX's case", "imaps://imap.example.com/INBOX",
              "imaps://IMAP.Example.com:993/inbox"),
             ("imap:// and imaps:// on their default ports", "imap://imap.example.com/INBOX",
              "imaps://imap.example.com")]
    for what, first, second in cases:
        text = base + imap("support", first) + imap("copy", second)
        desk.write_conf(text)
        p = desk.run("check-config")
        err = p.stderr.decode()
        path = desk.conf_path
        tap.eq(p.returncode, 78, f"check-config refuses two sections polling one mailbox ({what})")
        tap.ok(f"{path}:{line_of(text, 'copy')}: [imap.copy] polls the same mailbox as [imap.support] "
               f"({path}:{line_of(text, 'support')})" in err, "naming both sections, with their lines", err)
    text = base + imap("support", "imaps://imap.example.com/INBOX") + imap("copy", "imaps://imap.example.com:993/")
    desk.write_conf(text)
    p = desk.run("check-config")
    tap.ok("share one saved last UID" in p.stderr.decode(), "one url spelled two ways: says they would share the "
           "saved UID", p.stderr)
    try:
        p = desk.run("serve", timeout=20)
        rc, err = p.returncode, p.stderr.decode() + p.stdout.decode()
    except subprocess.TimeoutExpired:
        rc, err = "still running after 20 s", ""
    tap.eq(rc, 78, "serve refuses to start on it (EX_CONFIG)")
    tap.ok("[imap.copy] polls the same mailbox as [imap.support]" in err, "with the same message", err)
    for what, first, second in [("another mailbox", "imaps://imap.example.com/INBOX",
                                 "imaps://imap.example.com/Support"),
                                ("another port", "imaps://imap.example.com/INBOX", "imaps://imap.example.com:1993/"),
                                ("another host", "imaps://imap.example.com/INBOX", "imaps://mail.example.com/INBOX")]:
        desk.write_conf(base + imap("support", first) + imap("other", second))
        p = desk.run("check-config")
        tap.eq(p.returncode, 0, f"{what} is another mailbox", p.stderr)
    desk.write_conf(base + imap("support", "imaps://imap.example.com/INBOX") +
                    imap("other", "imaps://imap.example.com/INBOX", user="sales"))
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "another user's INBOX is another mailbox", p.stderr)
    text = base + imap("nohost", "imaps:///INBOX")
    desk.write_conf(text)
    p = desk.run("check-config")
    tap.ok(f"{desk.conf_path}:{line_of(text, 'nohost')}: [imap.nohost] url names no host" in p.stderr.decode(),
           "a url without a host is reported at its line", p.stderr)
    desk.cleanup()


def test_classify_explain(tap):
    desk = Desk()
    p = desk.run("classify", "--explain", input=message(subject="Production is down",
                                                          body="Our shop is down, customers cannot order."))
    out = p.stdout.decode()
    tap.eq(p.returncode, 0, "classify reads a message from stdin")
    tap.ok("priority: P1" in out, "an outage is P1", out)
    tap.ok("fired:" in out and "default.rules:" in out, "--explain names each rule that fired with file:line", out)
    counts = re.search(r"^body patterns: (\d+) run, (\d+) skipped", out, re.M)
    tap.ok(counts and int(counts.group(1)) > 0 and int(counts.group(2)) > 0,
           "--explain counts the body patterns run and skipped by the prefilter", out)
    p = desk.run("classify", input=message(subject="Production is down",
                                           body="Our shop is down, customers cannot order."))
    out = p.stdout.decode()
    tap.ok(re.search(r"^fired: p1-outage \(\S*default\.rules:\d+\)$", out, re.M),
           "without --explain classify still names each rule that fired (DESIGN 3), with file:line", out)
    tap.ok("matched" not in out and "body patterns" not in out, "but not why", out)
    p = desk.run("classify", input=message(subject="Feature request: dark mode", body="It would be nice to have."))
    tap.ok("priority: ER" in p.stdout.decode(), "a feature request is ER", p.stdout.decode())
    p = desk.run("classify", input=message(subject="Hello", body="Just saying hi."))
    tap.ok("no rule fired" in p.stdout.decode(), "and says so when none did", p.stdout.decode())
    tap.ok(not os.path.exists(os.path.join(desk.dir, "var", "maildesk.db")), "classify stores nothing")
    desk.cleanup()


def test_service_sections(tap):
    """check-config validates [smtp], [lmtp] listen and every [imap.NAME]
    (what serve, fetch and outbox flush would refuse), a value that kept
    a trailing comment, and names the key of a rules or templates path
    that cannot be read: every problem with file:line (DESIGN 3, 4)."""
    desk = Desk()
    conf = f"""[desk]
domain = support.example.com # our domain
data_dir = {desk.dir}/var
rules = {desk.dir}/missing.rules
templates = {desk.dir}/no-templates/
forms =
[lmtp]
listen = 127.0.0.1:2424, localhost, unix:relative.sock
[smtp]
url = http://127.0.0.1:25
user = desk
from = not an address
[imap.support]
url = imaps:///INBOX
user = support
password_file = /nonexistent/secret
poll_interval = often
keepalive = 3h
"""
    desk.write_conf(conf)
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.eq(p.returncode, 78, "problems exit with EX_CONFIG", err)
    path = desk.conf_path
    for line, what in [(2, "domain"), (4, "missing.rules"), (5, "no-templates"), (8, "localhost"),
                       (8, "relative.sock"), (10, "http://127.0.0.1:25"), (11, "password_file"),
                       (12, "not an address"), (14, "host"), (17, "poll_interval"),
                       (18, "keepalive")]:
        tap.ok(any(l.startswith(f"{path}:{line}: ") and what in l for l in err.splitlines()),
               f"line {line}: {what}", err)
    good = conf.replace(" # our domain", "").replace(f"{desk.dir}/missing.rules", f"{TOP_SRCDIR}/filters/default.rules")
    good = good.replace(f"{desk.dir}/no-templates/", f"{TOP_SRCDIR}/templates/")
    good = good.replace("127.0.0.1:2424, localhost, unix:relative.sock", "127.0.0.1:2424, [::1]:2424, unix:/run/md.sock")
    good = good.replace("http://", "smtp://").replace("user = desk\n", "").replace("not an address", "Desk <d@x.example>")
    good = good.replace("imaps:///INBOX", "imaps://imap.example.com/INBOX").replace("often", "5m").replace("3h", "2m")
    desk.write_conf(good)
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "the same sections set right pass", p.stderr.decode())
    desk.cleanup()


def test_design_variables_everywhere(tap):
    """DESIGN 8 names {{ticket.key}}, {{ticket.subject}}, {{status}} and
    {{due}} as what templates substitute: any event's template may use
    them (status: the ticket's status; due: its first-response deadline
    unless the mail is about another)."""
    import email
    import email.policy
    import shutil
    from mdtest import Catcher
    catcher = Catcher().start()
    desk = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n")
    tdir = os.path.join(desk.dir, "templates")
    shutil.copytree(os.path.join(TOP_SRCDIR, "templates"), tdir)
    for event in ("ack", "customer-reply"):
        with open(os.path.join(tdir, event + ".tmpl"), "w") as f:
            f.write("Subject: {{ticket.subject}}\n\n{{ticket.key}} is {{status}}, answer due {{due}}.\n")
    text = open(desk.conf_path).read().replace(f"templates = {TOP_SRCDIR}/templates/", f"templates = {tdir}/")
    desk.write_conf(text)
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "{{status}} and {{due}} pass check-config in the ack and customer-reply templates",
           p.stderr.decode())
    desk.run("agent", "add", "jane@support.example.com", check=True)
    env = {"MAILDESK_NOW": "2026-12-04T16:00:00+02:00"}
    desk.deliver(message(subject="Help"), env=env)
    desk.run("outbox", "flush", env=env)
    bodies = {tuple(e["rcpt_tos"]): email.message_from_bytes(raw, policy=email.policy.default).get_content()
              for e, raw in catcher.messages()}
    want = "SUP-1 is Waiting for triage, answer due Wed 09 Dec 2026 16:00 EET."
    for rcpt in ("alice@customer.example", "jane@support.example.com"):
        tap.ok(want in bodies.get((rcpt,), ""), f"substituted in the mail to {rcpt}", bodies)
    catcher.cleanup()
    desk.cleanup()


def test_addresses_with_trailing_comment(tap):
    """agents and escalate_to are addresses mail goes to: a trailing
    "# note" (kept in the value) or a name would make mail to them go
    nowhere, so every command refuses them at their line."""
    desk = Desk()
    base = open(desk.conf_path).read()
    conf = base.replace("[desk]\n", "[desk]\nagents = jane@support.example.com, bob@support.example.com # night shift\n", 1)
    conf += "[sla]\nescalate_to = Team Lead <lead@support.example.com>\n"
    desk.write_conf(conf)
    lines = conf.splitlines()
    err = desk.run("check-config").stderr.decode()
    for key, bad in (("agents", "bob@support.example.com # night shift"),
                     ("escalate_to", "Team Lead <lead@support.example.com>")):
        line = next(i + 1 for i, l in enumerate(lines) if l.startswith(key + " ="))
        tap.ok(any(l.startswith(f"{desk.conf_path}:{line}: ") and bad in l for l in err.splitlines()),
               f"{key} at line {line} is reported there", err)
    p = desk.deliver(message(subject="Help"))
    tap.eq(p.returncode, 75, "deliver refuses the configuration too, as a temporary failure (the MTA keeps the mail)",
           p.stderr)
    good = conf.replace(" # night shift", "").replace("Team Lead <lead@support.example.com>",
                                                      "lead@support.example.com, deputy@support.example.com")
    desk.write_conf(good)
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "bare addresses pass (escalate_to a list of them)", p.stderr.decode())
    desk.cleanup()


def test_file_names_with_trailing_comment(tap):
    """password_file and ca_file keep a trailing "# note" in the value,
    and check-config reads no password file: it reports such a name at
    its line.  The shipped example, uncommented, has none."""
    desk = Desk()
    base = open(desk.conf_path).read()
    conf = base + ("[smtp]\nuser = desk\npassword_file = /etc/maildesk/smtp.secret   # mode 0600\n"
                   "[imap.support]\nurl = imaps://imap.example.com/INBOX\nuser = support\n"
                   "password_file = /etc/maildesk/imap.secret\nca_file = /etc/maildesk/ca.pem\t# private CA\n")
    desk.write_conf(conf)
    lines = conf.splitlines()
    err = desk.run("check-config").stderr.decode()
    for key, bad in (("password_file", "smtp.secret   # mode 0600"), ("ca_file", "ca.pem\t# private CA")):
        line = next(i + 1 for i, l in enumerate(lines) if l.startswith(key + " =") and bad in l)
        tap.ok(any(l.startswith(f"{desk.conf_path}:{line}: ") and "trailing comment" in l for l in err.splitlines()),
               f"{key} at line {line} is reported there", err)
    tap.eq(len([l for l in err.splitlines() if "trailing comment" in l]), 2, "the clean password_file is not", err)
    example = open(os.path.join(TOP_SRCDIR, "contrib", "maildesk.conf.example")).read()
    desk.write_conf(re.sub(r"\n#([\w\[])", r"\n\1", example).replace("data_dir = ./var", f"data_dir = {desk.dir}/var"))
    err = desk.run("check-config").stderr.decode()
    tap.eq([l for l in err.splitlines() if "trailing comment" in l], [], "the example with every key uncommented", err)
    desk.cleanup()


def test_data_dir_with_trailing_comment(tap):
    """data_dir (and rules, templates, forms) keep a trailing "# note"
    too: refused at its line, by check-config and by every command,
    rather than a directory made with the note in its name."""
    desk = Desk()
    conf = open(desk.conf_path).read()
    bad = re.sub(r"(?m)^data_dir = (.*)$", r"data_dir = \1   # on the big disk", conf)
    desk.write_conf(bad)
    line = next(i + 1 for i, l in enumerate(bad.splitlines()) if l.startswith("data_dir ="))
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.ok(p.returncode == 78 and f"{desk.conf_path}:{line}: data_dir:" in err and "trailing comment" in err,
           "check-config: data_dir's comment reported at its line", err)
    p = desk.run("ticket", "list")
    tap.eq(p.returncode, 78, "ticket list refuses the configuration", p.stderr)
    tap.eq([n for n in os.listdir(desk.dir) if "#" in n], [], "and no directory named after the note")
    desk.cleanup()


def test_help(tap):
    """`maildesk COMMAND --help` prints the command's usage on stdout and
    exits 0, for the commands with verbs as for the others; a missing verb
    is still a usage error on stderr."""
    desk = Desk()
    for cmd, verb in (("ticket", "ticket list"), ("outbox", "outbox flush"), ("sla", "sla report"),
                      ("agent", "agent add"), ("org", "org add")):
        p = desk.run(cmd, "--help")
        tap.ok(p.returncode == 0 and verb in p.stdout.decode(), f"{cmd} --help: usage on stdout, exit 0",
               (p.returncode, p.stdout, p.stderr))
    for args in (("ticket", "list"), ("tick",), ("sla", "report")):
        out = desk.run(*args, "--help").stdout.decode()
        tap.ok(re.search(rf"^  maildesk \[OPTION[^]]*\] {' '.join(args)}$", out, re.M),
               f"{' '.join(args)} --help names maildesk", out)
    for cmd in ("ticket", "outbox", "sla"):
        p = desk.run(cmd)
        tap.ok(p.returncode == 64 and b"Usage" in p.stderr and not p.stdout, f"{cmd} alone: usage on stderr, exit 64",
               (p.returncode, p.stdout, p.stderr))
    desk.cleanup()


def test_byte_order_mark(tap):
    """A maildesk.conf saved with a byte order mark (Windows editors)
    reads as without it, as rules, forms and templates do."""
    desk = Desk()
    text = open(desk.conf_path).read()
    with open(desk.conf_path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + text.encode())
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "check-config passes", p.stderr.decode())
    p = desk.deliver(message(subject="BOM"))
    tap.eq(p.returncode, 0, "and deliver works", p.stderr)
    desk.cleanup()


def test_url_with_trailing_comment(tap):
    """GKeyFile has no trailing comments (DESIGN 4): "url = ... # note"
    keeps the note in the url.  GUri takes "imaps://host/INBOX # main"
    apart as mailbox "INBOX " (and "imaps://host # main" as host
    "host "; a query or fragment names no mailbox either), libcurl refuses "smtp://host:25 # MTA" on every message:
    none can ever work, so check-config reports them at their lines and
    the commands that use them refuse to start instead of retrying
    forever."""
    desk = Desk()
    base = open(desk.conf_path).read()
    conf = base + f"""[smtp]
url = smtp://127.0.0.1:25 # the local MTA
[imap.support]
url = imaps://imap.example.com/INBOX # main mailbox
user = support
password_file = {desk.dir}/secret
[imap.sales]
url = imaps://imap.example.com # sales
user = sales
password_file = {desk.dir}/secret
[imap.query]
url = imaps://imap.example.com/Support?x
user = query
password_file = {desk.dir}/secret
"""
    desk.write_conf(conf)
    lines = conf.splitlines()
    p = desk.run("check-config")
    err = p.stderr.decode()
    tap.eq(p.returncode, 78, "check-config refuses them", err)
    for marker in ("# the local MTA", "# main mailbox", "# sales", "Support?x"):
        line = next(i + 1 for i, l in enumerate(lines) if l.startswith("url = ") and marker in l)
        tap.ok(any(l.startswith(f"{desk.conf_path}:{line}: ") and "url" in l for l in err.splitlines()),
               f"the url at line {line} ({marker.strip()}) is reported there", err)
    smtp_only = base + "[smtp]\nurl = smtp://127.0.0.1:25 # the local MTA\n"
    desk.write_conf(smtp_only)
    desk.deliver(message(subject="Help"))
    p = desk.run("outbox", "flush")
    tap.eq(p.returncode, 78, "outbox flush refuses such a url at start, not message by message", p.stderr)
    desk.write_conf(base + "[smtp]\nurl = smtp://127.0.0.1:25\n[imap.support]\n"
                    f"url = imaps://imap.example.com/Sent%20Items\nuser = support\npassword_file = {desk.dir}/secret\n")
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "a blank written as %20 in a mailbox name is fine", p.stderr)
    desk.write_conf(base + "[smtp]\nurl = smtp://127.0.0.1:25\n[imap.support]\n"
                    f"url = imaps://imap.example.com/Support Team\nuser = support\npassword_file = {desk.dir}/secret\n")
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, "and so is one written as it is inside the name (it worked before)", p.stderr)
    desk.cleanup()


def test_reading_while_rules_are_broken(tap):
    """A mistake in the rules (being mended while serve runs the last good
    set) stops what classifies or sends, not what only reads."""
    desk = Desk()
    try:
        tap.eq(desk.deliver(message(subject="Export fails")).returncode, 0, "a ticket first")
        rules = os.path.join(desk.dir, "broken.rules")
        with open(rules, "w") as f:
            f.write("rule Broken\n  match subject /(unclosed/\n  set category Bug\n")
        with open(desk.conf_path) as f:
            conf = f.read()
        desk.write_conf(re.sub(r"(?m)^rules = .*$", f"rules = {rules}", conf))
        for args in (("ticket", "list"), ("ticket", "show", "1"), ("outbox", "list"), ("sla", "report")):
            p = desk.run(*args)
            tap.ok(p.returncode == 0 and p.stdout, f"{' '.join(args)} still works", p.stderr.decode())
        p = desk.run("ticket", "set", "1", "priority=P1")
        tap.ok(p.returncode == 78 and b"broken.rules" in p.stderr, "ticket set, which mails, names the mistake",
               p.stderr.decode())
        p = desk.deliver(message(subject="Another"))
        tap.eq(p.returncode, 75, "deliver asks the MTA to retry")
    finally:
        desk.cleanup()


if __name__ == "__main__":
    run_tests(test_defaults, test_every_problem, test_bad_templates, test_ack_without_missing_warns,
              test_template_without_resolve_link_warns,
              test_problems_in_file_order, test_same_mailbox_twice, test_classify_explain,
              test_service_sections, test_design_variables_everywhere, test_addresses_with_trailing_comment,
              test_file_names_with_trailing_comment, test_data_dir_with_trailing_comment,
              test_url_with_trailing_comment, test_byte_order_mark, test_help, test_reading_while_rules_are_broken)
