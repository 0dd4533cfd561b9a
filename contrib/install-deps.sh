#!/bin/sh
# install-deps.sh - install the Debian 12 packages maildesk needs.
#   contrib/install-deps.sh          build and run
#   contrib/install-deps.sh --test   also the peers the test suite starts
#                                    (Postfix, Dovecot, swaks, an SMTP
#                                    catcher) and clang for fuzzing
# Run as root (or through sudo).
set -eu

build="build-essential autoconf automake libtool pkg-config
libgmime-3.0-dev libglib2.0-dev libjson-glib-dev libpcre2-dev
libsqlite3-dev libcurl4-gnutls-dev libetpan-dev libxml2-dev
libytnef0-dev libgnutls28-dev"
# libcurl4-gnutls-dev, not -openssl-dev: libetpan-dev depends on it.
testing="postfix swaks dovecot-imapd python3 python3-aiosmtpd openssl
clang libclang-rt-14-dev sqlite3 procps iproute2"

pkgs=$build
[ "${1:-}" = "--test" ] && pkgs="$build $testing"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

export DEBIAN_FRONTEND=noninteractive
# Postfix asks which kind of mail server to be; we run private instances.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
