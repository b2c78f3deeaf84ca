"""Fixtures of the exports browser test: a console with an export folder and hostile caller names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.driving import serve
from tests.peers.exports_support import HOSTILE_NAMES, seed_calls
from tests.peers.service_support import Service, make_service


@pytest.fixture(scope="module")
def export_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    from pbx_recorder.service.app import build_app

    tmp = tmp_path_factory.mktemp("exports")
    svc = make_service(tmp, export_dir=tmp / "exports")
    seed_calls(svc.seeded.db, len(HOSTILE_NAMES), agent="alice", names=HOSTILE_NAMES)
    with serve(build_app(svc.ctx)) as base:  # type: ignore[arg-type]
        yield svc, base
    svc.ctx.catalog.close()  # type: ignore[attr-defined]
