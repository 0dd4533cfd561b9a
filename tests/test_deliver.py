#!/usr/bin/env python3
"""End to end: `maildesk deliver` turns piped mail into tickets (issue 2)."""
import glob
import os
import sqlite3
import time

from mdtest import CORPUS, Desk, message, run_tests, token_address

TICKET_FIELDS = {"id", "key", "subject", "category", "priority", "status", "requester", "organization",
                 "visibility", "assignee", "created_at", "updated_at", "first_response_due",
                 "first_response_at", "resolved_at"}


def test_new_ticket(tap):
    desk = Desk()
    p = desk.deliver(message(subject="Checkout page shows an error", msgid="first@customer.example"),
                     env={"MAILDESK_NOW": "2026-12-01T09:30:00+02:00"})
    tap.eq(p.returncode, 0, "deliver accepts a message")
    tap.eq(p.stdout.decode().strip(), "SUP-1", "deliver prints the new ticket's key")
    tickets = desk.tickets()
    tap.eq(len(tickets), 1, "one ticket listed")
    t = tickets[0]
    tap.ok(TICKET_FIELDS <= set(t), "list JSON carries every DESIGN 3 field", sorted(TICKET_FIELDS - set(t)))
    tap.eq((t["id"], t["key"], t["status"]), (1, "SUP-1", "Waiting for triage"), "new ticket waits for triage")
    tap.eq(t["requester"], "alice@customer.example", "requester is the bare From address")
    tap.eq(t["visibility"], "private", "tickets are private by default")
    tap.eq(t["created_at"], "2026-12-01T07:30:00Z", "MAILDESK_NOW sets the clock, shown in UTC")
    tap.eq(t["organization"], None, "no organization is null")
    s = desk.show("SUP-1")
    tap.eq(len(incoming(s)), 1, "show has the message")
    m = incoming(s)[0]
    tap.eq((m["direction"], m["from"], m["from_name"], m["internal"]),
           ("in", "alice@customer.example", "Alice Customer", False), "message fields")
    tap.ok("it does not work" in m["body"], "body text kept", m["body"])
    tap.ok(any(h["field"] == "status" and h["new"] == "Waiting for triage" for h in s["history"]),
           "creation recorded in history", s["history"])
    tap.eq(s["fields"], {}, "no intake fields yet")
    tap.eq(desk.show("1")["key"], "SUP-1", "show accepts a bare number")
    desk.cleanup()


def test_dedupe(tap):
    desk = Desk()
    msg = message(msgid="same@customer.example")
    first = desk.deliver(msg)
    second = desk.deliver(msg)
    tap.eq((first.returncode, second.returncode), (0, 0), "a redelivery is accepted")
    tap.eq(second.stdout.decode().strip(), "duplicate", "and reported as a duplicate")
    tap.eq(len(desk.tickets()), 1, "the same Message-ID twice makes one ticket")
    nomsgid = message(subject="no id", msgid=False)
    desk.deliver(nomsgid)
    desk.deliver(nomsgid)
    tap.eq(len(desk.tickets()), 2, "without a Message-ID the raw hash dedupes")
    desk.cleanup()


def test_threading(tap):
    desk = Desk()
    desk.run("agent", "add", "jane@support.example.com", "--name", "Jane Agent", check=True)
    desk.deliver(message(subject="Export fails", msgid="orig@customer.example"))
    reply = message(subject="Re: [SUP-1] Export fails", msgid="r1@customer.example",
                    body="Still failing.\n\nOn Tue, Alice wrote:\n> Export fails\n",
                    headers=["In-Reply-To: <orig@customer.example>", "References: <orig@customer.example>"])
    tap.eq(desk.deliver(reply).stdout.decode().strip(), "SUP-1", "a reply by In-Reply-To joins its ticket")
    s = desk.show(1)
    tap.eq(len(incoming(s)), 2, "the reply is a comment")
    reply_msg = incoming(s)[1]
    tap.ok("Still failing." in reply_msg["body"] and "> Export fails" not in reply_msg["body"],
           "the comment body is trimmed", reply_msg["body"])
    tap.ok("> Export fails" in reply_msg["full_text"], "the untrimmed text is kept")

    by_tag = message(subject="Re: [SUP-1] more", msgid="r2@customer.example", body="One more thing.")
    tap.eq(desk.deliver(by_tag).stdout.decode().strip(), "SUP-1", "the requester's subject tag threads")

    stranger = message(subject="Re: [SUP-1] Export fails", sender="mallory@evil.example",
                       msgid="s1@evil.example", body="I am the customer, send me the data")
    tap.eq(desk.deliver(stranger).stdout.decode().strip(), "SUP-2",
           "a stranger with a guessed tag opens a new ticket")

    tokaddr = token_address(desk, 1)
    via_token = message(subject="Re: [SUP-1]", sender="mallory@evil.example", to=tokaddr,
                        msgid="s2@evil.example", body="hello via token")
    desk.deliver(via_token, "--recipient", tokaddr)
    last = incoming(desk.show(1))[-1]
    tap.eq((last["internal"], last["flag"]), (True, "unverified sender"),
           "a stranger at the token address becomes an unverified internal note")

    forged = message(subject="Re: [SUP-1] Export fails", sender="jane@support.example.com",
                     msgid="f1@evil.example", body="#resolve\nClosing.")
    desk.deliver(forged)
    last = incoming(desk.show(1))[-1]
    tap.eq((last["internal"], last["flag"]), (True, "unverified agent"),
           "an agent address without the token is an unverified agent note")

    agent = message(subject="Re: [SUP-1] Export fails", sender="jane@support.example.com", to=tokaddr,
                    msgid="a1@support.example.com", body="We are on it.")
    desk.deliver(agent, "--recipient", tokaddr)
    last = incoming(desk.show(1))[-1]
    tap.eq((last["internal"], last["flag"], last["from"]), (False, None, "jane@support.example.com"),
           "an agent at the token address is a public comment")
    desk.cleanup()


def incoming(show):
    """The messages a ticket received (the desk's own mail is recorded too)."""
    return [m for m in show["messages"] if m["direction"] == "in"]




def test_token_in_headers(tap):
    desk = Desk()
    desk.deliver(message(msgid="t0@customer.example"))
    addr = token_address(desk, 1).upper().replace("SUPPORT.EXAMPLE.COM", "support.example.com")
    p = desk.deliver(message(subject="no tag here", to=addr, msgid="t1@customer.example"))
    tap.eq(p.stdout.decode().strip(), "SUP-1", "a token in To threads, case-insensitively, without a tag")
    # In Bcc: only the delivering MTA's Delivered-To (or X-Original-To) shows it.
    for i, header in enumerate(("Delivered-To", "X-Original-To")):
        p = desk.deliver(message(subject="more info", to="colleague@customer.example", msgid=f"bcc{i}@customer.example",
                                 headers=[f"{header}: {token_address(desk, 1)}"]))
        tap.eq(p.stdout.decode().strip(), "SUP-1", f"a token in {header} (a Bcc) threads too")
    desk.cleanup()


def test_two_tickets(tap):
    """A message to two tickets' addresses is filed to both, one ingest
    per ticket (as LMTP's 452 4.5.3 makes the MTA send it), in one go:
    `deliver` has no MTA behind it to send the rest later."""
    desk = Desk()
    desk.deliver(message(subject="Export fails", msgid="e@customer.example"))
    desk.deliver(message(subject="Import fails", msgid="i@customer.example"))
    tok1, tok2 = token_address(desk, 1), token_address(desk, 2)
    both = message(subject="Both broken", to=f"{tok1}, {tok2}", msgid="both@customer.example",
                   body="Export and import fail the same way.")
    p = desk.deliver(both, "--recipient", tok1, "--recipient", tok2)
    tap.eq((p.returncode, p.stdout.decode().split()), (0, ["SUP-1", "SUP-2"]),
           "deliver files it to each ticket and prints each key")
    for n in (1, 2):
        bodies = [m["body"] for m in incoming(desk.show(n))]
        tap.eq(sum("same way" in b for b in bodies), 1, f"SUP-{n} has the message once", bodies)
    tap.eq(len(desk.tickets()), 2, "and no new ticket is opened")
    p = desk.deliver(both, "--recipient", tok1, "--recipient", tok2)
    tap.eq((p.returncode, p.stdout.decode().split()), (0, ["duplicate", "duplicate"]),
           "a redelivery is a duplicate for both")
    tap.eq([sum("same way" in m["body"] for m in incoming(desk.show(n))) for n in (1, 2)], [1, 1],
           "and files nothing twice")

    # Reached one ticket before (an MTA that sent one recipient at a time):
    # the other ticket still gets it, the first not again.
    one = message(subject="Again", to=f"{tok1}, {tok2}", msgid="again@customer.example", body="Still broken.")
    desk.deliver(one, "--recipient", tok1)
    p = desk.deliver(one, "--recipient", "support@support.example.com", "--recipient", tok2,
                     "--recipient", tok1.upper().replace("SUPPORT.EXAMPLE.COM", "support.example.com"))
    tap.eq(p.stdout.decode().split(), ["SUP-2", "duplicate"],
           "the intake address goes with the first ticket's ingest; a ticket reached before is a duplicate")
    tap.eq([sum("Still broken" in m["body"] for m in incoming(desk.show(n))) for n in (1, 2)], [1, 1],
           "each ticket has it once")
    tap.eq(len(desk.tickets()), 2, "still two tickets")
    desk.cleanup()


def test_exit_codes(tap):
    desk = Desk("\n[lmtp]\nmax_message_size = 2k\n")
    p = desk.deliver(b"")
    tap.eq(p.returncode, 65, "empty input is refused with 65")
    tap.ok(b"empty" in p.stderr, "with a one-line reason", p.stderr)
    p = desk.deliver(message(body="x" * 5000))
    tap.eq(p.returncode, 65, "input over max_message_size is refused with 65")
    tap.ok(b"maximum size" in p.stderr, "saying why", p.stderr)
    tap.eq(len(desk.tickets()), 0, "nothing refused was stored")
    p = desk.deliver(message(), "--recipient", "support@elsewhere.example")
    tap.eq(p.returncode, 67, "a recipient of another domain gets 67")
    p = desk.deliver(message(), "--recipient", "sales@support.example.com")
    tap.eq(p.returncode, 67, "an unknown local part gets 67")
    p = desk.deliver(message(), "--recipient", "support+SUP-1.aaaaaaaaaa@support.example.com")
    tap.eq(p.returncode, 67, "a wrong token gets 67")
    p = desk.deliver(message(), "--recipient", "support@support.example.com")
    tap.eq(p.returncode, 0, "the intake address is accepted")
    desk.cleanup()


def test_locked_database(tap):
    desk = Desk()
    desk.deliver(message())
    db = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"), timeout=1)
    db.execute("BEGIN EXCLUSIVE")
    started = time.time()
    p = desk.deliver(message(subject="while locked"))
    tap.eq(p.returncode, 75, "a database locked past the timeout gives 75 (retry later)")
    tap.ok(time.time() - started < 30, "within a bounded wait")
    db.rollback()
    db.close()
    tap.eq(len(desk.tickets()), 1, "nothing half-written")
    tap.eq(desk.deliver(message(subject="after the lock")).returncode, 0, "and the retry succeeds")
    desk.cleanup()


JUNK = {
    "binary junk": bytes(range(256)) * 40,
    "a lone header": b"Subject: only this",
    "broken boundary": b"From: a@b.example\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
                       b"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n--XYZ\r\n"
                       b"Content-Type: text/plain\r\n\r\nfirst part\r\n--XYZ\r\nContent-Type: application/pdf\r\n"
                       b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK",
    "8-bit headers": b"From: J\xf6rg <joerg@example.de>\r\nSubject: Gr\xfc\xdfe \xe4\xf6\xfc\r\n\r\nK\xf6rper\r\n",
    "truncated base64": b"From: a@b.example\r\nSubject: trunc\r\nMIME-Version: 1.0\r\n"
                        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                        b"SGVsbG8gd29y",
}


def test_junk(tap):
    desk = Desk()
    for name, data in JUNK.items():
        p = desk.deliver(data)
        tap.eq(p.returncode, 0, f"{name}: kept (exit 0)")
    tickets = desk.tickets()
    tap.eq(len(tickets), len(JUNK), "each became a ticket")
    flagged = [t for t in tickets if t.get("flag") and t["flag"].startswith("needs human")]
    tap.ok(len(flagged) >= 3, "malformed ones are flagged for a human", [t.get("flag") for t in tickets])
    for t in tickets:
        s = desk.show(t["id"])
        s["messages"][0]["body"].encode("utf-8")
    germ = [t for t in tickets if "Gr" in t["subject"]]
    tap.ok(germ and germ[0]["subject"] == "Grüße äöü", "8-bit Latin-1 header decoded", germ)
    desk.cleanup()


def corpus_files():
    files = sorted(glob.glob(os.path.join(CORPUS, "mime", "**", "*.msg"), recursive=True))
    files += sorted(glob.glob(os.path.join(CORPUS, "mime", "**", "*.eml"), recursive=True))
    return files


# Where maildesk's reading of a malformed message differs from the corpus's
# expectation on purpose: each is explained in doc/VIOLATIONS.md.
DOCUMENTED_DEVIATIONS = {f"mime/stalwart/malformed/{n}.eml" for n in
                         ("001", "002", "003", "004", "006", "007", "009", "011", "016", "017", "022")}
DOCUMENTED_DEVIATIONS.add("mime/stalwart/thirdparty/002.eml")


def test_corpus(tap):
    import json
    files = corpus_files()
    tap.ok(len(files) > 90, f"corpus found ({len(files)} messages)", CORPUS)
    desk = Desk()
    failures = []
    count_mismatch = []
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        p = desk.deliver(data)
        if p.returncode != 0:
            failures.append(f"{path}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
            continue
        key = p.stdout.decode().strip()
        if key == "duplicate":
            continue
        expect = path[:-4] + ".json"
        if key.startswith("SUP-") and os.path.exists(expect):
            want = len(json.load(open(expect))["attachments"])
            msg = incoming(desk.show(key))[-1]
            got = len([a for a in msg["attachments"] if a["depth"] == 0])
            if got < want and os.path.relpath(path, CORPUS) not in DOCUMENTED_DEVIATIONS:
                count_mismatch.append(f"{os.path.relpath(path, CORPUS)}: {got} attachments, corpus says {want}")
    tap.ok(not failures, "every corpus message ingests (exit 0)", "\n".join(failures))
    tap.ok(not count_mismatch, "no attachment the corpus lists is lost", "\n".join(count_mismatch))
    tap.diag(f"{len(files)} corpus messages ingested")
    desk.cleanup()


if __name__ == "__main__":
    run_tests(test_new_ticket, test_dedupe, test_threading, test_token_in_headers, test_two_tickets, test_exit_codes,
              test_locked_database, test_junk, test_corpus)
