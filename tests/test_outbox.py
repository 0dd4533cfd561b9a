#!/usr/bin/env python3
"""End to end: `maildesk outbox flush|list` against a real SMTP server on
loopback (tests/smtp_catcher.py): plain, STARTTLS with a private CA and
AUTH, SMTPS; outages, 4xx and 5xx; the JSON of `outbox list` (issue 4).

Nothing in the product queues mail yet, so the rows are seeded the way
md_outbox_enqueue writes them: the raw message in the spool under its
SHA-256, one outbox row per recipient (tests/test-outbox.c covers
md_outbox_enqueue itself)."""
import collections
import hashlib
import os
import sqlite3
import subprocess
import time

from mdtest import MAILDESK, Catcher, Desk, message, run_tests, self_signed_cert

NOW = "2026-12-01T08:00:00Z"
T0 = 1796112000
LIST_FIELDS = {"id", "ticket", "kind", "from", "to", "state", "attempts", "next_attempt_at", "last_error",
               "created_at", "sent_at", "message_id"}
RAW = (b"From: Test Support <support@support.example.com>\r\nTo: alice@customer.example\r\n"
       b"Subject: [SUP-1] We got your message\r\nMessage-ID: <ack1@support.example.com>\r\n"
       b"Auto-Submitted: auto-replied\r\n\r\nHello,\r\n.leading dot\r\nwe are on it.\r\n")


def smtp_desk(catcher, extra=""):
    scheme = "smtps" if "--smtps" in catcher.options else "smtp"
    return Desk(extra_conf=f"[smtp]\nurl = {scheme}://127.0.0.1:{catcher.port}\n"
                           f"from = support@support.example.com\n{extra}")


def seed(desk, rcpts, raw=RAW, ticket=None, kind="ack", msgid="ack1@support.example.com"):
    """Queues RAW for RCPTS as md_outbox_enqueue does."""
    desk.run("outbox", "list", check=True)  # creates the database
    sha = hashlib.sha256(raw).hexdigest()
    d = os.path.join(desk.dir, "var", "spool", "raw", sha[:2])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, sha), "wb") as f:
        f.write(raw)
    db = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"))
    with db:
        for r in rcpts:
            db.execute("INSERT INTO outbox (ticket_id, kind, mail_from, rcpt_to, message_id, raw_sha256, "
                       "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (ticket, kind, "support@support.example.com", r, msgid, sha, T0, T0))
    db.close()


def iso(seconds):
    import datetime
    return datetime.datetime.fromtimestamp(T0 + seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def flush(desk, seconds=0):
    return desk.run("outbox", "flush", env={"MAILDESK_NOW": iso(seconds)})


def test_list_and_flush(tap):
    catcher = Catcher().start()
    desk = smtp_desk(catcher)
    # auto-submitted, so that the desk itself queues no acknowledgement
    desk.deliver(message(subject="Printer on fire", headers=["Auto-Submitted: auto-generated"]),
                 env={"MAILDESK_NOW": NOW})
    seed(desk, ["alice@customer.example"], ticket=1)
    seed(desk, ["agents@support.example.com"], kind="customer-reply")
    rows = desk.json("outbox", "list")
    tap.eq(len(rows), 2, "list shows both rows")
    tap.eq(set(rows[0]), LIST_FIELDS, "list JSON fields")
    tap.eq((rows[0]["id"], rows[0]["ticket"], rows[0]["kind"], rows[0]["to"], rows[0]["state"]),
           (1, "SUP-1", "ack", "alice@customer.example", "queued"), "a queued row")
    tap.eq((rows[0]["attempts"], rows[0]["next_attempt_at"], rows[0]["created_at"], rows[0]["sent_at"],
            rows[0]["last_error"], rows[0]["message_id"]),
           (0, NOW, NOW, None, None, "ack1@support.example.com"), "times in ISO 8601 UTC, unset ones null")
    tap.eq(rows[1]["ticket"], None, "a row without a ticket has ticket null")

    p = flush(desk, 5)
    tap.eq((p.returncode, p.stdout.decode().strip()), (0, "sent 2, deferred 0, failed 0"), "flush sends both")
    got = catcher.messages()
    tap.eq(len(got), 2, "the server received two messages")
    tap.eq(got[0][1], RAW, "delivered byte for byte")
    tap.eq((got[0][0]["mail_from"], got[0][0]["rcpt_tos"]),
           ("support@support.example.com", ["alice@customer.example"]), "envelope")
    rows = desk.json("outbox", "list")
    tap.eq([(r["state"], r["attempts"], r["sent_at"], r["next_attempt_at"]) for r in rows],
           [("sent", 1, iso(5), None)] * 2, "rows marked sent with sent_at")
    p = flush(desk, 99999)
    tap.eq((p.returncode, p.stdout.decode().strip()), (0, "sent 0, deferred 0, failed 0"), "a second flush sends nothing")
    tap.eq(len(catcher.messages()), 2, "nothing arrived twice")
    text = desk.run("outbox", "list", check=True).stdout.decode()
    tap.ok("alice@customer.example" in text and "sent" in text, "the text list shows the rows", text)
    tap.eq(len(desk.json("outbox", "list", "--state", "queued")), 0, "--state filters")
    catcher.cleanup()
    desk.cleanup()


def test_outage_and_failures(tap):
    catcher = Catcher()  # not started yet: the port is closed
    desk = smtp_desk(catcher)
    seed(desk, ["alice@customer.example", "bob@customer.example"])
    p = flush(desk)
    tap.eq(p.returncode, 75, "flush exits 75 while the server is down")
    rows = desk.json("outbox", "list")
    tap.eq([(r["state"], r["attempts"], r["next_attempt_at"]) for r in rows], [("queued", 1, iso(60))] * 2,
           "mail stays queued, retried in a minute")
    tap.ok(all("onnect" in (r["last_error"] or "") for r in rows), "the connection error is recorded",
           [r["last_error"] for r in rows])
    text = desk.run("outbox", "list").stdout.decode()
    tap.ok(rows[0]["last_error"] in text, "the text list shows the error", text)

    catcher.start()
    catcher.reply("RCPT bob@customer.example 550 5.1.1 <bob@customer.example>: Recipient address rejected\n")
    p = flush(desk, 60)
    tap.eq((p.returncode, p.stdout.decode().strip()), (0, "sent 1, deferred 0, failed 1"),
           "back up: one delivered, one refused for good (exit 0: nothing left to retry)")
    rows = desk.json("outbox", "list")
    tap.eq((rows[1]["state"], rows[1]["last_error"]),
           ("failed", "550 5.1.1 <bob@customer.example>: Recipient address rejected"), "5xx recorded with the reply")
    tap.eq(len(catcher.messages()), 1, "delivered exactly once")

    seed(desk, ["carol@customer.example"], msgid="ack2@support.example.com")
    catcher.reply("RCPT carol@customer.example 421 4.3.2 System shutting down\n")
    p = flush(desk, 100)
    tap.eq(p.returncode, 75, "4xx: exit 75")
    carol = desk.json("outbox", "list")[2]
    tap.eq((carol["state"], carol["last_error"]), ("queued", "421 4.3.2 System shutting down"), "4xx recorded")

    # The operator fixes what refused bob, and queues his mail again.
    catcher.reply("")
    tap.eq(desk.run("outbox", "retry", "abc").returncode, 64, "retry: an id must be a number")
    p = desk.run("outbox", "retry", "999", env={"MAILDESK_NOW": iso(200)})
    tap.eq(p.stdout.decode().strip(), "queued again 0", "retry of an id that is not failed changes nothing")
    p = desk.run("outbox", "retry", env={"MAILDESK_NOW": iso(200)})
    tap.eq((p.returncode, p.stdout.decode().strip()), (0, "queued again 1"), "retry queues every failed row")
    p = flush(desk, 200)
    tap.ok("sent 2" in p.stdout.decode(), "and the next flush sends it (with carol's)", p.stdout)
    tap.eq(sorted(r for env, raw in catcher.messages() for r in env["rcpt_tos"]),
           ["alice@customer.example", "bob@customer.example", "carol@customer.example"], "each delivered once")
    catcher.cleanup()
    desk.cleanup()


def row_states(desk):
    """{recipient: state} read from the database while a flush runs."""
    db = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"), timeout=10)
    try:
        return dict(db.execute("SELECT rcpt_to, state FROM outbox"))
    finally:
        db.close()


def wait_until(cond, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_second_flusher_mid_batch(tap):
    """serve's sender and a cron `outbox flush` at once.  Each row is
    claimed for 65 minutes just before its send and marked as soon as the
    server answered, so a flush starting when a claim taken at the start
    of the first flush has run out does not send again what the first
    one delivered, nor what it is sending (time travelled: the second
    flush runs at T0 + 65 min + 1 s, when the first's claim on a batch
    read at T0 would have run out; the slow server makes the first flush
    claim bob more than 2 s after it started)."""
    catcher = Catcher().start()
    desk = smtp_desk(catcher)
    rcpts = ["alice@customer.example", "bob@customer.example", "carol@customer.example", "dave@customer.example"]
    seed(desk, rcpts)
    catcher.reply("DATA alice@customer.example wait 2.5\nDATA bob@customer.example wait 6\n")
    first = subprocess.Popen([MAILDESK, "-c", desk.conf_path, "outbox", "flush"],
                             env=dict(os.environ, MAILDESK_NOW=iso(0)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        tap.ok(wait_until(lambda: len(catcher.messages()) >= 1, 30), "the first flush delivered alice's copy")
        tap.ok(wait_until(lambda: row_states(desk)["alice@customer.example"] == "sent", 2),
               "alice's row is sent while the first flush is still at bob", row_states(desk))
        tap.eq(row_states(desk)["bob@customer.example"], "queued", "bob is still going out")
        second = flush(desk, 65 * 60 + 1)
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    both = [out.decode().strip(), second.stdout.decode().strip()]
    tap.diag(f"first flush: {both[0]}; second flush: {both[1]}")
    sent = sum(int(line.split()[1].rstrip(",")) for line in both if line.startswith("sent "))
    tap.eq(sent, 4, "the two flushes sent four between them", both + [err.decode(), second.stderr.decode()])
    got = collections.Counter(m[0]["rcpt_tos"][0] for m in catcher.messages())
    tap.eq(dict(got), {r: 1 for r in rcpts}, "each recipient got exactly one copy")
    tap.eq([(r["to"], r["state"], r["attempts"]) for r in desk.json("outbox", "list")],
           [(r, "sent", 1) for r in rcpts], "every row sent, in one attempt")
    catcher.cleanup()
    desk.cleanup()


def tls_catcher(tmp, *options):
    cert, key = self_signed_cert(tmp)
    return Catcher(options=["--cert", cert, "--key", key, *options]), cert


def test_starttls_auth(tap):
    desk0 = Desk()
    catcher, cert = tls_catcher(desk0.dir, "--starttls", "--auth-user", "desk", "--auth-password", "s3cret pass")
    catcher.start()
    secret = os.path.join(desk0.dir, "smtp-password")
    with open(secret, "w") as f:
        f.write("s3cret pass\n")
    os.chmod(secret, 0o600)
    desk = smtp_desk(catcher, f"user = desk\npassword_file = {secret}\nca_file = {cert}\n")
    seed(desk, ["alice@customer.example"])
    p = flush(desk)
    tap.ok(p.returncode == 0, "STARTTLS + AUTH with the private CA delivers", p.stderr.decode() + p.stdout.decode())
    got = catcher.messages()
    tap.eq([(m[0]["tls"], m[0]["login"]) for m in got], [(True, "desk")], "the server saw TLS and the login")
    tap.eq(got[0][1] if got else None, RAW, "byte for byte over TLS")

    untrusted = smtp_desk(catcher, f"user = desk\npassword_file = {secret}\n")
    seed(untrusted, ["alice@customer.example"])
    p = flush(untrusted)
    err = untrusted.json("outbox", "list")[0]["last_error"] or ""
    tap.eq(p.returncode, 75, "an untrusted certificate is a temporary failure")
    tap.ok("certificate" in err.lower() or "ssl" in err.lower() or "tls" in err.lower(),
           "the TLS error is recorded", err)

    with open(secret, "w") as f:
        f.write("wrong\n")

    os.chmod(secret, 0o600)
    wrong = smtp_desk(catcher, f"user = desk\npassword_file = {secret}\nca_file = {cert}\n")
    seed(wrong, ["alice@customer.example"])
    p = flush(wrong)
    row = wrong.json("outbox", "list")[0]
    tap.eq((p.returncode, row["state"]), (75, "queued"), "a refused login keeps the mail queued")
    tap.ok((row["last_error"] or "").startswith("AUTH refused: 535"), "the server's AUTH reply is recorded",
           row["last_error"])
    tap.ok("wrong" not in (row["last_error"] or "") and "AGRl" not in (row["last_error"] or ""),
           "the password is not, not even in base64", row["last_error"])
    tap.eq(len(catcher.messages()), 1, "nothing else arrived")
    for d in (desk, untrusted, wrong, desk0):
        d.cleanup()
    catcher.cleanup()


def test_xoauth2(tap):
    """[smtp] auth = xoauth2: the password file holds an OAuth 2.0 access
    token (Microsoft 365 and Gmail take no passwords), sent with AUTH
    XOAUTH2 over TLS and read again for every transfer, so whatever
    refreshes it needs no restart; a refused token keeps the mail queued."""
    desk0 = Desk()
    server_token = os.path.join(desk0.dir, "server-token")
    with open(server_token, "w") as f:
        f.write("token-one\n")
    catcher, cert = tls_catcher(desk0.dir, "--starttls", "--auth-user", "desk@support.example.com",
                                "--xoauth2-token", "@" + server_token)
    catcher.start()
    secret = os.path.join(desk0.dir, "smtp-token")

    def token(value):
        with open(secret, "w") as f:
            f.write(value + "\n")
        os.chmod(secret, 0o600)

    token("token-one")
    desk = smtp_desk(catcher, f"user = desk@support.example.com\npassword_file = {secret}\nauth = xoauth2\n"
                              f"ca_file = {cert}\n")
    seed(desk, ["alice@customer.example"])
    p = flush(desk)
    tap.eq(p.returncode, 0, "a valid token delivers", p.stderr.decode() + p.stdout.decode())
    tap.eq([(m[0]["tls"], m[0]["auth"], m[0]["login"]) for m in catcher.messages()],
           [(True, True, "desk@support.example.com")], "over TLS, logged in by XOAUTH2")

    with open(server_token, "w") as f:
        f.write("token-two\n")  # the old one expired
    seed(desk, ["bob@customer.example"], msgid="ack2@support.example.com")
    p = flush(desk)
    row = [r for r in desk.json("outbox", "list") if r["to"] == "bob@customer.example"][0]
    tap.eq((p.returncode, row["state"]), (75, "queued"), "an expired token keeps the mail queued")
    tap.ok((row["last_error"] or "").startswith('AUTH refused: 334 {"status": "401"'), "with the server's answer, decoded",
           row["last_error"])
    tap.ok("token-one" not in (row["last_error"] or "") and "dG9rZW4t" not in (row["last_error"] or ""),
           "not the token, not even in base64", row["last_error"])
    token("token-two")
    p = flush(desk, 3600)
    tap.eq((p.returncode, p.stdout.decode().strip()), (0, "sent 1, deferred 0, failed 0"),
           "the refreshed token in the same file is used", p.stderr.decode())

    bad = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\nauth = xoauth2\n")
    p = bad.run("check-config")
    tap.ok(p.returncode == 78 and b"auth = xoauth2 needs a user" in p.stderr, "xoauth2 without a user is refused",
           p.stderr)
    with open(bad.conf_path, "a") as f:
        f.write("user = x@y.example\npassword_file = /nonexistent\n")
    bad.write_conf(open(bad.conf_path).read().replace("auth = xoauth2", "auth = oauth"))
    p = bad.run("check-config")
    tap.ok(p.returncode == 78 and b"auth must be password or xoauth2" in p.stderr, "an unknown auth is refused",
           p.stderr)
    for d in (desk, desk0, bad):
        d.cleanup()
    catcher.cleanup()


def test_desk_refused_at_mail(tap):
    """A relay that wants AUTH refuses MAIL with 530 5.7.0 while [smtp] has
    no user: the desk's setup is wrong, not the mail.  Every row stays
    queued with the reply and goes once the credentials are configured."""
    desk0 = Desk()
    catcher, cert = tls_catcher(desk0.dir, "--starttls", "--auth-user", "desk", "--auth-password", "s3cret pass")
    catcher.start()
    desk = smtp_desk(catcher, f"ca_file = {cert}\n")
    seed(desk, ["alice@customer.example", "bob@customer.example"])
    p = flush(desk)
    tap.eq((p.returncode, p.stdout.decode().strip()), (75, "sent 0, deferred 2, failed 0"),
           "530 to MAIL without credentials defers, it does not fail", p.stderr.decode())
    rows = desk.json("outbox", "list")
    tap.eq([(r["state"], r["attempts"], r["next_attempt_at"]) for r in rows], [("queued", 1, iso(60))] * 2,
           "both rows stay queued with back-off")
    tap.eq([r["last_error"] for r in rows], ["MAIL refused: 530 5.7.0 Authentication required"] * 2,
           "the refusal is recorded with the command it answered")
    tap.ok("refused-desk" in p.stderr.decode() and "[smtp]" in p.stderr.decode(),
           "the log says the desk's [smtp] setup is at fault", p.stderr.decode())
    tap.eq(len(catcher.messages()), 0, "nothing arrived")

    secret = os.path.join(desk0.dir, "smtp-password")
    with open(secret, "w") as f:
        f.write("s3cret pass\n")
    os.chmod(secret, 0o644)
    with open(desk.conf_path, "a") as f:  # [smtp] is the file's last section
        f.write(f"user = desk\npassword_file = {secret}\n")
    p = flush(desk, 60)
    tap.ok(p.returncode == 78 and b"may be read by others" in p.stderr,
           "a password file others may read is refused (exit 78)", p.stderr)
    os.chmod(secret, 0o600)
    p = flush(desk, 60)
    tap.eq((p.returncode, p.stdout.decode().strip()), (0, "sent 2, deferred 0, failed 0"),
           "with the credentials configured both go", p.stderr.decode())
    tap.eq([(r["state"], r["attempts"]) for r in desk.json("outbox", "list")], [("sent", 2)] * 2, "rows marked sent")
    tap.eq([(m[0]["rcpt_tos"], m[0]["login"]) for m in catcher.messages()],
           [(["alice@customer.example"], "desk"), (["bob@customer.example"], "desk")], "delivered once each, logged in")

    # a relay refusing the desk's sender ("relay access denied") is the
    # same kind of trouble; a refused recipient is still final
    plain = Catcher().start()
    other = smtp_desk(plain)
    seed(other, ["carol@customer.example", "nobody@customer.example"])
    plain.reply("MAIL support@support.example.com 550 5.7.1 Relay access denied\n")
    p = flush(other)
    rows = other.json("outbox", "list")
    tap.eq((p.returncode, [(r["state"], r["last_error"]) for r in rows]),
           (75, [("queued", "MAIL refused: 550 5.7.1 Relay access denied")] * 2), "550 5.7.1 to MAIL defers")
    plain.reply("RCPT nobody@customer.example 550 5.1.1 <nobody@customer.example>: Recipient address rejected\n")
    p = flush(other, 60)
    tap.eq((p.returncode, p.stdout.decode().strip()), (0, "sent 1, deferred 0, failed 1"),
           "once the relay takes the sender, a refused recipient fails for good")
    for d in (desk, other, desk0):
        d.cleanup()
    catcher.cleanup()
    plain.cleanup()


def test_smtps(tap):
    desk0 = Desk()
    catcher, cert = tls_catcher(desk0.dir, "--smtps")
    catcher.start()
    desk = smtp_desk(catcher, f"ca_file = {cert}\n")
    seed(desk, ["alice@customer.example"])
    p = flush(desk)
    tap.ok(p.returncode == 0, "SMTPS delivers", p.stderr.decode() + str(desk.json("outbox", "list")))
    got = catcher.messages()
    tap.eq([m[0]["tls"] for m in got], [True], "over TLS from the first byte")
    desk.cleanup()
    desk0.cleanup()
    catcher.cleanup()


run_tests(test_list_and_flush, test_outage_and_failures, test_second_flusher_mid_batch, test_starttls_auth, test_xoauth2,
          test_desk_refused_at_mail,
          test_smtps)
