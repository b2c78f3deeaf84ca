"""Fixtures of the QA review browser test: a console over the seeded catalog (uvicorn on a free
port) with a second QA reviewer (qa2), carol's agent account and one scorecard made through the
API ("basic": greeting yes/no x3, empathy 1..5 x1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.driving import serve
from tests.peers.qa_support import add_accounts, make_card
from tests.peers.service_support import Service, make_service


@pytest.fixture(scope="module")
def qa_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    from pbx_recorder.service.app import build_app

    svc = make_service(tmp_path_factory.mktemp("qa-console"))
    add_accounts(svc)
    make_card(svc, "basic")
    with serve(build_app(svc.ctx)) as base:
        yield svc, base
    svc.ctx.catalog.close()
