#!/usr/bin/env python3
"""End to end: mail fidelity (issue 9).  Messages with broken charsets, HTML
only, winmail.dat, uuencode, nested messages and Thunderbird's long encoded
subjects go through `maildesk deliver`; `ticket show --json` and the
database must hold the customer's words, names and files intact."""
import base64
import glob
import os
import sqlite3
import struct

from mdtest import Desk, run_tests


def mail(headers, body, content_type="text/plain"):
    """A message as bytes; body and headers may hold raw 8-bit bytes."""
    head = [b"From: Customer <customer@example.org>", b"To: support@support.example.com",
            b"Message-ID: <%s@example.org>" % os.urandom(8).hex().encode(), b"MIME-Version: 1.0"]
    if content_type:
        head.append(b"Content-Type: " + content_type.encode())
    head += [h if isinstance(h, bytes) else h.encode() for h in headers]
    if isinstance(body, str):
        body = body.encode()
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def deliver(tap, desk, data, what):
    p = desk.deliver(data)
    key = p.stdout.decode(errors="replace").strip()
    tap.ok(p.returncode == 0 and key.startswith("SUP-"), f"{what}: delivered as a ticket",
           p.stderr.decode(errors="replace"))
    if not key.startswith("SUP-"):
        return None
    received = [m for m in desk.show(key)["messages"] if m["direction"] == "in"]
    return received[-1]


def blob(desk, sha):
    paths = glob.glob(os.path.join(desk.dir, "var", "spool", "*", sha[:2], sha))
    with open(paths[0], "rb") as f:
        return f.read()


def invalid_utf8_in_db(desk):
    """Every text value in the database that is not valid UTF-8."""
    db = sqlite3.connect(os.path.join(desk.dir, "var", "maildesk.db"))
    db.text_factory = bytes
    bad = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        name = table.decode()
        for row in db.execute(f"SELECT * FROM {name}"):
            for value in row:
                if isinstance(value, bytes):
                    try:
                        value.decode("utf-8", errors="strict")
                    except UnicodeDecodeError:
                        bad.append(f"{name}: {value[:60]!r}")
    db.close()
    return bad


def test_charsets(tap):
    desk = Desk()
    cases = [
        ("undeclared 8-bit text", "text/plain", b"caf\xe9 cr\xe8me", "café crème"),
        ("UTF-8 declared as Latin-1", "text/plain; charset=iso-8859-1", "café crème".encode(), "café crème"),
        ("unknown charset name", "text/plain; charset=x-no-such-charset", b"caf\xe9", "café"),
        ("windows-1252 declared as UTF-8", "text/plain; charset=utf-8", b"\x93costs \x805\x94", "\u201ccosts €5\u201d"),
        ("Latin-1 declared as US-ASCII", "text/plain; charset=us-ascii", b"na\xefve", "naïve"),
        ("KOI8-R as declared", "text/plain; charset=koi8-r", b"\xf3\xd0\xc1\xd3\xc9\xc2\xcf", "Спасибо"),
        ("invalid bytes in UTF-8", "text/plain; charset=utf-8", b"ok \xff\xfe end", "ok \u00ff\u00fe end"),
    ]
    for what, ctype, body, want in cases:
        m = deliver(tap, desk, mail([f"Subject: {what}"], body, ctype), what)
        if m:
            tap.ok(want in m["body"], f"{what}: body decodes to {want!r}", m["body"])
    m = deliver(tap, desk, mail([b"Subject: caf\xe9 \xe0 emporter", b"X-Note: 8-bit header"], b"hello"),
                "8-bit bytes in the Subject header")
    if m:
        tap.eq(m["subject"], "café à emporter", "8-bit subject read as windows-1252")
    p = desk.run("ticket", "list", "--json")
    try:
        p.stdout.decode("utf-8", errors="strict")
        valid = True
    except UnicodeDecodeError:
        valid = False
    tap.ok(valid, "the JSON is valid UTF-8")
    tap.eq(invalid_utf8_in_db(desk), [], "no invalid UTF-8 anywhere in the database")
    desk.cleanup()


def test_html_only(tap):
    desk = Desk()
    html = ("<html><head><title>Order</title><style>p { color: red }</style>"
            "<script>alert('x')</script></head><body>"
            "<p>Hello,</p><p>my order&nbsp;#12 &amp; the invoice don&#39;t match.<br>Total: 5&euro;</p>"
            "<p>See <a href=\"https://shop.example/orders/12\">my order</a>.</p></body></html>")
    m = deliver(tap, desk, mail(["Subject: HTML only"], html, "text/html; charset=utf-8"), "HTML-only message")
    if not m:
        return
    body = m["body"]
    tap.ok(body.startswith("Hello,\n\nmy order"), "paragraphs kept as blank lines", body)
    tap.ok("match.\nTotal: 5€" in body, "<br> becomes a line break, entities decoded", body)
    tap.ok("my order (https://shop.example/orders/12)" in body, "links as text (url)", body)
    tap.ok("\u00a0#12 & the invoice don't" in body, "named and numeric entities decoded", body)
    tap.ok(not any(s in body for s in ("<", "color", "alert", "Order")),
           "no markup, style, script or head text", body)
    html_atts = [a for a in m["attachments"] if a["content_type"] == "text/html"]
    tap.eq([a["filename"] for a in html_atts], ["body.html"], "the HTML is kept as an attachment")
    if html_atts:
        tap.eq(blob(desk, html_atts[0]["sha256"]), html.encode(), "byte for byte")
    desk.cleanup()


def tnef_attribute(level, attr_id, data):
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xffff)


def winmail_dat(name, content):
    """A minimal TNEF stream (MS-OXTNEF 2.1) holding one file."""
    return (struct.pack("<IH", 0x223E9F78, 1)
            + tnef_attribute(1, 0x00089006, struct.pack("<I", 0x00010000))
            + tnef_attribute(2, 0x00069002, bytes(14))
            + tnef_attribute(2, 0x00018010, name + b"\0")
            + tnef_attribute(2, 0x0006800F, content))


def multipart(parts, boundary="B"):
    out = b""
    for headers, body in parts:
        out += b"--" + boundary.encode() + b"\r\n" + b"\r\n".join(h.encode() for h in headers) + b"\r\n\r\n" + body + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def test_tnef(tap):
    desk = Desk()
    inner = b"Quarterly figures\n" * 20
    tnef = winmail_dat(b"figures.txt", inner)
    body = multipart([
        (["Content-Type: text/plain"], b"See the attached figures."),
        (["Content-Type: application/ms-tnef; name=\"winmail.dat\"", "Content-Transfer-Encoding: base64",
          "Content-Disposition: attachment; filename=\"winmail.dat\""], base64.encodebytes(tnef)),
    ])
    m = deliver(tap, desk, mail(["Subject: From Outlook"], body, "multipart/mixed; boundary=B"), "winmail.dat")
    if not m:
        return
    by_name = {a["filename"]: a for a in m["attachments"]}
    tap.eq(sorted(by_name), ["figures.txt", "winmail.dat"], "TNEF contents extracted, winmail.dat kept")
    if "figures.txt" in by_name:
        tap.eq(by_name["figures.txt"]["size"], len(inner), "inner file's size")
        tap.eq(blob(desk, by_name["figures.txt"]["sha256"]), inner, "inner file's bytes")
    if "winmail.dat" in by_name:
        tap.eq(blob(desk, by_name["winmail.dat"]["sha256"]), tnef, "winmail.dat's bytes")
    tap.eq(m["body"], "See the attached figures.", "the text body is untouched")
    desk.cleanup()


def test_uuencode(tap):
    desk = Desk()
    import binascii
    data = bytes(range(256)) * 3
    lines = [binascii.b2a_uu(data[i:i + 45]) for i in range(0, len(data), 45)]
    block = b"begin 644 table.bin\n" + b"".join(lines) + b"`\nend\n"
    text = b"Here is the file:\n\n" + block + b"\nThanks, Customer\n"
    m = deliver(tap, desk, mail(["Subject: uuencoded"], text, "text/plain; charset=us-ascii"), "uuencoded block")
    if not m:
        return
    atts = m["attachments"]
    tap.eq([(a["filename"], a["size"]) for a in atts], [("table.bin", len(data))], "the block became an attachment")
    if atts:
        tap.eq(blob(desk, atts[0]["sha256"]), data, "decoded bytes")
    tap.ok("begin 644" not in m["body"] and "Here is the file:" in m["body"] and "Thanks" in m["body"],
           "the block left the body, the text around it stayed", m["body"])
    desk.cleanup()


def test_nested_message(tap):
    desk = Desk()
    pdf = b"%PDF-1.4\n" + b"0" * 500 + b"\n%%EOF\n"
    inner = (b"From: Supplier <billing@supplier.example>\r\nSubject: Invoice 7\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=C\r\n\r\n"
             + multipart([(["Content-Type: text/plain"], b"Invoice attached."),
                          (["Content-Type: application/pdf; name=invoice-7.pdf", "Content-Transfer-Encoding: base64"],
                           base64.encodebytes(pdf))], "C"))
    body = multipart([
        (["Content-Type: text/plain"], b"Forwarding the supplier's mail."),
        (["Content-Type: message/rfc822", "Content-Disposition: attachment"], inner),
    ])
    m = deliver(tap, desk, mail(["Subject: Fwd: Invoice 7"], body, "multipart/mixed; boundary=B"), "nested message")
    if not m:
        return
    got = [(a["filename"], a["content_type"], a["depth"]) for a in m["attachments"]]
    tap.eq(got, [("message.eml", "message/rfc822", 0), ("invoice-7.pdf", "application/pdf", 1)],
           "the nested message is kept and its attachment is reachable")
    if len(m["attachments"]) == 2:
        tap.eq(blob(desk, m["attachments"][1]["sha256"]), pdf, "the nested attachment's bytes")
        tap.ok(b"Subject: Invoice 7" in blob(desk, m["attachments"][0]["sha256"]), "the nested message's bytes")
    tap.eq(m["body"], "Forwarding the supplier's mail.", "the nested text is not the body")
    desk.cleanup()


def b_words(text, limit):
    """Thunderbird's folding: base64 words of at most LIMIT bytes, split
    between characters."""
    words, cur = [], b""
    for ch in text:
        b = ch.encode()
        if len(cur) + len(b) > limit:
            words.append(cur)
            cur = b""
        cur += b
    words.append(cur)
    return ["=?UTF-8?B?" + base64.b64encode(w).decode() + "?=" for w in words]


def test_long_encoded_subject(tap):
    desk = Desk()
    subject = "Не работает оплата заказа после обновления приложения на телефоне"
    name = "Счёт за октябрь 2026 года.pdf"
    sender = "Иван Петрович Сидоров"
    words = b_words(subject, 36)
    tap.ok(any(w.endswith("=?=") for w in words[:-1]), "the subject has padded words before the last")
    body = multipart([
        (["Content-Type: text/plain; charset=utf-8"], "Счёт во вложении.".encode()),
        (["Content-Type: application/pdf", "Content-Disposition: attachment;\r\n filename=\""
          + " ".join(b_words(name, 24)) + "\""], b"%PDF-1.4\n"),
    ])
    data = mail(["Subject: " + "\r\n ".join(words)], body, "multipart/mixed; boundary=B")
    data = data.replace(b"From: Customer <customer@example.org>",
                        ("From: " + " ".join(b_words(sender, 16)) + " <ivan@example.org>").encode())
    m = deliver(tap, desk, data, "long Cyrillic subject")
    if not m:
        return
    tap.eq(m["subject"], subject, "the whole subject is decoded")
    tap.eq(desk.show("SUP-1")["subject"], subject, "and is the ticket's subject")
    tap.eq(m["from_name"], sender, "the whole sender name")
    tap.eq([a["filename"] for a in m["attachments"]], [name], "the whole file name")
    desk.cleanup()


if __name__ == "__main__":
    run_tests(test_charsets, test_html_only, test_tnef, test_uuencode, test_nested_message,
              test_long_encoded_subject)
