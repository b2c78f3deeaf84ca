"""Asterisk's host access rules (``permit`` / ``deny`` / ``acl``), parsed and applied as Asterisk
applies them, so that ``asterisk check`` can say whether the recorder's address may log in and
whether anybody else may.  Pure: no file, no socket.

What Asterisk does (``main/acl.c``, read for this module, not copied):

- A manager user's ``permit`` and ``deny`` lines build one unnamed ACL, in the order written; each
  ``acl = a,b`` line adds the named ACLs ``[a]``, ``[b]`` of ``acl.conf`` as ACLs of their own.
- An address passes only if every ACL of the user lets it pass; a named ACL that cannot be found
  refuses every address.
- Within one ACL the answer starts as "allow" and every rule whose network holds the address
  sets it to the rule's sense: the last matching rule wins.  A value may list several networks
  (``permit = 10.0.0.0/8, 192.168.0.0/16``); a network is ``address[/mask]`` with the mask as a
  prefix length or written out (``255.255.255.0``), none meaning the one host; ``!`` before the
  address inverts the rule's sense.  IPv4 rules apply to IPv4 (and IPv4-mapped IPv6) addresses
  only, IPv6 rules to IPv6 addresses only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AclSyntaxError(ValueError):
    """A rule Asterisk does not accept (the text says which)."""


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
    found: bool = True  # a named ACL missing from acl.conf refuses every address


def _plain(address: IpAddress) -> IpAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it maps (Asterisk converts rules so)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _mask(text: str | None, version: int) -> int:
    bits = 32 if version == 4 else 128
    if text is None:
        return (1 << bits) - 1
    text = text.strip()
    if "." in text or ":" in text:
        try:
            written = _plain(ipaddress.ip_address(text))
        except ValueError as exc:
            raise AclSyntaxError(f"invalid netmask {text!r}") from exc
        if written.version != version:
            raise AclSyntaxError(f"netmask {text!r} is not of the address's family")
        return int(written)
    if not text.isdigit() or int(text) > bits:
        raise AclSyntaxError(f"invalid prefix length {text!r}")
    return ((1 << bits) - 1) ^ ((1 << (bits - int(text))) - 1)


def parse_rules(sense: str, value: str) -> list[Rule]:
    """The rules of one ``permit`` / ``deny`` line (several networks separated by commas)."""
    allowing = sense.strip().lower().startswith("p")
    out = []
    for item in value.split(","):
        item = item.strip()
        inverted = item.startswith("!")
        address_text, _, mask_text = item.lstrip("!").partition("/")
        try:
            address = _plain(ipaddress.ip_address(address_text.strip()))
        except ValueError as exc:
            raise AclSyntaxError(f"invalid address {address_text.strip()!r} in {sense} = {value}") from exc
        mask = _mask(mask_text if "/" in item else None, address.version)
        out.append(Rule(allowing != inverted, address.version, int(address) & mask, mask))
    return out


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


def user_acls(lines: Iterable[tuple[str, str]], named: dict[str, list[tuple[str, str]]]) -> list[Acl]:
    """A manager user's ACLs from its ``(key, value)`` lines in order (``permit``, ``deny``,
    ``acl``) and ``named``: the sections of acl.conf (name -> its ``(key, value)`` lines).
    Raises AclSyntaxError for a rule Asterisk does not accept."""
    own: list[Rule] = []
    acls: list[Acl] = []
    for key, value in lines:
        if key in ("permit", "deny"):
            own += parse_rules(key, value)
        elif key == "acl":
            for name in (n.strip() for n in value.split(",")):
                if name and all(a.name.lower() != name.lower() for a in acls):
                    section = next((v for k, v in named.items() if k.lower() == name.lower()), None)
                    rules = [r for k, v in section or [] if k in ("permit", "deny")
                             for r in parse_rules(k, v)]
                    acls.append(Acl(name, tuple(rules), found=section is not None))
    return ([Acl("", tuple(own))] if own else []) + acls
