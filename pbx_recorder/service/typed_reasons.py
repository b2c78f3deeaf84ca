"""Reasons people typed for a request (a replay request's, a deletion request's, a refusal's note)
as the console and the API show them to others: numbers masked (:func:`core.masking.shown_text`)
to anyone but the person who typed them, as marks and QA comments are.

A reason is free text: "caller 13800138000 disputes the charge" is what a colleague writes, and the
approver who reads it holds no ``calls.unmask`` necessarily, nor does a requester reading the list
need another's numbers.  A card number was redacted for good when the reason was stored; other
numbers stay in the catalog as typed (the three-year destruction records keep them) and are shown
in clear only to their author, or to a role holding ``calls.unmask`` that asks for it
(``?unmask=1``), which the list's or the view's audit row records (``"unmask": true``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from pbx_recorder.core.masking import shown_text
from pbx_recorder.service.roles import may


def unmask_asked(request: Request, role: str) -> bool:
    """``?unmask=1`` from a ``role`` holding ``calls.unmask`` (anyone else asking gets the masked text)."""
    return request.query_params.get("unmask") == "1" and may(role, "calls.unmask")


def reason_shown(text: object, author: object, reader: str, unmask: bool) -> str:
    """``text`` as ``reader`` sees it: as typed for its ``author``, or when ``unmask``."""
    return shown_text(text, unmask or (bool(reader) and author == reader))


def deletion_shown(req: dict[str, Any], reader: str, unmask: bool) -> dict[str, Any]:
    """A deletion request as ``reader`` sees it: its reason (typed by the requester) and a refusal's
    note (typed by the approver who refused) masked for everyone else."""
    out = {**req, "reason": reason_shown(req.get("reason"), req.get("requested_by"), reader, unmask)}
    result = req.get("result")
    if isinstance(result, dict) and "refused" in result:
        out["result"] = {**result, "refused": reason_shown(result["refused"], req.get("approver"), reader,
                                                          unmask)}
    return out
