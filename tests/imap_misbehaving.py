#!/usr/bin/env python3
"""An IMAP server that misbehaves on purpose, for the faults a real
Dovecot cannot be made to show on cue: it answers just enough of IMAP4rev1
for maildesk's poller to log in, select, list and fetch, then, by MODE:

  closemid  closes the connection in the middle of the message's body
  idlebad   refuses IDLE
  huge      holds HUGE messages (UIDs with gaps), lists whatever it is
            asked for, and serves the bodies of the first 3 x LOGIN
            messages only (NO for the others, so each fetch run ends
            after three); after each listing it prints "L <count>", the
            number of messages the answer named
  whole     one message of 6 MB, sent whole whatever range a partial
            FETCH asks for (RFC822.SIZE says its true size)
  liar      the same with 20 MB, while RFC822.SIZE says 1,000 bytes
  (other)   behaves: one message

Each command received is printed as "C <command>", so a test can tell
where the client is.  Loopback only; it stops after LIFETIME seconds.
Usage: imap_misbehaving.py PORT MODE [LIFETIME]"""
import re
import socket
import sys
import threading
import time

PORT, MODE = int(sys.argv[1]), sys.argv[2]
LIFETIME = float(sys.argv[3]) if len(sys.argv) > 3 else 60
MSG = (b"From: a@customer.example\r\nTo: support@support.example.com\r\nSubject: fake\r\n"
       b"Message-ID: <fake1@customer.example>\r\n\r\nhello\r\n")
HUGE = 300000


def uid_of(seq):
    """The UID of message SEQ: one message with UID 1, or HUGE with gaps."""
    return 1000 + 3 * seq if MODE == "huge" else seq


def count():
    return HUGE if MODE == "huge" else 1


BIG = {"whole": 6_000_000, "liar": 20_000_000}.get(MODE, 0)
BIG_MSG = (MSG.replace(b"hello\r\n", b"") + b"big body line\r\n" * (BIG // 15)) if BIG else b""


def message(uid):
    if BIG:
        return BIG_MSG
    if MODE != "huge":
        return MSG
    return (b"From: a@customer.example\r\nTo: support@support.example.com\r\nSubject: huge %d\r\n"
            b"Message-ID: <huge%d@customer.example>\r\n\r\nhello\r\n" % (uid, uid))


def seqs(text, by_uid):
    """The message numbers a sequence set names (RFC 3501 9: seq-number,
    seq-range, "*"), in order, by message number or by UID."""
    n = count()
    last = uid_of(n) if by_uid else n
    out = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        lo = last if a == "*" else int(a)
        hi = lo if not b else last if b == "*" else int(b)
        lo, hi = min(lo, hi), max(lo, hi)
        if not by_uid:
            out += range(max(lo, 1), min(hi, n) + 1)
        elif MODE == "huge":
            out += range(max((lo - 1000 + 2) // 3, 1), min((hi - 1000) // 3, n) + 1)
        else:
            out += [s for s in range(1, n + 1) if lo <= uid_of(s) <= hi]
        if by_uid and b == "*" and not out:  # "n:*" names the last message even above it
            out.append(n)
    return out


def fetch(tag, line, by_uid, send, logins):
    """FETCH or UID FETCH of UID, RFC822.SIZE, FLAGS or a body."""
    mo = re.match(rb"\S+ (?:UID )?FETCH (\S+) \(?(.*?)\)?\s*$", line, re.I)
    if not mo:
        send(tag + b" BAD syntax\r\n")
        return
    items = mo.group(2).upper()
    numbers = seqs(mo.group(1).decode(), by_uid)
    if b"BODY.PEEK" in items:
        for n in numbers:
            if MODE == "huge" and n > 3 * len(logins):
                send(tag + b" NO [UNAVAILABLE] not now\r\n")
                return
            body = message(uid_of(n))
            send(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (n, uid_of(n), len(body)) + body + b")\r\n")
        send(tag + b" OK fetched\r\n")
        return
    out = []
    for n in numbers:
        want = [b"UID %d" % uid_of(n)]
        if b"RFC822.SIZE" in items:
            want.append(b"RFC822.SIZE %d" % (1000 if MODE == "liar" else len(message(uid_of(n)))))
        if b"FLAGS" in items:
            want.append(b"FLAGS ()")
        out.append(b"* %d FETCH (%s)\r\n" % (n, b" ".join(want)))
    send(b"".join(out) + tag + b" OK listed\r\n")
    if b"RFC822.SIZE" in items:
        print(f"L {len(numbers)}", flush=True)


def handle(conn, logins):
    f = conn.makefile("rb")
    send = conn.sendall
    send(b"* OK misbehaving server ready\r\n")
    while True:
        line = f.readline()
        if not line:
            break
        print("C " + line.decode(errors="replace").rstrip(), flush=True)
        parts = line.split(b" ", 2)
        tag, cmd, up = parts[0], parts[1].strip().upper() if len(parts) > 1 else b"", line.upper()
        if cmd == b"CAPABILITY":
            send(b"* CAPABILITY IMAP4rev1 IDLE UIDPLUS MOVE\r\n" + tag + b" OK done\r\n")
        elif cmd in (b"LOGIN", b"AUTHENTICATE"):
            logins.append(1)
            send(tag + b" OK logged in\r\n")
        elif cmd == b"SELECT":
            send(b"* %d EXISTS\r\n* OK [UIDVALIDITY 42] v\r\n* OK [UIDNEXT %d] n\r\n" % (count(), uid_of(count()) + 1) +
                 tag + b" OK [READ-WRITE] sel\r\n")
        elif cmd == b"CREATE":
            send(tag + b" NO exists\r\n")
        elif cmd == b"UID" and b"BODY.PEEK" in up and MODE == "closemid":
            send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(MSG) + MSG[:10])
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            return
        elif cmd == b"FETCH" or (cmd == b"UID" and up.split()[2:3] == [b"FETCH"]):
            fetch(tag, line, cmd == b"UID", send, logins)
        elif cmd == b"UID":
            send(tag + b" OK done\r\n")
        elif cmd == b"IDLE" and MODE == "idlebad":
            send(tag + b" BAD not now\r\n")
        elif cmd == b"IDLE":
            send(b"+ idling\r\n")
            f.readline()
            send(tag + b" OK idle done\r\n")
        elif cmd == b"LOGOUT":
            send(b"* BYE\r\n" + tag + b" OK bye\r\n")
            break
        else:
            send(tag + b" BAD unknown\r\n")
    conn.close()


def quietly(conn, logins):
    """handle(), for a client that may hang up mid-answer (it is allowed to)."""
    try:
        handle(conn, logins)
    except OSError:
        conn.close()


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", PORT))
    s.listen(8)
    end = time.monotonic() + LIFETIME
    logins = []
    print("ready", flush=True)
    try:
        while time.monotonic() < end:
            s.settimeout(max(end - time.monotonic(), 0.01))
            c, _ = s.accept()
            threading.Thread(target=quietly, args=(c, logins), daemon=True).start()
    except (socket.timeout, KeyboardInterrupt):
        pass
    print(f"logins {len(logins)}", flush=True)


if __name__ == "__main__":
    main()
