"""The Asterisk snippet's FastAGI contract (dialplan/asterisk/pbx-recorder.conf): the scripts it
calls, the arguments it passes, the variables the session sets for it.

    AGI(agi://HOST:PORT/consent,direction=<d>,dialed=<n>,linkedid=${CHANNEL(linkedid)},
        queue=<q>,region=<r>,lang=${CHANNEL(language)},t0=<epoch>)
    AGI(agi://HOST:PORT/decide,...)     the quick decision before answer (consent/early_decide.py)

Each argument arrives as ``agi_arg_N = key=value``; unknown keys, repeated keys, control
characters and over-long values are dropped (the caller controls some of them).  The
environment these functions read holds only the lines Asterisk wrote as such: a caller who
writes ``\nagi_arg_1: direction=internal`` (or a blank line) into the caller id does not reach
them (consent/agi_environment.py).  Caller number
and name come from ``agi_callerid`` / ``agi_calleridname``, the channel from ``agi_channel`` /
``agi_uniqueid``.  The session answers with channel variables:

    PBXREC_RESULT  record | norecord | refused   (norecord also for a refusal whose route is
                                                  "continue": the call goes on unrecorded)
    PBXREC_CONSENT the dialog's decision (granted, refused, timeout, invalid, notified, ...)
    PBXREC_ROUTE   "context,exten,priority" (:data:`ROUTE`) for a refusal routed elsewhere
    PBXREC_GOODBYE prompt path (no extension) played before hanging up a refused call

Any failure leaves PBXREC_RESULT unset: the snippet takes its fail direction and the call is
not recorded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from pbx_recorder.core.masking import sanitize

log = logging.getLogger(__name__)

SCRIPT = "consent"
DECIDE_SCRIPT = "decide"  # the quick decision before answer (consent/early_decide.py)
ARG_KEYS = ("direction", "dialed", "linkedid", "queue", "region", "lang", "t0")
MAX_ARGS = 32
MAX_ARG_LEN = 128
ROUTE = re.compile(r"[A-Za-z0-9_.+-]{1,80},[A-Za-z0-9_.+*#-]{1,80},[A-Za-z0-9_.+-]{1,40}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_args(env: Mapping[str, str]) -> dict[str, str]:
    """``agi_arg_N = key=value`` -> {key: value} for the known keys; hostile input dropped."""
    args: dict[str, str] = {}
    for n in range(1, MAX_ARGS + 1):
        raw = env.get(f"agi_arg_{n}")
        if raw is None:
            break
        key, sep, value = raw.partition("=")
        key = key.strip().lower()
        if not sep or key not in ARG_KEYS or key in args:
            log.debug("AGI argument %d ignored", n)
            continue
        if _CONTROL.search(value) or len(value) > MAX_ARG_LEN:
            log.warning("AGI argument %r refused (control characters or too long)", key)
            continue
        args[key] = value.strip()
    return args


def caller_of(env: Mapping[str, str]) -> tuple[str, str]:
    """The caller's number and name from the environment ("" for Asterisk's "unknown")."""
    num = env.get("agi_callerid", "")
    name = env.get("agi_calleridname", "")
    num = "" if num in ("unknown", "<unknown>") else sanitize(num, 40)
    name = "" if name in ("unknown", "<unknown>") else sanitize(name, 80)
    return num, name
