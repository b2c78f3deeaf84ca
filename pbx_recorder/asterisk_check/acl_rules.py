"""Asterisk's host access rules (``permit`` / ``deny`` / ``acl``), parsed and applied as Asterisk
applies them, so that ``asterisk check`` can say whether the recorder's address may log in and
whether anybody else may.  No file and no network: an address is read with the C library's
``getaddrinfo(AI_NUMERICHOST)``, as Asterisk's ``ast_sockaddr_parse`` reads it.

What Asterisk does (``main/acl.c``, ``main/named_acl.c``, ``manager.c``; read for this module,
not copied):

- A manager user's ``permit`` and ``deny`` lines build one unnamed ACL, in the order written; each
  name on an ``acl = a,b`` line adds the named ACL ``[a]`` of ``acl.conf`` as an ACL of its own
  (the name as written after leading blanks, compared case-sensitively; a name given twice is an
  error, and manager.c drops a user whose ACL has an error, as it does for an invalid rule).
- An address passes only if every ACL of the user lets it pass.  A named ACL that acl.conf does
  not define refuses every address; but when acl.conf itself is not loaded (missing, or refused
  whole because one of its rules is invalid) a named ACL holds no rule and lets every address in.
- Within one ACL the answer starts as "allow" and every rule whose network holds the address
  sets it to the rule's sense: the last matching rule wins.  A value may list several networks
  separated by commas (a blank after a comma reaches the C library, which refuses the address:
  ``asterisk check`` warns, and reads the list without it); a
  network is ``address[/mask]``, the mask a prefix length or written out (``255.255.255.0``),
  none meaning the one host; one ``!`` before the address inverts the rule's sense.  IPv4 rules
  apply to IPv4 (and IPv4-mapped IPv6) addresses only, IPv6 rules to IPv6 addresses only.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PREFIX = re.compile(r"\s*([+-]?[0-9]+)")  # what sscanf("%d") takes from a prefix length


class AclSyntaxError(ValueError):
    """A rule Asterisk does not accept (the text says which; ``where``: its line)."""

    def __init__(self, message: str, where: Any = None) -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True, slots=True)
class Rule:
    allow: bool
    version: int  # 4 or 6
    network: int  # the address with the mask applied
    mask: int

    def holds(self, address: IpAddress) -> bool:
        return (int(address) & self.mask) == self.network


@dataclass(frozen=True, slots=True)
class Acl:
    name: str  # "" for the user's own permit/deny lines
    rules: tuple[Rule, ...]
    found: bool = True  # a named ACL acl.conf does not define refuses every address


def _plain(address: IpAddress) -> IpAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it maps (Asterisk converts rules so)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def numeric_address(text: str) -> IpAddress:
    """``text`` read as Asterisk reads an ACL address: brackets around an IPv6 address allowed,
    then the C library's numeric parse (it takes ``192.168.001.0`` as glibc does); ValueError."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text or text != text.strip():
        raise ValueError(text)
    try:
        info = socket.getaddrinfo(text, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError) as exc:
        raise ValueError(text) from exc
    return _plain(ipaddress.ip_address(str(info[0][4][0]).split("%", 1)[0]))


def _mask(text: str | None, version: int) -> int:
    bits = 32 if version == 4 else 128
    if text is None:
        return (1 << bits) - 1
    if "." in text or ":" in text:
        try:
            written = numeric_address(text)
        except ValueError as exc:
            raise AclSyntaxError(f"invalid netmask {text!r}") from exc
        if written.version != version:
            raise AclSyntaxError(f"netmask {text!r} is not of the address's family")
        return int(written)
    found = _PREFIX.match(text)
    if found is None or not 0 <= int(found.group(1)) <= bits:
        raise AclSyntaxError(f"invalid prefix length {text!r}")
    return ((1 << bits) - 1) ^ ((1 << (bits - int(found.group(1)))) - 1)


def parse_rules(sense: str, value: str) -> list[Rule]:
    """The rules of one ``permit`` / ``deny`` line (several networks separated by commas)."""
    allowing = sense.strip().lower().startswith("p")
    out = []
    for item in (i.strip() for i in value.split(",")):  # (a blank after a comma: see blanks_after_commas)
        inverted = item.startswith("!")
        address_text, slash, mask_text = item[1:].partition("/") if inverted else item.partition("/")
        try:
            address = numeric_address(address_text)
        except ValueError as exc:
            raise AclSyntaxError(f"invalid address {address_text!r} in {sense} = {value}") from exc
        mask = _mask(mask_text if slash else None, address.version)
        out.append(Rule(allowing != inverted, address.version, int(address) & mask, mask))
    return out


def blanks_after_commas(value: str) -> bool:
    """A list written ``a, b``: Asterisk passes `` b`` to the C library, which refuses it."""
    return any(item != item.lstrip() for item in value.split(",")[1:])


def passes(acl: Acl, address: IpAddress) -> bool:
    """Does ``address`` pass this one ACL?"""
    if not acl.found:
        return False
    address = _plain(address)
    allowed = True
    for rule in acl.rules:
        if rule.version == address.version and rule.holds(address):
            allowed = rule.allow
    return allowed


def refused_by(acls: Sequence[Acl], address: str | IpAddress) -> Acl | None:
    """The first ACL that refuses ``address`` (None: every ACL lets it pass, as Asterisk decides)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    return next((acl for acl in acls if not passes(acl, ip)), None)


def named_acls(sections: Iterable[tuple[str, Iterable[tuple[str, str, Any]]]]) -> dict[str, tuple[Rule, ...]]:
    """acl.conf's named ACLs (``[general]`` is not one) from its ``(name, [(key, value, where)])``
    sections; AclSyntaxError (with the rule's line) when a rule is invalid: Asterisk then refuses
    the whole file."""
    out: dict[str, tuple[Rule, ...]] = {}
    for name, items in sections:
        if name == "general":
            continue
        out[name] = tuple(r for key, value, where in items if key in ("permit", "deny")
                          for r in _rules_at(key, value, where))
    return out


def _rules_at(key: str, value: str, where: Any) -> list[Rule]:
    """:func:`parse_rules`, an error naming the rule's line."""
    try:
        return parse_rules(key, value)
    except AclSyntaxError as exc:
        raise AclSyntaxError(str(exc), where) from exc


def user_acls(lines: Iterable[tuple[str, str, Any]], named: dict[str, tuple[Rule, ...]] | None) -> list[Acl]:
    """A manager user's ACLs from its ``(key, value, where)`` lines in order (``permit``, ``deny``,
    ``acl``) and ``named``: acl.conf's named ACLs (None: acl.conf not loaded, every named ACL
    holds no rule).  AclSyntaxError for a rule or a list Asterisk does not accept."""
    own: list[Rule] = []
    acls: list[Acl] = []
    for key, value, where in lines:
        if key in ("permit", "deny"):
            own += _rules_at(key, value, where)
        elif key == "acl":
            for name in (n.lstrip(" \t") for n in value.split(",")):
                if any(a.name == name for a in acls):
                    raise AclSyntaxError(f"named ACL {name!r} given twice", where)
                if named is None:
                    acls.append(Acl(name, ()))
                else:
                    acls.append(Acl(name, named.get(name, ()), found=name in named))
    return ([Acl("", tuple(own))] if own else []) + acls
