#!/usr/bin/env python3
"""The command-line contract of DESIGN 3, as an outside test suite runs it:
options as spelled, ticket IDs, exit statuses, JSON types, configuration
lookup and MAILDESK_NOW."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile

from mdtest import MAILDESK, Desk, message, run_tests

NOW = {"MAILDESK_NOW": "2026-12-01T09:30:00+02:00"}


def test_no_such_ticket(tap):
    """A number that names no ticket is EX_NOINPUT (66) for show, set and
    reply alike, says which, and changes nothing."""
    desk = Desk()
    try:
        desk.deliver(message(subject="The only ticket"), env=NOW)
        for args, stdin in ((("ticket", "show", "SUP-99"), None), (("ticket", "show", "99", "--json"), None),
                            (("ticket", "set", "SUP-99", "status=Resolved"), None),
                            (("ticket", "set", "99", "priority=P1"), None),
                            (("ticket", "reply", "SUP-99"), "Hello\n")):
            p = desk.run(*args, input=stdin, env=NOW)
            tap.eq(p.returncode, 66, f"{' '.join(args)}: no such ticket exits 66 (EX_NOINPUT)", p.stderr)
            tap.ok(b"no ticket 99" in p.stderr and not p.stdout, f"{' '.join(args)}: says so on stderr",
                   (p.stdout, p.stderr))
        t = desk.show("SUP-1")
        tap.eq((t["status"], t["priority"], len(t["messages"])), ("Waiting for triage", "P3", 2),
               "the ticket that exists is untouched")
        for args in (("ticket", "show", "SUP-x"), ("ticket", "set", "nope", "priority=P1")):
            p = desk.run(*args)
            tap.eq(p.returncode, 64, f"{' '.join(args)}: an ID that is not a number is a usage error", p.stderr)
    finally:
        desk.cleanup()


def test_reply_reads_stdin(tap):
    """`ticket reply ID` takes its text from standard input, whole: an
    empty input or one over the bound is refused (65), never stored empty
    or cut short."""
    desk = Desk()
    try:
        desk.deliver(message(subject="Question"), env=NOW)
        before = len(desk.show(1)["messages"])
        over = (b"y" * 79 + b"\n") * 13108 + b"z"  # just over 1 MiB
        for what, text in (("an empty standard input", b""), ("blank lines only", b"\n  \n\t\n"),
                           ("a reply over 1 MiB", over)):
            p = desk.run("ticket", "reply", "SUP-1", input=text, env=NOW)
            tap.eq(p.returncode, 65, f"{what} is refused with 65", p.stderr)
            tap.ok(p.stderr.startswith(b"maildesk: the reply is"), f"{what}: the reason on stderr", p.stderr)
        tap.eq(len(desk.show(1)["messages"]), before, "nothing was stored")
        p = desk.run("ticket", "reply", "sup-1", input="We are on it.\n", env=NOW)
        tap.eq(p.returncode, 0, "a reply read from standard input is taken (lower-case key)", p.stderr)
        replies = [m for m in desk.show(1)["messages"] if m["flag"] == "from the command line"]
        tap.eq([m["body"][:40] for m in replies], ["We are on it.\n"], "and stored as written")
    finally:
        desk.cleanup()


def test_operands_left_over(tap):
    """A command that takes no operands refuses one (64, naming it)
    instead of ignoring it: `deliver ADDR`, the sendmail habit, would
    otherwise file the mail by its headers alone."""
    desk = Desk()
    try:
        for args, stdin in ((("deliver", "support@support.example.com"), message()),
                            (("ticket", "list", "Waiting for triage"), None), (("check-config", "extra"), None),
                            (("classify", "extra"), message()), (("serve", "extra"), None),
                            (("tick", "extra"), None), (("sla", "report", "extra"), None),
                            (("outbox", "list", "extra"), None), (("ticket", "show", "1", "2"), None)):
            p = desk.run(*args, input=stdin, timeout=20)
            tap.ok(p.returncode == 64 and p.stderr and not p.stdout,
                   f"{' '.join(args)}: a left-over operand is a usage error (64)", (p.returncode, p.stdout, p.stderr))
        p = desk.run("deliver", "support@support.example.com", input=message())
        tap.ok(b'"support@support.example.com"' in p.stderr and b"--recipient" in p.stderr,
               "deliver names the operand and says where a recipient goes", p.stderr)
        tap.eq(desk.tickets(), [], "nothing was delivered")
    finally:
        desk.cleanup()


def bare_run(args, cwd, input=None, env=None):
    """maildesk with ARGS as given: no -c of the Desk's."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([MAILDESK, *args], cwd=cwd, input=input, capture_output=True, env=full_env, timeout=60)


def test_config_option(tap):
    """-c FILE, -cFILE, --config FILE and --config=FILE all name the
    configuration; without one, ./maildesk.conf is read."""
    desk = Desk()
    elsewhere = tempfile.mkdtemp(prefix="maildesk-cwd-")
    try:
        desk.deliver(message(subject="Configured"), env=NOW)
        for label, args in (("-c FILE", ["-c", desk.conf_path]), ("-cFILE", ["-c" + desk.conf_path]),
                            ("--config FILE", ["--config", desk.conf_path]),
                            ("--config=FILE", ["--config=" + desk.conf_path])):
            p = bare_run(args + ["ticket", "list", "--json"], cwd=elsewhere)
            tap.ok(p.returncode == 0 and [t["key"] for t in json.loads(p.stdout)] == ["SUP-1"],
                   f"{label}: the desk of that file", (p.returncode, p.stdout, p.stderr))
        for flag in ("-c", "--config"):
            p = bare_run([flag], cwd=elsewhere)
            tap.ok(p.returncode == 64 and f"{flag} needs a FILE".encode() in p.stderr,
                   f"{flag} without a file is a usage error that says so", p.stderr)
        p = bare_run(["ticket", "list", "--json"], cwd=desk.dir)
        tap.ok(p.returncode == 0 and b"SUP-1" in p.stdout, "without -c, ./maildesk.conf is read",
               (p.returncode, p.stdout, p.stderr))
        p = bare_run(["check-config"], cwd=desk.dir)
        tap.eq(p.stdout, b"./maildesk.conf: configuration OK\n", "check-config names it")
    finally:
        desk.cleanup()
        shutil.rmtree(elsewhere, ignore_errors=True)


def configured_sysconfdir():
    """$(sysconfdir) of this build, from its Makefile (None if unknown)."""
    try:
        with open(os.path.join(os.environ.get("MD_TOP_BUILDDIR", "."), "Makefile")) as f:
            make = dict(re.findall(r"^(prefix|sysconfdir) = (.*)$", f.read(), re.M))
        return make["sysconfdir"].replace("${prefix}", make["prefix"]).replace("$(prefix)", make["prefix"])
    except (OSError, KeyError):
        return None


LOOKUP = r"""
set -e
t=$1; shift
i=0
for d in "$@"; do
    i=$((i + 1)); mkdir -p "$t/u$i" "$t/w$i"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$t/u$i,workdir=$t/w$i" "$d"
    mkdir -p "$d/maildesk"; cp "$t/conf" "$d/maildesk/maildesk.conf"
done
cd "$t/empty"
"$MAILDESK" check-config
rm /etc/maildesk/maildesk.conf
"$MAILDESK" check-config
cd "$t/desk"
"$MAILDESK" check-config
"""


def test_default_config_order(tap):
    """Without -c: ./maildesk.conf, then /etc/maildesk/maildesk.conf (DESIGN
    3), and only then the build's own sysconfdir.  /etc is mounted over
    in a mount namespace of the test's own, so the machine's is never
    touched; skipped where that is not allowed."""
    sysconf = configured_sysconfdir()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        tap.ok(True, "# SKIP needs root and unshare(1) to mount over /etc")
        return
    desk = Desk()
    t = tempfile.mkdtemp(prefix="maildesk-etc-")
    try:
        os.makedirs(os.path.join(t, "empty"))
        os.makedirs(os.path.join(t, "desk"))
        shutil.copy(desk.conf_path, os.path.join(t, "conf"))
        shutil.copy(desk.conf_path, os.path.join(t, "desk", "maildesk.conf"))
        dirs = ["/etc"] + ([sysconf] if sysconf and sysconf != "/etc" and os.path.isdir(sysconf) else [])
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", LOOKUP, "sh", t, *dirs],
                           capture_output=True, env=dict(os.environ, MAILDESK=MAILDESK), timeout=60)
        if p.returncode != 0 and b"mount" in p.stderr and not p.stdout:
            tap.ok(True, f"# SKIP cannot mount over /etc here: {p.stderr.decode(errors='replace').strip()}")
            return
        lines = p.stdout.decode().splitlines()
        tap.eq(lines[:1], ["/etc/maildesk/maildesk.conf: configuration OK"],
               "without ./maildesk.conf, /etc/maildesk/maildesk.conf is read first", p.stderr)
        if len(dirs) > 1:
            tap.eq(lines[1:2], [f"{sysconf}/maildesk/maildesk.conf: configuration OK"],
                   "the build's sysconfdir comes after it")
        tap.eq(lines[-1:], ["./maildesk.conf: configuration OK"], "./maildesk.conf comes before /etc")
    finally:
        desk.cleanup()
        shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    run_tests(test_no_such_ticket, test_reply_reads_stdin, test_operands_left_over, test_config_option, test_default_config_order)
