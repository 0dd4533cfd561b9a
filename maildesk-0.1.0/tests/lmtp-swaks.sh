#!/bin/sh
# lmtp-swaks.sh - the LMTP engine against real clients: swaks
# (--protocol LMTP) and Python's smtplib.LMTP, over TCP and a Unix socket.
# The server is tests/lmtp-test-server (the engine with a recording test
# application) until `maildesk serve` takes its place.  Prints TAP.
#
# smtplib.LMTP.sendmail() reads one reply after DATA (CPython gh-76984),
# so multi-recipient checks use docmd()/getreply(), one reply per recipient.

set -u
builddir=${MD_TOP_BUILDDIR:-.}
server=$builddir/tests/lmtp-test-server
tmp=$(mktemp -d "${TMPDIR:-/tmp}/md-lmtp-swaks.XXXXXX")
pid=
n=0
failed=0

cleanup () {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# check NAME COMMAND...: one TAP line; the command's output goes to $tmp/last.
check () {
	name=$1; shift
	n=$((n + 1))
	if "$@" >"$tmp/last" 2>&1; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name"
		sed 's/^/# /' "$tmp/last"
		failed=1
	fi
}

# contains FILE TEXT...: every TEXT occurs in FILE.
contains () {
	file=$1; shift
	for text in "$@"; do
		grep -qF -- "$text" "$file" || { echo "missing: $text"; cat "$file"; return 1; }
	done
}

lmtp_swaks () {
	swaks --protocol LMTP --from sender@example.org --helo client.test --timeout 10 "$@"
}

echo "1..13"

for tool in swaks python3; do
	command -v "$tool" >/dev/null || { echo "Bail out! $tool is needed (see NOTES.md)"; exit 1; }
done

sock=$tmp/lmtp.sock
"$server" "$tmp/spool" "127.0.0.1:0,unix:$sock" 2000 >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
started () {
	i=0
	while [ $i -lt 100 ]; do
		grep -q '^ready$' "$tmp/server.out" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	cat "$tmp/server.err"
	return 1
}
check "test server starts on TCP and a Unix socket" started
port=$(sed -n 's/^listening 127\.0\.0\.1://p' "$tmp/server.out")

# 1. pipelined, two recipients, one delivered and one deferred, in RCPT order
swaks_mixed () {
	lmtp_swaks --server 127.0.0.1 --port "$port" --pipeline --to ok@desk.test,temp@desk.test \
		--data 'Subject: swaks

first line
.leading dot' >"$tmp/mixed" 2>&1
	contains "$tmp/mixed" "<-  250-PIPELINING" "<-  250 SIZE 2000" \
		"<-  250 2.0.0 <ok@desk.test> Delivered SUP-" "451 4.3.0 <temp@desk.test>" "221 2.0.0"
	# the delivered line comes before the deferred one
	ok_line=$(grep -n '<ok@desk.test> Delivered' "$tmp/mixed" | cut -d: -f1)
	temp_line=$(grep -n '451 4.3.0 <temp@desk.test>' "$tmp/mixed" | cut -d: -f1)
	[ "$ok_line" -lt "$temp_line" ]
}
check "swaks: pipelined, per-recipient replies in RCPT order" swaks_mixed

# 2. what was spooled is the message, dot-unstuffed, byte for byte
spooled_exact () {
	sha=$(sed -n 's/^delivered from=<sender@example.org> rcpts=<ok@desk.test>,<temp@desk.test> .* sha256=//p' "$tmp/server.out")
	[ -n "$sha" ] || { cat "$tmp/server.out"; return 1; }
	file=$tmp/spool/raw/$(echo "$sha" | cut -c1-2)/$sha
	printf 'Subject: swaks\r\n\r\nfirst line\r\n.leading dot\r\n' >"$tmp/expected"
	cmp "$tmp/expected" "$file" || { od -c "$file"; return 1; }
	[ "$(sha256sum <"$file" | cut -d' ' -f1)" = "$sha" ]
}
check "spool holds the unstuffed message under its SHA-256" spooled_exact

# 3-5. refusals at RCPT, over the Unix socket
swaks_refused () {
	rcpt=$1 want=$2
	lmtp_swaks --socket "$sock" --to "$rcpt" >"$tmp/refused" 2>&1
	rc=$?
	[ "$rc" -eq 24 ] || { echo "swaks exit $rc, want 24 (all recipients refused)"; cat "$tmp/refused"; return 1; }
	contains "$tmp/refused" "<** $want <$rcpt>"
}
check "swaks (unix socket): unknown user 550 5.1.1" swaks_refused nouser@desk.test "550 5.1.1"
check "swaks (unix socket): foreign domain 550 5.1.2" swaks_refused ok@elsewhere.test "550 5.1.2"
check "swaks (unix socket): bad reply token 550 5.7.1" swaks_refused badtoken+SUP-7.abc@desk.test "550 5.7.1"

# 6. over max_message_size (2000) after the dot: 552 5.3.4, nothing stored
swaks_too_big () {
	before=$(grep -c '^delivered' "$tmp/server.out")
	body=$(head -c 3000 /dev/zero | tr '\0' 'x' | fold -w 70)
	lmtp_swaks --server 127.0.0.1 --port "$port" --to ok@desk.test --body "$body" >"$tmp/big" 2>&1
	contains "$tmp/big" "552 5.3.4 <ok@desk.test>" &&
		[ "$(grep -c '^delivered' "$tmp/server.out")" -eq "$before" ]
}
check "swaks: message over the size limit 552 5.3.4" swaks_too_big

# 7. MAIL SIZE= over the limit is refused at MAIL (RFC 1870)
python_lmtp () {
	python3 - "$port" "$sock" "$@" >"$tmp/py" 2>&1 || { cat "$tmp/py"; return 1; }
}

check "smtplib: SIZE over the limit 552 5.3.4 at MAIL" python_lmtp <<'EOF'
import smtplib, sys
c = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
c.ehlo("client.test")
assert c.does_esmtp and c.has_extn("size") and c.esmtp_features["size"] == "2000", c.esmtp_features
code, msg = c.docmd("MAIL FROM:<a@example.org> SIZE=2001")
assert (code, msg[:5]) == (552, b"5.3.4"), (code, msg)
code, msg = c.docmd("MAIL FROM:<a@example.org> SIZE=1999 BODY=8BITMIME")
assert (code, msg[:5]) == (250, b"2.1.0"), (code, msg)
c.quit()
EOF

# 8. three recipients, one reply each after DATA, read with getreply()
check "smtplib: per-recipient replies after DATA via docmd/getreply" python_lmtp <<'EOF'
import smtplib, sys
c = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
c.ehlo("client.test")
assert c.docmd("MAIL FROM:<a@example.org>")[0] == 250
rcpts = ["ok@desk.test", "full@desk.test", "nouser@desk.test", "denied@desk.test", "ok2@desk.test"]
accepted = []
for r in rcpts:
    code, msg = c.docmd("RCPT TO:<%s>" % r)
    if code == 250:
        accepted.append(r)
    else:
        assert (code, msg[:5]) == (550, b"5.1.1"), (r, code, msg)
assert c.docmd("DATA")[0] == 354
c.send(b"Subject: py\r\n\r\n..x\r\n.\r\n")
got = [c.getreply() for _ in accepted]
want = [(250, b"2.0.0"), (452, b"4.3.1"), (550, b"5.7.1"), (250, b"2.0.0")]
assert [(code, msg[:5]) for code, msg in got] == want, got
assert b"<ok2@desk.test>" in got[3][1], got
# the session is still in step
assert c.noop() == (250, b"2.0.0 Ok"), "out of step"
c.quit()
EOF

# 9. one recipient through sendmail() over the Unix socket
check "smtplib (unix socket): sendmail with one recipient" python_lmtp <<'EOF'
import smtplib, sys
c = smtplib.LMTP(sys.argv[2])
refused = c.sendmail("a@example.org", ["ok@desk.test"], b"Subject: unix\r\n\r\nhi\r\n")
assert refused == {}, refused
c.quit()
EOF

# 10. CHUNKING: BDAT chunks (RFC 3030), per-recipient replies after LAST
check "smtplib: BDAT chunks and LAST" python_lmtp <<'EOF'
import smtplib, sys
c = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
c.ehlo("client.test")
assert c.has_extn("chunking")
assert c.docmd("MAIL FROM:<a@example.org>")[0] == 250
assert c.docmd("RCPT TO:<ok@desk.test>")[0] == 250
assert c.docmd("RCPT TO:<temp@desk.test>")[0] == 250
c.send(b"BDAT 12\r\nSubject: c\r\n")
assert c.getreply() == (250, b"2.0.0 12 octets received")
c.send(b"BDAT 9 LAST\r\n\r\n.\r\nhi\r\n")
got = [c.getreply() for _ in range(2)]
assert [(code, msg[:5]) for code, msg in got] == [(250, b"2.0.0"), (451, b"4.3.0")], got
c.quit()
EOF

# 11. LMTP is not SMTP: HELO/EHLO refused; VRFY, unknown verbs, sequence
check "smtplib: HELO/EHLO 500 5.5.1, VRFY 252, unknown 500 5.5.2, DATA first 503" python_lmtp <<'EOF'
import smtplib, sys
c = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
for cmd, want in [("HELO client.test", (500, b"5.5.1")), ("EHLO client.test", (500, b"5.5.1")),
                  ("LHLO client.test", (250, b"lmtp.")), ("VRFY ok@desk.test", (252, b"2.5.2")),
                  ("XYZZY", (500, b"5.5.2")), ("DATA", (503, b"5.5.1")),
                  ("RCPT TO:<ok@desk.test>", (503, b"5.5.1")), ("RSET", (250, b"2.0.0"))]:
    code, msg = c.docmd(cmd)
    assert (code, msg[:5]) == want, (cmd, code, msg)
c.quit()
EOF

# 12. SIGTERM: the server exits 0 and removes its socket file
stops () {
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	pid=
	[ "$rc" -eq 0 ] && [ ! -e "$sock" ] && [ -z "$(ls "$tmp/spool/tmp")" ]
}
check "SIGTERM: exit 0, socket file gone, spool tmp/ empty" stops

exit $failed
