#!/usr/bin/env python3
"""A connection that a NAT or firewall forgets while the poller IDLEs:
no FIN, no RST, every packet silently dropped.  Run inside a network
namespace of its own (unshare -n), so that dropping every packet on its
loopback touches nothing else on the machine:

    unshare -n imap_dropped.py POLLER CONFIG PORT LOG

It brings the namespace's loopback up, starts imap_misbehaving.py (in a
mode that behaves) on PORT and the poller (tests/imap-test-poller
CONFIG, its stdout and stderr to LOG, debug messages on: GLib writes
those to stdout), waits until the poller sends
IDLE, reads the connection's kernel timer from /proc/net/tcp, then drops
every packet on loopback (tc qdisc blackhole) and waits up to WAIT
seconds for the poller to log that the connection is lost.  It prints
one JSON object: {"idle": bool, "timer": "02" (keepalive) or other,
"detected": seconds or null, "error": text or null}."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

WAIT = 30


def sh(*cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)


def tcp_timer(port):
    """The timer field (tr) of the client side of the connection to PORT."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            rem_port = int(fields[2].split(":")[1], 16)
            if rem_port == port and fields[3] == "01":  # ESTABLISHED, the poller's end
                return fields[5].split(":")[0]
    return None


def main():
    poller, conf, port, log_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    out = {"idle": False, "timer": None, "detected": None, "error": None}
    up = sh("ip", "link", "set", "lo", "up")
    if up.returncode:
        out["error"] = "cannot bring loopback up: " + up.stdout
        print(json.dumps(out))
        return
    here = os.path.dirname(os.path.abspath(__file__))
    server = subprocess.Popen([sys.executable, os.path.join(here, "imap_misbehaving.py"), str(port), "plain",
                               str(WAIT + 30)], stdout=subprocess.PIPE, text=True)
    idle = threading.Event()

    def watch():
        for line in server.stdout:
            if line.split()[2:3] == ["IDLE"]:
                idle.set()
    server.stdout.readline()  # ready
    threading.Thread(target=watch, daemon=True).start()
    log = open(log_path, "w+")
    env = dict(os.environ, G_MESSAGES_DEBUG="all")
    proc = subprocess.Popen([poller, conf], stdout=log, stderr=log, env=env)
    dropped = False
    try:
        out["idle"] = idle.wait(15)
        if not out["idle"]:
            return
        time.sleep(0.5)  # inside the IDLE wait
        out["timer"] = tcp_timer(port)
        blackhole = sh("tc", "qdisc", "add", "dev", "lo", "root", "blackhole")
        if blackhole.returncode:
            out["error"] = "cannot drop packets: " + blackhole.stdout
            return
        dropped = True
        start = time.monotonic()
        while time.monotonic() - start < WAIT:
            log.seek(0)
            if "connection lost" in log.read():
                out["detected"] = round(time.monotonic() - start, 1)
                break
            time.sleep(0.1)
    finally:
        if dropped:
            sh("tc", "qdisc", "del", "dev", "lo", "root")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=70)  # a reconnect may sit in connect() for its timeout
        except subprocess.TimeoutExpired:
            proc.kill()
        server.kill()
        server.wait()
        log.close()
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
