"""The API token behind the request being served, for the audit rows it writes.

``auth.actor_of`` sets it for a bearer request; every audit writer of the service (``auth.audit``,
``accounts``, ``user_admin``) adds ``"token": <label>`` to the row's detail while it is set.  A
context variable: each request runs in its own copy of the context (Starlette runs a sync
endpoint in a worker thread under ``copy_context``), so a label never leaks into another request.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_LABEL: ContextVar[str] = ContextVar("pbxr_token_label", default="")


def set_token(label: str) -> None:
    _LABEL.set(label)


def tagged(detail: dict[str, Any]) -> dict[str, Any]:
    label = _LABEL.get()
    return {**detail, "token": label} if label else detail
