#!/usr/bin/env python3
"""Hostile input end to end (issue 8), through `maildesk deliver` and
through LMTP against `maildesk serve`: slow clients, endless headers,
10,000 MIME parts, deep nesting, huge declared sizes, NUL bytes, CR-only
and LF-only line ends, encoded-words hiding CR/LF, path-like attachment
names, SQL and template syntax.  Each is bounded, stored safely or
refused with the right code, and nothing the desk sends carries an
injected header."""
import base64
import email
import email.policy
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import threading
import time

from mdtest import MAILDESK, Catcher, Desk, Lmtp, Server, free_port, message, run_tests

NOW = "2026-12-01T10:00:00+02:00"
# Peak RSS allowed for one `deliver` of a hostile message.  The sanitizer
# build needs more (shadow memory, redzones); its quarantine of freed
# memory, 256 MB by default, is made small so the figure stays the parser's.
SANITIZED = bool(os.environ.get("ASAN_OPTIONS"))
RSS_LIMIT_KB = (160 if SANITIZED else 64) * 1024


# Runs argv[1:] as a child and prints its peak RSS.  A small intermediate
# process is needed: Linux carries the forking process's peak RSS into the
# child's ru_maxrss across exec, so measured straight from this test the
# figure would be the test's own (which builds the big inputs).
MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("\\nMAXRSS %d\\n" % usage.ru_maxrss)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def deliver_measured(desk, data, *args, env=None):
    """Runs `maildesk deliver`; returns (exit code, stdout, stderr, peak RSS KiB)."""
    full_env = dict(os.environ)
    full_env.update(env or {"MAILDESK_NOW": NOW})
    if SANITIZED:
        full_env["ASAN_OPTIONS"] += ":quarantine_size_mb=16"
    p = subprocess.run([sys.executable, "-c", MEASURE, MAILDESK, "-c", desk.conf_path, "deliver", *args],
                       input=data, capture_output=True, env=full_env, cwd=desk.dir, timeout=120)
    err = p.stderr.decode(errors="replace")
    rss = int(err.rsplit("MAXRSS ", 1)[1].split()[0]) if "MAXRSS " in err else -1
    return p.returncode, p.stdout.decode(errors="replace"), err.rsplit("\nMAXRSS", 1)[0], rss


def mime(parts_text, boundary="b", headers=()):
    head = ["From: Alice <alice@customer.example>", "To: support@support.example.com",
            f"Message-ID: <{os.urandom(6).hex()}@customer.example>", *headers, "MIME-Version: 1.0",
            f'Content-Type: multipart/mixed; boundary="{boundary}"', "", ""]
    return ("\r\n".join(head) + parts_text).encode()


def stored_files_outside(desk, before):
    """Files under the desk's directory that are neither the database, the
    spool, the configuration nor the test's own files."""
    found = []
    for root, _, files in os.walk(desk.dir):
        for f in files:
            path = os.path.relpath(os.path.join(root, f), desk.dir)
            if path in before or path.startswith("var/spool/") or path.startswith("var/maildesk.db") \
                    or path in ("var/secret.key",) or path.startswith("deliver.out"):
                continue
            found.append(path)
    return found


def test_endless_headers(tap):
    desk = Desk()
    # 150,000 header fields (about 12 MB), then one header folded over 100,000 lines
    fields = "".join(f"X-Filler-{i}: {'h' * 64}\r\n" for i in range(150000))
    folded = "X-Long: start\r\n" + "".join(f"\t{'f' * 70}\r\n" for i in range(100000))
    data = (f"From: alice@customer.example\r\nSubject: endless headers\r\nMessage-ID: <endless@customer.example>\r\n"
            f"{fields}{folded}\r\nbody after all that\r\n").encode()
    t0 = time.time()
    rc, out, err, rss = deliver_measured(desk, data)
    took = time.time() - t0
    tap.diag(f"endless headers: {len(data) >> 20} MB, exit {rc}, {took:.1f} s, peak RSS {rss} KiB")
    tap.ok(rc in (0, 65), "a message of endless headers is kept or refused, never a crash", err)
    tap.ok(rss < RSS_LIMIT_KB, f"memory stays bounded ({rss} KiB)")
    tap.ok(took < 60, f"and time too ({took:.1f} s)")
    if rc == 0:
        t = desk.show(out.strip())
        tap.eq(t["subject"], "endless headers", "the subject is still found")
        tap.ok("body after all that" in t["messages"][0]["body"], "and the body")
        tap.ok(t["messages"][0].get("flag"), "the message is flagged for a human", t["messages"][0].get("flag"))
    desk.cleanup()


def test_headers_inside_parts(tap):
    """GMime keeps an object of ~700 bytes per header field wherever it is:
    a part's header block, or an embedded message's, is bounded too."""
    desk = Desk()
    fields = "".join(f"X-F{i}: v\r\n" for i in range(400000))
    in_part = mime("--b\r\nContent-Type: text/plain\r\n\r\nthe customer's text\r\n--b\r\n" + fields +
                   "Content-Type: text/plain\r\n\r\nafter\r\n--b--\r\n", headers=["Subject: fields in a part"])
    embedded = mime("--b\r\nContent-Type: text/plain\r\n\r\nsee the forwarded mail\r\n--b\r\n"
                    "Content-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\n" + fields +
                    "Subject: inner\r\n\r\ninner body\r\n--b--\r\n", headers=["Subject: fields in a forward"])
    many_blocks = mime("--b\r\nContent-Type: text/plain\r\n\r\nmany blocks\r\n" +
                       "".join(f"--b\r\n{''.join(f'X-{j}: v{chr(13)}{chr(10)}' for j in range(1500))}\r\nx\r\n"
                               for _ in range(200)) + "--b--\r\n", headers=["Subject: many blocks"])
    short_top = (f"From: alice@customer.example\r\nSubject: short fields\r\nMessage-ID: <short@customer.example>\r\n"
                 + "".join(f"X:{i % 10}\r\n" for i in range(150000)) + "\r\nthe body after short fields\r\n").encode()
    for name, data, text in (("150,000 short top-level fields", short_top, "the body after short fields"),
                             ("400,000 fields in a part", in_part, "the customer's text"),
                             ("400,000 fields in an embedded message", embedded, "see the forwarded mail"),
                             ("200 parts of 1,500 fields", many_blocks, "many blocks")):
        t0 = time.time()
        rc, out, err, rss = deliver_measured(desk, data)
        took = time.time() - t0
        tap.diag(f"{name}: {len(data) >> 20} MB, exit {rc}, {took:.1f} s, peak RSS {rss} KiB")
        tap.ok(rc == 0 and out.strip().startswith("SUP-"), f"{name}: kept as a ticket", err)
        tap.ok(rss < RSS_LIMIT_KB, f"{name}: bounded memory ({rss} KiB)")
        if rc == 0:
            m = desk.show(out.strip())["messages"][0]
            tap.ok(text in m["body"], f"{name}: the text before them is the body", m["body"][:200])
            tap.ok("header" in (m.get("flag") or "") or "cut" in (m.get("flag") or ""),
                   f"{name}: flagged for a human", m.get("flag"))
    desk.cleanup()


def test_many_parts_and_nesting(tap):
    desk = Desk()
    parts = "".join(f"--b\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Disposition: attachment; filename=\"f{i}.bin\"\r\n\r\npart {i}\r\n" for i in range(10000))
    data = mime("--b\r\nContent-Type: text/plain\r\n\r\nten thousand parts\r\n" + parts + "--b--\r\n",
                headers=["Subject: 10000 parts"])
    t0 = time.time()
    rc, out, err, rss = deliver_measured(desk, data)
    took = time.time() - t0
    tap.diag(f"10,000 parts: exit {rc}, {took:.1f} s, peak RSS {rss} KiB")
    tap.eq(rc, 0, "10,000 MIME parts: kept")
    tap.ok(rss < RSS_LIMIT_KB and took < 60, f"in bounded memory and time ({rss} KiB, {took:.1f} s)")
    if rc == 0:
        m = desk.show(out.strip())["messages"][0]
        tap.ok(len(m["attachments"]) <= 1000, f"attachments are capped ({len(m['attachments'])})")
        tap.ok("ten thousand parts" in m["body"], "the text part is the body")
    many = mime("".join(f"--b\r\nContent-Type: text/plain\r\n\r\n{i}\r\n" for i in range(60000)) + "--b--\r\n",
                headers=["Subject: 60000 parts"])
    rc, out, err, rss = deliver_measured(desk, many)
    tap.diag(f"60,000 parts: exit {rc}, peak RSS {rss} KiB")
    tap.ok(rc == 0 and rss < RSS_LIMIT_KB, f"60,000 MIME parts: kept in bounded memory ({rss} KiB)", err)

    inner = "Content-Type: text/plain\r\n\r\nat the bottom"
    for i in range(3000):
        inner = f'Content-Type: multipart/mixed; boundary="n{i}"\r\n\r\n--n{i}\r\n{inner}\r\n--n{i}--'
    nested = ("From: alice@customer.example\r\nSubject: deep\r\nMessage-ID: <deep@customer.example>\r\n"
              "MIME-Version: 1.0\r\n" + inner + "\r\n").encode()
    msg_in_msg = "Content-Type: text/plain\r\n\r\ninnermost"
    for i in range(500):
        msg_in_msg = f"Content-Type: message/rfc822\r\n\r\nFrom: x{i}@example.org\r\nSubject: level {i}\r\n{msg_in_msg}"
    rfc822 = ("From: alice@customer.example\r\nSubject: nested messages\r\nMessage-ID: <deep2@customer.example>\r\n"
              "MIME-Version: 1.0\r\n" + msg_in_msg + "\r\n").encode()
    for name, data in (("3,000 nested multiparts", nested), ("500 nested message/rfc822", rfc822)):
        rc, out, err, rss = deliver_measured(desk, data)
        tap.diag(f"{name}: exit {rc}, peak RSS {rss} KiB")
        tap.ok(rc == 0 and out.strip().startswith("SUP-"), f"{name}: kept as a ticket", err)
        tap.ok(rss < RSS_LIMIT_KB, f"{name}: bounded memory")
    desk.cleanup()


def test_unpacked_files_capped(tap):
    """Files unpacked from inside a part (uuencoded blocks in text, the
    contents of a winmail.dat) escaped the part limit: 20,000 blocks of a
    few bytes in 0.7 MB of text were 20,000 spool files and rows; a 50 MB
    message would have been over a million of each."""
    import binascii
    desk = Desk()
    blocks = "".join(f"begin 644 f{i}.txt\n" + binascii.b2a_uu(f"{i:08d}".encode(), backtick=True).decode() + "`\nend\n"
                     for i in range(20000))
    t0 = time.time()
    rc, out, err, rss = deliver_measured(desk, message(subject="uuencoded", body="see the files\n" + blocks))
    took = time.time() - t0
    tap.diag(f"20,000 uuencoded blocks: exit {rc}, {took:.1f} s, peak RSS {rss} KiB")
    tap.eq(rc, 0, "20,000 uuencoded blocks: kept", err)
    if rc == 0:
        m = desk.show(out.strip())["messages"][0]
        tap.ok(len(m["attachments"]) <= 1000, f"unpacked files count against the limit ({len(m['attachments'])})")
        tap.ok("limit" in (m["flag"] or ""), "the message is flagged for a human", m["flag"])
    blobs = sum(len(files) for _, _, files in os.walk(os.path.join(desk.dir, "var", "spool")))
    tap.ok(blobs <= 1100, f"and so are the files in the spool ({blobs})")
    desk.cleanup()


def test_big_winmail_dat(tap):
    """libytnef reads a winmail.dat whole and copies what it holds: a
    30 MB one took 77 MB while every other part streams (a 52 MB message
    peaks at 11 MB).  It is unpacked only up to the 4 MiB any part may
    take in memory; a bigger one is kept as it came, the message flagged
    for a human, the ticket made."""
    from test_fidelity import mail, multipart, winmail_dat
    desk = Desk()
    for mb, unpacked in ((3, True), (30, False)):
        inner = os.urandom(mb << 20)
        tnef = winmail_dat(b"big.bin", inner)
        data = mail([f"Subject: winmail.dat of {mb} MB"], multipart([
            (["Content-Type: text/plain"], b"See the attached file."),
            (["Content-Type: application/ms-tnef; name=\"winmail.dat\"", "Content-Transfer-Encoding: base64"],
             base64.encodebytes(tnef))]), "multipart/mixed; boundary=B")
        rc, out, err, rss = deliver_measured(desk, data)
        tap.diag(f"winmail.dat of {mb} MB: exit {rc}, peak RSS {rss} KiB")
        tap.ok(rc == 0 and out.strip().startswith("SUP-"), f"winmail.dat of {mb} MB: kept as a ticket", err)
        tap.ok(0 < rss < RSS_LIMIT_KB, f"winmail.dat of {mb} MB: bounded memory ({rss} KiB)")
        if rc != 0:
            continue
        m = desk.show(out.strip())["messages"][0]
        files = sorted((a["filename"], a["size"]) for a in m["attachments"])
        if unpacked:
            both = files == sorted([("winmail.dat", len(tnef)), ("big.bin", len(inner))])
            tap.ok(both and not m["flag"], f"winmail.dat of {mb} MB: unpacked", (files, m["flag"]))
        else:
            tap.ok(files == [("winmail.dat", len(tnef))], f"winmail.dat of {mb} MB: kept whole, not unpacked", files)
            tap.ok("too large to unpack" in (m["flag"] or ""), "and the message is flagged for a human", m["flag"])
    desk.cleanup()


def test_html_nested_links(tap):
    """Links nested in links (libxml2 keeps <a> inside <b> inside <a>):
    each anchor held a copy of all the text below it while the text was
    rendered, 120 copies of a 4 MB body, 640 MB for one message."""
    desk = Desk()
    html = "<a href=x><b>" * 120 + "words " * (3_500_000 // 6)
    data = ("From: Alice <alice@customer.example>\r\nTo: support@support.example.com\r\n"
            "Subject: nested links\r\nMessage-ID: <links@customer.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n").encode()
    rc, out, err, rss = deliver_measured(desk, data)
    tap.diag(f"120 nested links over 3.5 MB: exit {rc}, peak RSS {rss} KiB")
    tap.ok(rc == 0 and out.strip().startswith("SUP-"), "nested links: kept as a ticket", err)
    tap.ok(0 < rss < RSS_LIMIT_KB, f"nested links: bounded memory ({rss} KiB)")
    if rc == 0:
        body = desk.show(out.strip())["messages"][0]["body"]
        tap.ok(body.startswith("words words") and body.endswith("(x)"), "the text, then the links' URL")
    desk.cleanup()


def test_html_soup(tap):
    """HTML that libxml2 makes costly: 4 MB of list items (its tree was
    ~90 times the text, 359 MB) and one tag of 200,000 attributes (each
    checked against all before it: hours of CPU).  Rendered from parser
    events with at most 64 attributes a tag, both are filed with memory
    in bounds (deliver's own timeout would end a quadratic parse)."""
    desk = Desk()
    cases = [
        ("list items", "<ul>" + "<li>x" * 800_000 + "</ul>", "- x"),
        ("attributes", "<p>before <i " + " ".join(f"a{i}" for i in range(200_000)) + ">after</i></p>", "before after"),
    ]
    for name, html, want in cases:
        data = ("From: Alice <alice@customer.example>\r\nTo: support@support.example.com\r\n"
                f"Subject: {name}\r\nMessage-ID: <soup-{name[0]}@customer.example>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n").encode()
        rc, out, err, rss = deliver_measured(desk, data)
        tap.diag(f"{name}, {len(html) // 1024} KiB of HTML: exit {rc}, peak RSS {rss} KiB")
        tap.ok(rc == 0 and out.strip().startswith("SUP-"), f"{name}: kept as a ticket", err)
        tap.ok(0 < rss < RSS_LIMIT_KB, f"{name}: bounded memory ({rss} KiB)")
        if rc == 0:
            body = desk.show(out.strip())["messages"][0]["body"]
            tap.ok(body.startswith(want), f"{name}: the text is there", body[:80])
    desk.cleanup()


def html_mail(key, html):
    return ("From: Alice <alice@customer.example>\r\nTo: support@support.example.com\r\n"
            f"Subject: {key}\r\nMessage-ID: <{key}@customer.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n").encode()


def test_html_deep_nesting(tap):
    """Text after deeply nested HTML (reply chains quote each other a
    level deeper each time; an attacker can go further).  libxml2's tree
    stopped at 256 open elements and the rest of the body was lost; its
    events go on, but it looks for an end tag's element through all that
    are open (80,000 <b> then as many </i> took 27 s, 4 MB of them would
    take many minutes), and each open one cost it and the renderer 50
    bytes (4 MB of <b>: 83 MB).  The sentence after the nesting is in the
    body, and 4 MB of nested tags are filed in bounded memory, their body
    the sentence."""
    desk = Desk()
    sentence = "Where is my order?"
    for i, opens in enumerate(("<div>", "<b><i>", '<blockquote type="cite"><div>', '<font face="Arial">')):
        for n in (300, 10_000):
            p = desk.deliver(html_mail(f"deep-{i}-{n}", opens * n + sentence), env={"MAILDESK_NOW": NOW})
            ident = p.stdout.decode().strip()
            body = desk.show(ident)["messages"][0]["body"] if p.returncode == 0 else ""
            tap.ok(body.endswith(sentence), f"{n} x {opens}: the sentence after them is in the body",
                   p.stderr.decode(errors="replace") + body[-200:])
    cases = [("nested <b>", "<b>" * 1_300_000), ("nested <div>", "<div>" * 780_000),
             ("nested <b><i>", "<b><i>" * 650_000)]
    for i, (name, html) in enumerate(cases):
        rc, out, err, rss = deliver_measured(desk, html_mail(f"deep-big-{i}", html + sentence))
        tap.diag(f"{name}, {len(html) // 1024} KiB of HTML: exit {rc}, peak RSS {rss} KiB")
        tap.ok(rc == 0 and out.strip().startswith("SUP-"), f"{name}: kept as a ticket", err)
        tap.ok(0 < rss < RSS_LIMIT_KB, f"{name}: bounded memory ({rss} KiB)")
        if rc == 0:
            body = desk.show(out.strip())["messages"][0]["body"]
            tap.eq(body, sentence, f"{name}: the body is the sentence after them")
    # run as a direct child, so that a parse that never ends is killed
    stray = html_mail("deep-stray", "<b>" * 500_000 + "</i>" * 500_000 + sentence)
    try:
        p = desk.run("deliver", input=stray, env={"MAILDESK_NOW": NOW}, timeout=120)
        ident = p.stdout.decode().strip()
        tap.ok(p.returncode == 0 and desk.show(ident)["messages"][0]["body"] == sentence,
               "500,000 <b> then as many stray </i>: filed, the body the sentence", p.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        tap.ok(False, "500,000 <b> then as many stray </i>: filed within 120 s")
    desk.cleanup()


def test_text_of_many_short_lines(tap):
    """Plain text that made the text walk quadratic: 200,000 "begin 644"
    lines and no "end" (each looked for an end through all the rest:
    ~2 x 10^10 line comparisons) and 400,000 short lines (split into an
    array of lines first).  One pass each: filed, memory in bounds."""
    desk = Desk()
    cases = [("begins", "begin 644 x.bin\r\n" * 200_000), ("lines", "big body line\r\n" * 400_000)]
    for name, body in cases:
        data = ("From: Alice <alice@customer.example>\r\nTo: support@support.example.com\r\n"
                f"Subject: {name}\r\nMessage-ID: <short-{name}@customer.example>\r\n\r\n" + body).encode()
        rc, out, err, rss = deliver_measured(desk, data)
        tap.diag(f"{name}, {len(body) // 1024} KiB: exit {rc}, peak RSS {rss} KiB")
        tap.ok(rc == 0 and out.strip().startswith("SUP-"), f"{name}: kept as a ticket", err)
        tap.ok(0 < rss < RSS_LIMIT_KB, f"{name}: bounded memory ({rss} KiB)")
    desk.cleanup()


def test_bytes_and_line_ends(tap):
    desk = Desk()
    cases = [
        ("NUL bytes", b"From: alice@customer.example\r\nSubject: nul\x00here\r\nMessage-ID: <nul@customer.example>\r\n"
                      b"\r\nbo\x00dy text\r\n", "nul", "body text"),
        ("CR-only line ends", b"From: alice@customer.example\rSubject: cr only\rMessage-ID: <cr@customer.example>\r"
                              b"\rbody cr\rsecond line\r", None, None),
        ("LF-only line ends", b"From: alice@customer.example\nSubject: lf only\nMessage-ID: <lf@customer.example>\n"
                              b"\nbody lf\nsecond line\n", "lf only", "body lf"),
    ]
    for name, data, subject, body in cases:
        rc, out, err, _ = deliver_measured(desk, data)
        tap.ok(rc == 0 and out.strip().startswith("SUP-"), f"{name}: stored as a ticket", err)
        if rc != 0:
            continue
        t = desk.show(out.strip())
        text = t["subject"] + t["messages"][0]["body"]
        tap.ok("\x00" not in text and "\r" not in t["subject"] and "\n" not in t["subject"],
               f"{name}: no NUL or line break in what is stored", repr(t["subject"]))
        if subject:
            tap.ok(t["subject"].startswith(subject), f"{name}: subject read", repr(t["subject"]))
            tap.ok(body.replace(" ", "") in t["messages"][0]["body"].replace(" ", "").replace("\x00", ""),
                   f"{name}: body read", repr(t["messages"][0]["body"]))
    desk.cleanup()


def encoded(text):
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def test_no_header_injection(tap):
    catcher = Catcher().start()
    desk = Desk(extra_conf=f"[smtp]\nurl = smtp://127.0.0.1:{catcher.port}\n")
    evil_subject = "Help\r\nBcc: victim@evil.example\r\nX-Injected: yes"
    parts = ("--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
             "--b\r\nContent-Type: application/octet-stream\r\n"
             f"Content-Disposition: attachment; filename=\"{encoded('a.txt' + chr(13) + chr(10) + 'X-Injected: file')}\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n")
    data = mime(parts, headers=[f"Subject: {encoded(evil_subject)}",
                                f"Reply-To: {encoded('Eve' + chr(13) + chr(10) + 'Bcc: x@evil.example')} <eve@customer.example>"])
    # a Reply-To whose name hides a Bcc (a second From would make the
    # sender unknown, and so get no acknowledgement at all)
    rc, out, err, _ = deliver_measured(desk, data)
    tap.eq(rc, 0, "a message whose encoded-words hide CR/LF is stored")
    t = desk.show(out.strip())
    tap.ok("\r" not in t["subject"] and "\n" not in t["subject"], "the stored subject has no CR/LF", repr(t["subject"]))
    tap.ok("Bcc: victim@evil.example" in t["subject"], "the text is kept, on one line", repr(t["subject"]))
    names = [a["filename"] for a in t["messages"][0]["attachments"]]
    tap.ok(names and all("\r" not in n and "\n" not in n for n in names), "attachment names have no CR/LF", names)

    flush = desk.run("outbox", "flush", env={"MAILDESK_NOW": NOW})
    sent = catcher.messages()
    tap.ok(flush.returncode == 0 and sent, "the acknowledgement was sent", flush.stderr)
    for env, raw in sent:
        head = raw.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
        names_seen = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line and line[0] not in " \t"]
        tap.ok("bcc" not in names_seen and "x-injected" not in names_seen,
               f"no injected header in the mail sent to {env['rcpt_tos']}", head)
        tap.ok(all(r.endswith("@customer.example") for r in env["rcpt_tos"]), "sent only to the customer",
               env["rcpt_tos"])
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        tap.ok("\n" not in str(parsed["Subject"]), "its Subject is one line", str(parsed["Subject"]))
    q = desk.json("outbox", "list")
    tap.ok(q and all(r["to"] == "alice@customer.example" for r in q),
           "every outbox row goes to the sender only, none to an injected address", q)
    desk.cleanup()
    catcher.cleanup()


def test_path_names_and_syntax(tap):
    desk = Desk()
    before = {os.path.relpath(os.path.join(r, f), desk.dir) for r, _, fs in os.walk(desk.dir) for f in fs}
    passwd_mtime = os.stat("/etc/passwd").st_mtime
    names = ["../../etc/passwd", "..\\..\\windows\\win.ini", "CON.txt", "/absolute/x.sh", "..", "nul", "a\x01b.txt"]
    parts = "--b\r\nContent-Type: text/plain\r\n\r\nfiles\r\n" + "".join(
        f"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{n}\"\r\n\r\n"
        f"data {i}\r\n" for i, n in enumerate(names)) + "--b--\r\n"
    rc, out, err, _ = deliver_measured(desk, mime(parts, headers=["Subject: files"]))
    tap.eq(rc, 0, "attachments with path-like names are stored")
    stored = [a["filename"] for a in desk.show(out.strip())["messages"][0]["attachments"]]
    tap.diag(f"stored names: {stored}")
    tap.ok(all("/" not in n and "\\" not in n and not n.startswith(".") for n in stored),
           "no stored name is a path or starts with a dot", stored)
    tap.ok("passwd" in stored and "_CON.txt" in stored, "the last component is kept; device names are defused", stored)
    tap.ok(all(ord(c) >= 0x20 for n in stored for c in n), "no control characters in names", stored)
    tap.eq(stored_files_outside(desk, before), [], "nothing was written outside the spool and database")
    tap.eq(os.stat("/etc/passwd").st_mtime, passwd_mtime, "/etc/passwd untouched")

    for subject in ["'); DROP TABLE tickets;--", "{{desk.name}} {{#if ticket}}x{{/if}} {{{raw}}}", "%s%n%x ${HOME} $(id)"]:
        rc, out, err, _ = deliver_measured(desk, message(subject=subject))
        tap.eq(rc, 0, f"subject {subject!r} is accepted")
        tap.eq(desk.show(out.strip())["subject"], subject, f"and stored verbatim")
    db = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"))
    n = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
    db.close()
    tap.eq(n, 4, "the tickets table is intact")
    rows = desk.tickets()
    tap.ok(not any("Test Support" in t["subject"] for t in rows), "template syntax in a subject is not expanded")
    desk.cleanup()


def test_lmtp_hostile(tap):
    port = free_port()
    desk = Desk(extra_conf=f"[lmtp]\nlisten = 127.0.0.1:{port}\nmax_message_size = 1M\n")
    server = Server(desk, env={"MAILDESK_NOW": NOW}).start(port)

    # slow drip: one byte a second on one connection while another is served
    slow = socket.create_connection(("127.0.0.1", port), timeout=30)
    slow.recv(1024)
    drip = b"LHLO slow.example\r\n"
    served = {}

    def fast_client():
        t0 = time.time()
        c = Lmtp(port)
        c.cmd("LHLO fast.example")
        rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"],
                               message(subject="while someone drips", msgid="fast@customer.example"))
        c.close()
        served["took"] = time.time() - t0
        served["data"] = data

    for i, byte in enumerate(drip[:5]):
        slow.sendall(bytes([byte]))
        if i == 1:
            fast = threading.Thread(target=fast_client)
            fast.start()
        time.sleep(1)
    fast.join(20)
    tap.ok(served.get("data") and served["data"][0][0] == 250 and served["took"] < 3,
           f"a client is served while another drips one byte a second ({served.get('took', 0):.2f} s)", served)
    slow.sendall(drip[5:])
    tap.ok(slow.recv(4096).startswith(b"250"), "and the slow client is answered too")
    slow.close()

    c = Lmtp(port)
    c.cmd("LHLO client.example")
    tap.ok(c.cmd("MAIL FROM:<a@customer.example> SIZE=1073741824")[1].startswith("552 5.3.4"),
           "a declared SIZE of 1 GB: 552 5.3.4 at MAIL")
    c.cmd("RSET")
    raw = (b"From: alice@customer.example\nSubject: lf and nul\x00 over lmtp\nMessage-ID: <lmtpnul@customer.example>\n"
           b"\nbare LF\nand a NUL \x00 inside\n")
    rcpt, data = c.deliver("alice@customer.example", ["support@support.example.com"], raw)
    tap.ok(data and data[0][0] == 250, "bare LF and NUL bytes over LMTP: stored", data)
    # a message that never ends with the right terminator, then a reconnect: nothing half-stored
    c.cmd("MAIL FROM:<a@customer.example>")
    c.cmd("RCPT TO:<support@support.example.com>")
    c.cmd("DATA")
    c.sock.sendall(b"Subject: cut off\r\n\r\nhalf a message")
    c.sock.close()
    time.sleep(0.5)
    tmp = os.path.join(desk.dir, "var", "spool", "tmp")
    tap.eq(os.listdir(tmp) if os.path.isdir(tmp) else [], [], "a session cut mid-DATA leaves no temporary file")
    tap.eq(len(desk.tickets()), 2, "and no ticket")
    tap.eq(server.stop(), 0, "serve stops cleanly after all that")
    desk.cleanup()


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    run_tests(test_endless_headers, test_headers_inside_parts, test_many_parts_and_nesting, test_unpacked_files_capped,
              test_big_winmail_dat, test_html_nested_links,
              test_html_soup, test_html_deep_nesting, test_text_of_many_short_lines, test_bytes_and_line_ends,
              test_no_header_injection, test_path_names_and_syntax, test_lmtp_hostile)
