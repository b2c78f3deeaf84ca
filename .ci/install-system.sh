#!/usr/bin/env bash
# Installs the system packages the test suite and the demo need:
# Asterisk 16 (from Debian bullseye / bullseye-security), sipp, redis-server, sox, espeak-ng,
# opus-tools (opusenc/opusdec: archival Opus transcoding; Debian's sox cannot write Opus),
# Ceph 16 (ceph-mon, ceph-osd, radosgw: the S3 tests start a throwaway one-node RGW, a strict
# S3 server; nothing is configured in /etc/ceph, so no system Ceph service starts).
# PostgreSQL 15 (the multi-node catalog: the tests start private clusters; no system cluster is used).
# debootstrap (the sid chroot with Asterisk 22: .ci/install-asterisk22.sh).
# The Debian mirror is derived from this machine's own apt sources (their URIs: lines);
# no registry host is written here.
set -euo pipefail

need=()
command -v asterisk >/dev/null 2>&1 || need+=(asterisk)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v opusenc >/dev/null 2>&1 || need+=(opus-tools)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ -d /usr/share/asterisk/sounds/en ] || need+=(asterisk-core-sounds-en-gsm)
command -v radosgw >/dev/null 2>&1 || need+=(radosgw)
command -v ceph-mon >/dev/null 2>&1 || need+=(ceph-mon)
command -v ceph-osd >/dev/null 2>&1 || need+=(ceph-osd)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
# the console's browser tests (tests/browser): Selenium drives Debian's chromium; CJK glyphs for zh
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-system: everything present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Collect the Debian mirror URIs from deb822 .sources files and one-line .list files.
uris=$( { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } \
        | grep -E '^\s*URIs:' | sed -E 's/^\s*URIs:\s*//' | tr ' ' '\n' | sort -u || true)
uris="$uris
$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
        | grep -E '^\s*deb\s' | sed -E 's/^\s*deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}' || true)"
main_uri=$(echo "$uris" | grep -E '/debian/?$' | head -n1 || true)
sec_uri=$(echo "$uris" | grep -E '/debian-security/?$' | head -n1 || true)
if [ -z "$main_uri" ]; then
  echo "install-system: no Debian mirror found in the apt sources" >&2
  exit 1
fi
[ -n "$sec_uri" ] || sec_uri="${main_uri%/debian}/debian-security"

list=/etc/apt/sources.list.d/pbx-recorder-bullseye.sources
$SUDO tee "$list" >/dev/null <<SRC
Types: deb
URIs: ${main_uri}
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${sec_uri}
Suites: bullseye-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
# Prefer bookworm for everything; bullseye only for what bookworm lacks.
$SUDO tee /etc/apt/preferences.d/pbx-recorder-bullseye >/dev/null <<PREF
Package: *
Pin: release n=bullseye
Pin-Priority: 100

Package: *
Pin: release n=bullseye-security
Pin-Priority: 100
PREF

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# the fixed list, and whatever else was found missing above (chromium, chromium-driver,
# fonts-noto-cjk, postgresql-15 were checked but never installed before: a machine without
# them failed the browser tests)
$SUDO apt-get install -y -qq --no-install-recommends \
  asterisk asterisk-core-sounds-en-gsm sip-tester redis-server sox espeak-ng opus-tools debootstrap \
  ceph-mon ceph-osd ceph-base ceph-common radosgw "${need[@]}" >/dev/null
# A freshly installed package starts a system service on the default ports; the tests run
# private instances.  Stop only what THIS run installed: never an Asterisk or Redis that was
# already running on this host (a production PBX).
for pkg in "${need[@]}"; do
  case "$pkg" in
    asterisk)
      if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop asterisk 2>/dev/null || true; fi
      $SUDO pkill -x -u asterisk asterisk 2>/dev/null || true ;;
    redis-server)
      if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop redis-server 2>/dev/null || true; fi
      $SUDO pkill -x -u redis redis-server 2>/dev/null || true ;;
  esac
done
echo "install-system: installed ${need[*]}"
