"""The FastAGI environment, read so that a caller cannot forge it (pure: lines in, environment out).

Why: Asterisk writes the environment raw (res/res_agi.c ``launch_netscript`` then ``setup_env``,
the same order in Asterisk 16 and 22)::

    agi_network, agi_network_script, agi_request, agi_channel, agi_language, agi_type,
    agi_uniqueid, agi_version, agi_callerid, agi_calleridname, agi_callingpres, agi_callingani2,
    agi_callington, agi_callingtns, agi_dnid, agi_rdnis, agi_context, agi_extension,
    agi_priority, agi_enhanced, agi_accountcode, agi_threadid, agi_arg_1 .. agi_arg_N, ""

and some values are the caller's: PJSIP percent-decodes a From user such as
``1%0d%0aagi_arg_1:%20direction=internal`` into the caller number, so ``agi_callerid`` (and
``agi_calleridname``, ``agi_dnid``, ``agi_rdnis``, ``agi_extension``, an argument holding
``${EXTEN}``) can carry whole forged lines, or a blank line that ends the environment early.

How it is read:

1. *Where it ends* is not the first blank line: the connection sends ``GET FULL VARIABLE
   <nonce>`` at connect (consent/agi_protocol.py ``AgiParser.sync_command``), and every line up
   to the exact reply ``200 result=1 (<nonce>)`` is environment.  Asterisk reads no command
   before it has written the whole environment, and the caller cannot guess the nonce, so
   neither an injected blank line nor an injected reply ends it early.
2. *Which line is genuine*: a forged line can only sit right after the value that carries it,
   before the next line Asterisk writes.  So the keys written before the first caller value
   (up to ``agi_callerid`` itself) take their **first** occurrence; the arguments are taken from
   the end, ``agi_arg_N`` being the last argument line and each ``agi_arg_n`` the last one
   *before* the ``agi_arg_n+1`` taken; then the keys between ``agi_callerid`` and the arguments,
   from ``agi_threadid`` back, each the last one before the line taken after it.  A value can
   still replace *itself* (a caller value stays a caller value), and the *last* argument must
   not hold caller text (the snippet's is ``t0=`` / ``lang=``).
3. Any line not taken (a repeated or unknown key, a line without a key, a blank line inside) is
   an anomaly: the environment is ``tampered``.  The connection logs it once, the consent
   evidence says ``agi_env_tampered``; the arguments used are the genuine ones, so a tampered
   environment neither skips a consent a rule requires nor turns ``record: force`` into an
   unrecorded call.  Unknown keys are left out of the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# written by Asterisk before the first value a caller controls (agi_callerid included): first wins
HEAD_KEYS = ("agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language",
             "agi_type", "agi_uniqueid", "agi_version", "agi_callerid")
# written after agi_callerid and before the arguments, in this order: chained from the end
TAIL_KEYS = ("agi_calleridname", "agi_callingpres", "agi_callingani2", "agi_callington",
             "agi_callingtns", "agi_dnid", "agi_rdnis", "agi_context", "agi_extension",
             "agi_priority", "agi_enhanced", "agi_accountcode", "agi_threadid")
MAX_ARG_NUMBER = 256  # no more argument lines than environment lines (agi_protocol.MAX_ENV_LINES)
_ARG = re.compile(r"agi_arg_([1-9][0-9]{0,2})")


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    env: dict[str, str]
    tampered: bool = False  # lines Asterisk did not write as such (see the module docstring)
    anomalies: tuple[str, ...] = ()  # what was wrong, by kind and known key name only (no values)


def parse_environment(lines: list[str]) -> AgiEnvironment:
    """All the lines before the resync reply -> the genuine environment, and whether it was tampered.
    The one blank line Asterisk ends the environment with is the last line (absent: tolerated)."""
    anomalies: list[str] = []
    entries: list[tuple[int, str, str]] = []  # (line index, key, value)
    for index, line in enumerate(lines):
        if not line.strip():
            if index != len(lines) - 1:
                anomalies.append("blank line inside")
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            anomalies.append("line without a key")
            continue
        entries.append((index, key.strip(), value.strip()))
    taken: dict[str, tuple[int, str]] = {}
    for key in HEAD_KEYS:
        first = next((e for e in entries if e[1] == key), None)
        if first is not None:
            taken[key] = (first[0], first[2])
    cursor = _take_arguments(entries, taken, len(lines))
    for key in reversed(TAIL_KEYS):
        last = next((e for e in reversed(entries) if e[1] == key and e[0] < cursor), None)
        if last is not None:
            taken[key] = (last[0], last[2])
            cursor = last[0]
    used = {index for index, _ in taken.values()}
    for index, key, _ in entries:
        if index not in used:
            anomalies.append(f"repeated {key}" if _known(key) else "unknown key")
    env = {key: value for key, (_, value) in sorted(taken.items(), key=lambda kv: kv[1][0])}
    return AgiEnvironment(env, bool(anomalies), tuple(anomalies))


def _take_arguments(entries: list[tuple[int, str, str]], taken: dict[str, tuple[int, str]],
                    end: int) -> int:
    """``agi_arg_N`` .. ``agi_arg_1`` chained from the end; returns the index of the first one taken
    (``end`` when none).  A number missing below the last is skipped (parse_args stops there)."""
    args = [(index, int(m.group(1)), value) for index, key, value in entries
            if (m := _ARG.fullmatch(key)) and int(m.group(1)) <= MAX_ARG_NUMBER]
    if not args:
        return end
    cursor = end
    for number in range(args[-1][1], 0, -1):
        found = next((a for a in reversed(args) if a[1] == number and a[0] < cursor), None)
        if found is not None:
            taken[f"agi_arg_{number}"] = (found[0], found[2])
            cursor = found[0]
    return cursor


def _known(key: str) -> bool:
    match = _ARG.fullmatch(key)
    if match is not None:
        return int(match.group(1)) <= MAX_ARG_NUMBER
    return key in HEAD_KEYS or key in TAIL_KEYS
