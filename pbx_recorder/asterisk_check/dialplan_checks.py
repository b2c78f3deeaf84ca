"""Checks of extensions.conf (with its includes): the project's snippet is in, configured and called.

:data:`SUBROUTINES` are the contexts ``dialplan/asterisk/pbx-recorder.conf`` defines and
:data:`GLOBALS` the variables ``pbx-recorder-globals.conf`` sets; ``tests/unit/test_asterisk_check.py``
holds both to those files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pbx_recorder.asterisk_check.conf_tree import ConfTree
from pbx_recorder.asterisk_check.findings import ERROR, OK, WARNING, Finding
from pbx_recorder.config.model import AgiConfig

SUBROUTINES = ("pbx-recorder-consent",)
GLOBALS = ("PBXREC_AGI_HOST", "PBXREC_AGI_PORT", "PBXREC_FAILMODE", "PBXREC_UNAVAILABLE_PROMPT",
           "PBXREC_DECIDE_FIRST")
SNIPPET = "dialplan/asterisk/pbx-recorder.conf"
GLOBALS_SNIPPET = "dialplan/asterisk/pbx-recorder-globals.conf"
_WILDCARD = {"0.0.0.0", "::", ""}


def _gosub(name: str) -> re.Pattern[str]:
    """``Gosub(name,...)`` or ``GosubIf(cond?name,...)``, any case, spaces allowed."""
    return re.compile(rf"\bgosub(?:if)?\s*\(.*?\b{re.escape(name)}\s*,", re.IGNORECASE)


def check_dialplan(tree: ConfTree, agi: AgiConfig) -> Iterator[Finding]:
    for name in SUBROUTINES:
        section = tree.section(name)
        if section is None:
            yield Finding("dialplan-snippet-missing", ERROR, str(tree.path),
                          f"no [{name}] context: the project's snippet is not included",
                          f"copy {SNIPPET} to the Asterisk folder and `#include` it in extensions.conf")
            continue
        yield Finding("dialplan-snippet", OK, str(section.origin), f"[{name}] is defined")
        call = _gosub(name)
        calls = [(s.name, where) for s in tree.sections if s.name not in SUBROUTINES and not s.template
                 for key, value, where in s.items if key in ("exten", "same") and call.search(value)]
        if calls:
            context, where = calls[0]
            yield Finding("dialplan-gosub", OK, str(where),
                          f"[{context}] calls {name} ({len(calls)} call(s) in all)")
        else:
            yield Finding("dialplan-gosub-missing", ERROR, str(tree.path),
                          f"nothing calls {name}: no call is ever recorded",
                          f"add `same => n,Gosub({name},s,1(inbound,${{EXTEN}},,<region>))` "
                          "before Dial()/Queue()")
    yield from _globals(tree, agi)


def _globals(tree: ConfTree, agi: AgiConfig) -> Iterator[Finding]:
    section = tree.section("globals")
    host = section.last("pbxrec_agi_host") if section else None
    if section is None or host is None:
        yield Finding("dialplan-globals-missing", ERROR, str(section.origin if section else tree.path),
                      "[globals] does not set PBXREC_AGI_HOST: the snippet takes the fail direction "
                      "for every call", f"`#include` {GLOBALS_SNIPPET} inside [globals]")
        return
    port = section.last("pbxrec_agi_port")
    port_value = port[0].strip() if port else ""
    if port is None or port_value != str(agi.port):
        yield Finding("dialplan-agi-port", ERROR, str(port[1] if port else section.origin),
                      f"PBXREC_AGI_PORT is {port_value or 'unset'}, the recorder listens on {agi.port} "
                      "(pbx.agi.port)", "make PBXREC_AGI_PORT and pbx.agi.port agree")
    if agi.host not in _WILDCARD and host[0].strip() != agi.host:
        yield Finding("dialplan-agi-host", WARNING, str(host[1]),
                      f"PBXREC_AGI_HOST is {host[0].strip()}, the recorder listens on {agi.host} "
                      "(pbx.agi.host)",
                      "make PBXREC_AGI_HOST the address the recorder's AGI server listens on")
    elif port is not None and port_value == str(agi.port):
        yield Finding("dialplan-agi", OK, str(host[1]), f"the snippet calls the recorder at "
                      f"{host[0].strip()}:{port_value}")
