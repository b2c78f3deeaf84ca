"""``GET /admin/tokens``: the admin page over the API-token endpoints
(:mod:`pbx_recorder.service.api_tokens`).

Server-rendered list of every account's tokens (id prefix, owner, role, label, dates, revoked;
never a token or its hash beyond the listed id) with a form that creates one and a button per
live token that revokes it; both post through ``static/admin_tokens.js`` with the page's CSRF
token.  A new token is shown once, by the script, from the API's answer: it is never in a page.
Only a role with ``tokens.manage`` sees it (403, audited, for the others); each view writes one
``tokens.list`` row.  A session opened with an API token sees the list but no form to create one
(the API refuses it: a leaked token must not mint others).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import api_token_store, api_tokens
from pbx_recorder.service.auth import actor_of, ctx_of
from pbx_recorder.service.roles import ROLES
from pbx_recorder.web import render


def tokens_page(request: Request) -> Response:
    ctx, actor = ctx_of(request), actor_of(request)
    tokens = api_tokens.tokens_read(ctx, actor, "/admin/tokens")  # audited, refused without tokens.manage
    tokens.sort(key=lambda t: (bool(t["revoked"]), -float(t["created_at"] or 0)))
    return render.page(request, "admin_tokens.html", actor, tokens=tokens, roles=ROLES,
                       may_create=actor.via != "token", max_days=ctx.web.token_max_days,
                       max_label=api_token_store.MAX_LABEL, now=ctx.clock())


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/admin/tokens", sync(tokens_page), methods=["GET"])]
