#!/usr/bin/env python3
"""smtp_catcher - a real SMTP server on loopback for maildesk's tests.

Debian's aiosmtpd answers the protocol; every accepted message is written
to DIR/NNNN.eml (the bytes received, dot-unstuffed) with DIR/NNNN.json
(envelope sender, recipients, whether TLS and AUTH were used), each
written to a temporary name and renamed, so a file seen is complete.

Replies can be scripted through a control file read at every command,
one rule a line:  STAGE ADDRESS REPLY   e.g.
    RCPT bob@example.org 451 4.3.0 Try again later
    DATA carol@example.org 554 5.6.0 Message rejected
STAGE is MAIL (ADDRESS is the sender), RCPT or DATA (ADDRESS a recipient).
A REPLY of "wait SECONDS" is a slow server: it waits, then answers as usual
    DATA bob@example.org wait 5

    smtp_catcher.py --dir DIR --port N [--control FILE]
                    [--cert C --key K (--starttls | --smtps)]
                    [--auth-user U (--auth-password P | --xoauth2-token T)]

With --xoauth2-token the server offers only AUTH XOAUTH2 (Google's and
Microsoft's SASL for OAuth 2.0 access tokens) and takes user U with
bearer token T, the token read again from the file T names when T
starts with "@" (so a test can expire it).

Prints "ready" once it listens; stops on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import threading

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:
    # A Python without Debian's dist-packages (pyenv, venv): use the system one.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise


def control_reply(path, stage, address):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0] == stage and parts[1].lower() == (address or "").lower():
                return parts[2].strip()
    return None


class Catcher:
    def __init__(self, directory, control):
        self.dir = directory
        self.control = control
        self.count = len([n for n in os.listdir(directory) if n.endswith(".eml")])
        self.lock = threading.Lock()

    async def scripted(self, stage, address):
        """The scripted reply, or None; "wait SECONDS" waits (other sessions go on) and gives None."""
        reply = control_reply(self.control, stage, address)
        if reply and reply.split()[0] == "wait":
            await asyncio.sleep(float(reply.split()[1]))
            return None
        return reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = await self.scripted("MAIL", address)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = await self.scripted("RCPT", address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            reply = await self.scripted("DATA", rcpt)
            if reply:
                return reply
        with self.lock:
            self.count += 1
            base = os.path.join(self.dir, f"{self.count:04d}")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "tls": server.transport.get_extra_info("ssl_object") is not None, "auth": session.authenticated,
                "login": (session.auth_data.login.decode()
                          if isinstance(session.auth_data, LoginPassword) else None)}
        for suffix, data in ((".json", json.dumps(meta).encode()), (".eml", envelope.original_content)):
            with open(base + suffix + ".tmp", "wb") as f:
                f.write(data)
            os.rename(base + suffix + ".tmp", base + suffix)
        return f"250 2.0.0 Ok: queued as {self.count:04d}"


def xoauth2_catcher(handler, user, token):
    """HANDLER with an AUTH XOAUTH2 mechanism: "user=U^Aauth=Bearer T^A^A"
    in base64, at once or after an empty challenge; a refusal sends the
    JSON error challenge and then 535, as Google and Microsoft do."""
    import base64

    def current_token():
        if token.startswith("@"):
            with open(token[1:]) as f:
                return f.read().strip()
        return token

    async def auth_XOAUTH2(server, args):
        from aiosmtpd.smtp import MISSING
        try:
            if len(args) > 1:
                raw = base64.b64decode(args[1].encode(), validate=True)
            else:
                raw = await server.challenge_auth("")  # decoded already
                if raw is MISSING:
                    return AuthResult(success=False)
            fields = dict(f.split("=", 1) for f in raw.decode().split("\x01") if f)
        except Exception:
            await server.push("501 5.5.2 Can't decode the XOAUTH2 response")
            return AuthResult(success=False, handled=True)
        if fields.get("user") == user and fields.get("auth") == "Bearer " + current_token():
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(success=False)

    handler.auth_XOAUTH2 = auth_XOAUTH2
    return handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--smtps", action="store_true")
    ap.add_argument("--auth-user")
    ap.add_argument("--auth-password")
    ap.add_argument("--xoauth2-token")
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    kwargs = {"data_size_limit": 0}
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    if args.starttls:
        kwargs.update(tls_context=tls, require_starttls=True)
    handler = Catcher(args.dir, args.control)
    if args.xoauth2_token:
        handler = xoauth2_catcher(handler, args.auth_user, args.xoauth2_token)
        kwargs.update(auth_required=True, auth_exclude_mechanism=["LOGIN", "PLAIN"])
    elif args.auth_user:
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.auth_user
                  and auth_data.password.decode() == args.auth_password)
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
        kwargs.update(authenticator=authenticate, auth_required=True)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port,
                            ssl_context=tls if args.smtps else None, **kwargs)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
