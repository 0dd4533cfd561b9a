#!/usr/bin/env python3
"""Least privilege (issue 8): whatever umask maildesk is started with,
what it creates (data directory, database, spool, secret key) is the
owner's alone; the LMTP socket has the mode lmtp.h gives it; and
contrib/maildesk.service confines the daemon."""
import os
import shutil
import stat
import subprocess

from mdtest import MAILDESK, TOP_SRCDIR, Desk, Lmtp, Server, free_port, message, run_tests, wait_port

NOW = "2026-12-01T10:00:00+02:00"


def modes(root):
    """{relative path: permission bits} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(d, name)
            out[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return out


def test_file_modes(tap):
    port = free_port()
    desk = Desk()
    sock = os.path.join(desk.dir, "lmtp.sock")
    with open(desk.conf_path, "a") as f:
        f.write(f"[lmtp]\nlisten = 127.0.0.1:{port}, unix:{sock}\n[smtp]\nurl = smtp://127.0.0.1:{free_port()}\n")
    attachment = ("--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf\r\n"
                  "Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n%PDF-1.4\r\n--b--\r\n")
    raw = ("From: alice@customer.example\r\nTo: support@support.example.com\r\nSubject: modes\r\n"
           "Message-ID: <modes@customer.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" + attachment).encode()
    # started with a permissive umask, as a careless init script might
    p = subprocess.run([MAILDESK, "-c", desk.conf_path, "deliver"], input=raw,
                       capture_output=True, preexec_fn=lambda: os.umask(0o000), env=dict(os.environ, MAILDESK_NOW=NOW))
    tap.eq(p.returncode, 0, "deliver (umask 000) stores a message with an attachment", p.stderr)

    server = Server(desk, env={"MAILDESK_NOW": NOW})
    server.log = open(server.log_path, "ab")
    server.proc = subprocess.Popen([MAILDESK, "-c", desk.conf_path, "serve"], stdout=server.log,
                                   stderr=subprocess.STDOUT, env=server.env, preexec_fn=lambda: os.umask(0o000))
    tap.ok(wait_port(port), "serve (umask 000) listens", server.read_log())
    c = Lmtp(port)
    c.cmd("LHLO mta.example")
    _, data = c.deliver("bob@customer.example", ["support@support.example.com"],
                        message(subject="over lmtp", sender="bob@customer.example", msgid="modes2"))
    tap.ok(data and data[0][0] == 250, "serve stores a message", data)
    c.close()
    tap.ok(os.path.exists(sock) and stat.S_IMODE(os.stat(sock).st_mode) == 0o660,
           "the LMTP socket is 0660 (owner and group: the MTA)",
           oct(stat.S_IMODE(os.stat(sock).st_mode)) if os.path.exists(sock) else "no socket")
    found = modes(os.path.join(desk.dir, "var"))
    tap.eq(server.stop(), 0, "serve stops")
    tap.diag("created: " + ", ".join(f"{k} {oct(v)}" for k, v in sorted(found.items())[:12]) + " ...")
    var_mode = stat.S_IMODE(os.stat(os.path.join(desk.dir, "var")).st_mode)
    tap.eq(oct(var_mode), oct(0o700), "the data directory is 0700")
    tap.eq(oct(found.get("secret.key", 0)), oct(0o600), "secret.key is 0600")
    tap.eq(oct(found.get("maildesk.db", 0)), oct(0o600), "the database is 0600")
    loose = {k: oct(v) for k, v in found.items() if v & 0o077}
    tap.eq(loose, {}, "nothing under the data directory is open to group or others")
    kinds = {k.split("/")[1] for k in found if k.startswith("spool/") and k.count("/") >= 3}
    tap.ok({"raw", "blob"} <= kinds, "raw messages and attachment blobs were among the files checked", kinds)
    desk.cleanup()


def test_socket_group(tap):
    """[lmtp] unix_group and unix_mode: the MTA's group may connect; a
    group that does not exist or a mode open to others is a config error
    with file:line."""
    import grp
    group = next((g for g in ("mail", "postfix", "daemon") if _has_group(g)), None)
    port = free_port()
    desk = Desk()
    sock = os.path.join(desk.dir, "lmtp.sock")
    with open(desk.conf_path, "a") as f:
        f.write(f"[lmtp]\nlisten = 127.0.0.1:{port}, unix:{sock}\nunix_group = {group}\nunix_mode = 0620\n"
                f"[smtp]\nurl = smtp://127.0.0.1:{free_port()}\n")
    p = desk.run("check-config")
    tap.eq(p.returncode, 0, f"unix_group = {group}, unix_mode = 0620 pass check-config", p.stderr)
    server = Server(desk, env={"MAILDESK_NOW": NOW})
    server.start(port)
    st = os.stat(sock) if os.path.exists(sock) else None
    tap.eq(grp.getgrgid(st.st_gid).gr_name if st else None, group, "the socket belongs to the configured group")
    tap.eq(oct(stat.S_IMODE(st.st_mode)) if st else None, oct(0o620), "with the configured mode")
    tap.eq(server.stop(), 0, "serve stops")

    lines = open(desk.conf_path).read().splitlines()
    bad = [l.replace(f"unix_group = {group}", "unix_group = no-such-group-here")
           .replace("unix_mode = 0620", "unix_mode = 0666") for l in lines]
    with open(desk.conf_path, "w") as f:
        f.write("\n".join(bad) + "\n")
    p = desk.run("check-config")
    err = p.stderr.decode(errors="replace")
    group_line = next(i + 1 for i, l in enumerate(bad) if l.startswith("unix_group"))
    mode_line = next(i + 1 for i, l in enumerate(bad) if l.startswith("unix_mode"))
    tap.ok(p.returncode != 0, "a missing group or a mode open to others fails check-config")
    tap.ok(f"maildesk.conf:{group_line}: unix_group: no group named \"no-such-group-here\"" in err,
           "the missing group is named with file:line", err)
    tap.ok(f"maildesk.conf:{mode_line}: unix_mode:" in err, "so is the bad mode", err)
    desk.cleanup()


def _has_group(name):
    import grp
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def unit_settings(path):
    settings = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            settings.setdefault(k.strip(), []).append(v.strip())
    return settings


def test_systemd_unit(tap):
    path = os.path.join(TOP_SRCDIR, "contrib", "maildesk.service")
    s = unit_settings(path)
    want = {"User": ["maildesk"], "Group": ["maildesk"], "NoNewPrivileges": ["yes"], "ProtectSystem": ["strict"],
            "PrivateTmp": ["yes"], "ReadWritePaths": ["/var/lib/maildesk"], "RuntimeDirectory": ["maildesk"],
            "UMask": ["0077"], "CapabilityBoundingSet": [""], "ProtectHome": ["yes"]}
    for k, v in want.items():
        tap.eq(s.get(k), v, f"maildesk.service: {k}={' '.join(v)}")
    tap.ok(all("serve" in e and "/usr/sbin/maildesk" in e for e in s.get("ExecStart", [""])),
           "it runs maildesk serve", s.get("ExecStart"))
    analyze = shutil.which("systemd-analyze")
    if analyze:
        p = subprocess.run([analyze, "verify", path], capture_output=True, text=True)
        # the binary and man pages are not installed where the test runs
        problems = [l for l in (p.stdout + p.stderr).splitlines()
                    if l.strip() and "is not executable" not in l and "Command 'man " not in l]
        tap.eq(problems, [], "systemd-analyze verify finds nothing else wrong")


if __name__ == "__main__":
    run_tests(test_file_modes, test_socket_group, test_systemd_unit)
