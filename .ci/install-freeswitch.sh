#!/usr/bin/env bash
# Builds the FreeSWITCH 1.11.1 the FreeSWITCH real tests and `scripts/demo --freeswitch` run,
# once per machine: the shared source folder that sits beside the repository clone
# (../shared/freeswitch-src: tarballs + build.sh, see its README) is built into
# $HOME/.cache/pbxr-freeswitch/1.11.1 (override: PBXR_FREESWITCH_PREFIX).  build.sh keeps a
# stamp of the tarballs' sha256s there: a later run with the same sources returns at once.
# It installs its Debian build dependencies with apt-get from this machine's own apt sources.
#
# No shared source and no earlier build: a warning, exit 0 (Asterisk-only machines), unless
# PBXR_REQUIRE_FREESWITCH=1 (.ci/run sets it): then it is an error.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$(dirname "$REPO")/shared/freeswitch-src"
PREFIX="${PBXR_FREESWITCH_PREFIX:-$HOME/.cache/pbxr-freeswitch/1.11.1}"

if [ -f "$SRC/build.sh" ]; then
  echo "install-freeswitch: building from $SRC into $PREFIX (skipped at once if the stamp matches)"
  bash "$SRC/build.sh" "$PREFIX"
elif [ -x "$PREFIX/bin/freeswitch" ] && [ -f "$PREFIX/.pbxr-build-stamp" ]; then
  echo "install-freeswitch: no $SRC; using the earlier build in $PREFIX"
elif [ "${PBXR_REQUIRE_FREESWITCH:-0}" = 1 ]; then
  echo "install-freeswitch: ERROR: no FreeSWITCH source at $SRC and no build in $PREFIX" >&2
  exit 1
else
  echo "install-freeswitch: WARNING: no FreeSWITCH source at $SRC and no build in $PREFIX;" \
       "the FreeSWITCH tests and 'scripts/demo --freeswitch' will not run" >&2
fi
