"""``pbx-recorder asterisk check``: read the admin's Asterisk config and say what is wrong.

Read-only.  ``conf_tree`` expands ``#include``s and has pyst2 parse the lines; ``manager_checks``
(with ``acl_rules``: the AMI user's permit/deny/acl applied as Asterisk applies them, acl.conf's
named ACLs included) and ``dialplan_checks`` turn the parsed tree and the recorder's own config
into named findings.
A file that cannot be read or parsed is one finding ``unreadable`` and makes the exit code 2; the
other file is still checked.
"""

from __future__ import annotations

import socket
from pathlib import Path

from pbx_recorder.asterisk_check.conf_tree import ConfTree, read_tree
from pbx_recorder.asterisk_check.dialplan_checks import check_dialplan
from pbx_recorder.asterisk_check.findings import ERROR, Finding, exit_code, from_note
from pbx_recorder.asterisk_check.manager_checks import Source, check_manager
from pbx_recorder.config import Config
from pbx_recorder.errors import ConfigError

__all__ = ["Finding", "exit_code", "run_check"]


def _read(path: Path, etc: Path, findings: list[Finding]) -> ConfTree | None:
    try:
        tree = read_tree(path, etc)
    except ConfigError as exc:
        findings.append(Finding("unreadable", ERROR, str(exc.file or path), exc.message,
                                "make it a readable Asterisk config file (the check never writes it)"))
        return None
    findings.extend(from_note(note) for note in tree.notes)
    return tree


def recorder_addresses(host: str, port: int) -> list[str]:
    """The addresses the recorder's AMI connection to ``host`` may come from, as this host reaches
    it: for each address ``host`` resolves to (the connection tries them in order), the local end
    of a UDP socket connected there (no packet is sent).  Empty when none can be told."""
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return found
    for family, _, _, _, target in infos:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(target)
                local = str(probe.getsockname()[0]).split("%", 1)[0]
        except OSError:
            continue
        if local not in found:
            found.append(local)
    return found


def run_check(etc: Path, config: Config, recorder_address: str | None = None) -> tuple[list[Finding], int]:
    """Every finding about ``etc``'s manager.conf (with acl.conf's named ACLs) and extensions.conf,
    and the exit code (0/1/2).  ``recorder_address``: where Asterisk sees the recorder's AMI
    connection come from (default: this host's addresses toward ``pbx.ami.host``)."""
    findings: list[Finding] = []
    manager = _read(etc / "manager.conf", etc, findings)
    if manager is not None:
        acl_conf = _read(etc / "acl.conf", etc, findings) if (etc / "acl.conf").exists() else None
        ami = config.pbx.ami
        source = (Source([recorder_address], given=True) if recorder_address is not None
                  else Source(recorder_addresses(ami.host, ami.port), given=False))
        findings.extend(check_manager(manager, ami, acl_conf, source))
    extensions = _read(etc / "extensions.conf", etc, findings)
    if extensions is not None:
        findings.extend(check_dialplan(extensions, config.pbx.agi))
    return findings, exit_code(findings, unreadable=manager is None or extensions is None)
