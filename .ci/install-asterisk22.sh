#!/usr/bin/env bash
# Asterisk 22 for the real tests: Debian has it only in sid, so it lives in a sid chroot made with
# debootstrap, once per machine, in a cache folder outside the clone:
#   ${PBXREC_SID_ROOT:-/var/cache/pbx-recorder/sid-asterisk}
# The chroot is complete when its stamp file exists (.pbx-recorder-stamp: the Asterisk version);
# a half-made chroot (interrupted run) is built again from scratch in "<root>.build" and moved
# into place only when finished.  The tests run it in a private mount namespace
# (pbx_recorder/testbed/installs.py); nothing here stays mounted.
# The Debian mirror is derived from this machine's own apt sources (their URIs: lines), as
# install-system.sh does; no registry host is written here.
set -euo pipefail

root="${PBXREC_SID_ROOT:-/var/cache/pbx-recorder/sid-asterisk}"
stamp="$root/.pbx-recorder-stamp"
if [ -s "$stamp" ]; then
  echo "install-asterisk22: $root ready ($(cat "$stamp"))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-asterisk22: debootstrap and chroot need root" >&2
  exit 1
fi
command -v debootstrap >/dev/null 2>&1 || {
  echo "install-asterisk22: debootstrap missing (run .ci/install-system.sh)" >&2
  exit 1
}

uris=$( { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } \
        | grep -E '^\s*URIs:' | sed -E 's/^\s*URIs:\s*//' | tr ' ' '\n' | sort -u || true)
uris="$uris
$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
        | grep -E '^\s*deb\s' | sed -E 's/^\s*deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}' || true)"
main_uri=$(echo "$uris" | grep -E '/debian/?$' | head -n1 || true)
if [ -z "$main_uri" ]; then
  echo "install-asterisk22: no Debian mirror found in the apt sources" >&2
  exit 1
fi

mkdir -p "$(dirname "$root")"
exec 9>"$(dirname "$root")/.sid-asterisk.lock"
flock 9  # one builder per machine; a second run waits, then finds the stamp
if [ -s "$stamp" ]; then
  echo "install-asterisk22: $root ready ($(cat "$stamp"))"
  exit 0
fi

build="$root.build"
started=$(date +%s)
if [ ! -e "$build/.debootstrap-done" ]; then  # a finished base system is reused after a failed apt step
  rm -rf --one-file-system "$build"
  echo "install-asterisk22: debootstrap sid into $build"
  debootstrap --variant=minbase --components=main \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg sid "$build" "$main_uri" >"$build.log" 2>&1 || {
    tail -n 30 "$build.log" >&2
    exit 1
  }
  touch "$build/.debootstrap-done"
fi

# Packages must not start services inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$build/usr/sbin/policy-rc.d"
chmod 755 "$build/usr/sbin/policy-rc.d"
cat >"$build/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: ${main_uri}
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
rm -f "$build/etc/apt/sources.list"

# sid's Release file is valid for a week; a mirror snapshot older than that is refused by apt
# (the signature is still checked).  Only then is the date check skipped, and it is said.
apt_opts=""
mkdir -p "$build/tmp/pbxrec-probe/partial"
if ! chroot "$build" apt-get -o Dir::State::Lists=/tmp/pbxrec-probe update -qq >"$build.probe" 2>&1; then
  cat "$build.probe" >>"$build.log"
  if grep -q 'is expired' "$build.probe"; then
    echo "install-asterisk22: WARNING: the mirror's sid Release file has expired; not checking Valid-Until" >&2
    apt_opts="-o Acquire::Check-Valid-Until=false"
  fi
fi
rm -rf "$build/tmp/pbxrec-probe" "$build.probe"

# apt and the maintainer scripts want /proc and /dev: mount them in a private namespace so
# they vanish with it, whatever happens to this script.
unshare -m --propagation private -- sh -ec '
  b="$1"; opts="$2"
  mount -t proc proc "$b/proc"
  mount --rbind /dev "$b/dev"
  chroot "$b" env DEBIAN_FRONTEND=noninteractive apt-get $opts update -qq
  chroot "$b" env DEBIAN_FRONTEND=noninteractive apt-get $opts install -y -qq --no-install-recommends \
    asterisk asterisk-modules asterisk-core-sounds-en-gsm
  chroot "$b" apt-get clean
' sh "$build" "$apt_opts" >>"$build.log" 2>&1 || {
  tail -n 30 "$build.log" >&2
  exit 1
}
version=$(chroot "$build" dpkg-query -W -f '${Version}' asterisk)
rm -rf "$build/var/lib/apt/lists/"* "$build/.debootstrap-done"
rm -rf --one-file-system "$root"
echo "asterisk $version" >"$build/.pbx-recorder-stamp"
mv "$build" "$root"
mv "$build.log" "$root.log"
echo "install-asterisk22: $root ready (asterisk $version, $(( $(date +%s) - started )) s)"
