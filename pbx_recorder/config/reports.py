"""``web.reports``: where produced reports are mailed (``pbx-recorder reports run``), read and
validated at start-up (every error names its key, e.g. ``web.reports.smtp.from``).

    web:
      reports:
        smtp:                           # optional: without it reports are kept in the console only
          host: smtp.example.internal
          port: 587                     # default 587 (465: implicit TLS is not supported; use 587)
          starttls: true                # default true: STARTTLS before any credential is sent
          user: reports@example.com     # optional (no AUTH without it)
          password_file: /etc/pbx-recorder/smtp-password   # or password: (env PBX_RECORDER_...)
          from: reports@example.com     # required with host
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pbx_recorder.config.reader import Node
from pbx_recorder.config.secret import Secret

HOST_RE = r"[A-Za-z0-9_.:\[\]-]+"
#: one plain address (no display name, no list): the From of every mail and each recipient
ADDRESS_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    sender: str  #: ``from``
    port: int = 587
    starttls: bool = True
    user: str | None = None
    password: Secret | None = None


@dataclass(frozen=True)
class ReportsConfig:
    smtp: SmtpConfig | None = field(default=None)


def build_reports(web: Node) -> ReportsConfig:
    node = web.child("reports")  # a value that is not a mapping is reported by Node
    smtp = _smtp(node.child("smtp")) if node.raw("smtp") is not None else None
    node.finish()
    return ReportsConfig(smtp)


def _smtp(n: Node) -> SmtpConfig | None:
    host = n.get_str("host", regex=HOST_RE, what="host name or address")
    port = n.get_port("port", 587)
    starttls = n.get_bool("starttls", True)
    user = n.get_str("user", None, optional=True)
    password = n.get_secret("password")
    sender = n.get_str("from", "")
    n.finish()
    ok = bool(host)
    if not sender or not ADDRESS_RE.match(sender):
        n.error("from", "is required: one plain mail address (e.g. reports@example.com)")
        ok = False
    if password is not None and not user:
        n.error("user", "is required when a password is given")
        ok = False
    if user and not starttls:
        n.error("starttls", "must be true when a user is given (credentials are never sent in clear)")
        ok = False
    return SmtpConfig(host, sender, port, starttls, user, password) if ok else None


def is_address(text: str) -> bool:
    return bool(ADDRESS_RE.match(text)) and len(text) <= 254
