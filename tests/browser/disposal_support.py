"""The disposal browser tests' console: the seeded service with the recorder's config behind it
(``tests/peers/disposal_support.py``), served by uvicorn for the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.driving import serve
from tests.peers.disposal_support import disposal_service
from tests.peers.service_support import Service


@pytest.fixture(scope="module")
def disposal_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    from pbx_recorder.service.app import build_app

    svc = disposal_service(tmp_path_factory.mktemp("disposal"))
    with serve(build_app(svc.ctx)) as base:
        yield svc, base
    svc.ctx.catalog.close()  # type: ignore[attr-defined]
