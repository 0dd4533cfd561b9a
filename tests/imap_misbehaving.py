#!/usr/bin/env python3
"""An IMAP server that misbehaves on purpose, for the faults a real
Dovecot cannot be made to show on cue: it answers just enough of IMAP4rev1
for maildesk's poller to log in, select and list one message, then, by
MODE, closes the connection in the middle of the message's body
(closemid) or refuses IDLE (idlebad); in any other MODE (e.g. plain) it
behaves.  Each command received is printed as "C <command>", so a test
can tell where the client is.  Loopback only; it stops after LIFETIME
seconds.  Usage: imap_misbehaving.py PORT MODE [LIFETIME]"""
import socket
import sys
import threading
import time

PORT, MODE = int(sys.argv[1]), sys.argv[2]
LIFETIME = float(sys.argv[3]) if len(sys.argv) > 3 else 60
MSG = (b"From: a@customer.example\r\nTo: support@support.example.com\r\nSubject: fake\r\n"
       b"Message-ID: <fake1@customer.example>\r\n\r\nhello\r\n")


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
            send(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 42] v\r\n* OK [UIDNEXT 2] n\r\n" + tag + b" OK [READ-WRITE] sel\r\n")
        elif cmd == b"CREATE":
            send(tag + b" NO exists\r\n")
        elif cmd == b"UID" and b"BODY.PEEK" in up:
            if MODE == "closemid":
                send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(MSG) + MSG[:10])
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                return
            send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(MSG) + MSG + b")\r\n" + tag + b" OK fetched\r\n")
        elif cmd == b"UID" and b"FETCH" in up:
            send(b"* 1 FETCH (UID 1 RFC822.SIZE %d FLAGS ())\r\n" % len(MSG) + tag + b" OK listed\r\n")
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
            threading.Thread(target=handle, args=(c, logins), daemon=True).start()
    except (socket.timeout, KeyboardInterrupt):
        pass
    print(f"logins {len(logins)}", flush=True)


if __name__ == "__main__":
    main()
