"""mdtest - helpers for maildesk's end-to-end tests.

Each test script builds a desk in a temporary directory, runs the real
`maildesk` binary against it and prints TAP (one "ok N - ..." line per
check), so Automake's TAP driver counts every check.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

MAILDESK = os.environ.get("MAILDESK", os.path.join(os.getcwd(), "maildesk"))
TOP_SRCDIR = os.environ.get("MD_TOP_SRCDIR", os.getcwd())
CORPUS = os.environ.get("MD_CORPUS", os.path.join(TOP_SRCDIR, "..", "shared", "corpus"))


class Tap:
    """Counts checks and prints TAP; the plan goes last."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=None):
        self.n += 1
        status = "ok" if cond else "not ok"
        print(f"{status} {self.n} - {name}", flush=True)
        if not cond:
            self.failed += 1
            if detail is not None:
                for line in str(detail).splitlines()[:40]:
                    print(f"# {line}", flush=True)
        return cond

    def eq(self, got, want, name, detail=None):
        extra = f"\n{detail}" if detail is not None else ""
        return self.ok(got == want, name, f"got:  {got!r}\nwant: {want!r}{extra}")

    def diag(self, text):
        for line in str(text).splitlines():
            print(f"# {line}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(0)


def run_tests(*funcs):
    """Runs each test function with a Tap; an exception is one failed check."""
    tap = Tap()
    for f in funcs:
        try:
            f(tap)
        except Exception:
            tap.ok(False, f"{f.__name__} raised", traceback.format_exc())
    tap.done()


class Desk:
    """A desk in a temporary directory with its own maildesk.conf.  It has
    no intake forms unless FORMS names a file (filters/forms.conf would
    ask most tickets for a license key, which tests of other features do
    not expect)."""

    def __init__(self, extra_conf="", domain="support.example.com", rules=None, forms=""):
        self.dir = tempfile.mkdtemp(prefix="maildesk-test-")
        self.domain = domain
        self.conf_path = os.path.join(self.dir, "maildesk.conf")
        rules = rules or os.path.join(TOP_SRCDIR, "filters", "default.rules")
        with open(self.conf_path, "w") as f:
            f.write(f"""[desk]
name = Test Support
domain = {domain}
intake = support
ticket_prefix = SUP
data_dir = {self.dir}/var
rules = {rules}
templates = {TOP_SRCDIR}/templates/
forms = {forms}
{extra_conf}
""")

    def write_conf(self, text):
        with open(self.conf_path, "w") as f:
            f.write(text)

    def run(self, *args, input=None, env=None, check=False, timeout=60):
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run([MAILDESK, "-c", self.conf_path, *args], input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=full_env, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"maildesk {' '.join(args)} exited {p.returncode}: "
                               f"{p.stderr.decode(errors='replace')}")
        return p

    def deliver(self, message, *args, env=None):
        return self.run("deliver", *args, input=message, env=env)

    def json(self, *args, env=None):
        p = self.run(*args, "--json", env=env, check=True)
        return json.loads(p.stdout)

    def tickets(self):
        return self.json("ticket", "list")

    def show(self, ident):
        return self.json("ticket", "show", str(ident))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def message(subject="Help", body="Hello,\nit does not work.\n", sender="alice@customer.example",
            to="support@support.example.com", headers=None, msgid=None):
    """A small RFC 5322 message as bytes."""
    lines = [f"From: Alice Customer <{sender}>", f"To: {to}", f"Subject: {subject}",
             "Date: Tue, 01 Dec 2026 09:30:00 +0200"]
    if msgid is not False:
        lines.append(f"Message-ID: <{msgid or os.urandom(8).hex()}@customer.example>")
    lines += headers or []
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
    return "\r\n".join(lines).encode()


def token_address(desk, ticket_id):
    """The reply address of ticket TICKET_ID, its token computed as
    DESIGN 5.4 says, from the desk's own secret key."""
    import base64
    import hashlib
    import hmac
    with open(os.path.join(desk.dir, "var", "secret.key"), "rb") as f:
        key = f.read()
    token = base64.b32encode(hmac.new(key, str(ticket_id).encode(), hashlib.sha256).digest()).decode().lower()[:10]
    return f"support+SUP-{ticket_id}.{token}@{desk.domain}"


def free_port():
    """A loopback TCP port nothing listens on right now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Catcher:
    """tests/smtp_catcher.py as a subprocess: a real SMTP server on
    loopback keeping each accepted message as DIR/NNNN.eml + .json."""

    def __init__(self, port=None, options=()):
        self.dir = tempfile.mkdtemp(prefix="maildesk-smtp-")
        self.caught = os.path.join(self.dir, "caught")
        self.control = os.path.join(self.dir, "control")
        self.port = port or free_port()
        self.options = list(options)
        self.proc = None

    def start(self):
        script = os.path.join(TOP_SRCDIR, "tests", "smtp_catcher.py")
        self.proc = subprocess.Popen([sys.executable, script, "--dir", self.caught, "--port", str(self.port),
                                      "--control", self.control, *self.options],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode().strip()
        if line != "ready":
            raise RuntimeError(f"smtp_catcher did not start: {line!r}")
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def reply(self, rules):
        """Scripted replies, lines of 'STAGE ADDRESS REPLY' (see smtp_catcher.py)."""
        with open(self.control, "w") as f:
            f.write(rules)

    def messages(self):
        """[(envelope dict, raw bytes)] in the order received."""
        if not os.path.isdir(self.caught):
            return []
        out = []
        for name in sorted(n for n in os.listdir(self.caught) if n.endswith(".eml")):
            base = os.path.join(self.caught, name[:-4])
            with open(base + ".json") as f, open(base + ".eml", "rb") as g:
                out.append((json.load(f), g.read()))
        return out

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def self_signed_cert(directory):
    """A certificate for localhost and 127.0.0.1 that is its own CA: (cert, key)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    import socket
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    """`maildesk serve` on a desk, started and stopped by a test."""

    def __init__(self, desk, env=None, preexec_fn=None):
        self.desk = desk
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.preexec_fn = preexec_fn
        self.proc = None
        self.log_path = os.path.join(desk.dir, "serve.log")

    def start(self, port=None, timeout=10.0):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MAILDESK, "-c", self.desk.conf_path, "serve"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env, preexec_fn=self.preexec_fn)
        if port and not wait_port(port, timeout):
            raise RuntimeError("serve did not listen: " + self.read_log())
        return self

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    # What a graceful stop may take (maildesk(8), SIGTERM): transactions
    # in flight finish for at most 15 s; then the sender waits at most
    # 5 s for the answer to a message the SMTP server has; and the last
    # commits need their fsyncs, slow on a loaded machine.  Past that it
    # hangs, and is killed.
    STOP_TIMEOUT = 15 + 5 + 10

    def stop(self, timeout=STOP_TIMEOUT):
        import signal
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None


class Lmtp:
    """A raw LMTP client that reads one reply per accepted recipient after
    DATA (smtplib.LMTP reads only one: CPython gh-76984)."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        import socket
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), "\n".join(lines)

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def send_data(self, data, n_replies):
        """DATA with dot-stuffing; returns the per-recipient replies."""
        code, text = self.cmd("DATA")
        if code != 354:
            return [(code, text)]
        body = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        lines = [b"." + l if l.startswith(b".") else l for l in body.split(b"\r\n")]
        payload = b"\r\n".join(lines)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        self.sock.sendall(payload + b".\r\n")
        return [self.reply() for _ in range(n_replies)]

    def deliver(self, sender, rcpts, data):
        """A whole transaction: returns (rcpt replies, data replies)."""
        self.cmd(f"MAIL FROM:<{sender}>")
        rcpt_replies = [self.cmd(f"RCPT TO:<{r}>") for r in rcpts]
        accepted = sum(1 for c, _ in rcpt_replies if c == 250)
        data_replies = self.send_data(data, accepted) if accepted else []
        return rcpt_replies, data_replies

    def close(self):
        try:
            self.cmd("QUIT")
        except Exception:
            pass
        self.sock.close()
