"""Fixtures of the peer tier shared by several modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.service_support import Service, make_service


@pytest.fixture
def seeded_service(tmp_path: Path) -> Iterator[Service]:
    """The operator service over a seeded catalog (two teams' calls, their recordings on a local
    tier, an account of every role), in process (``tests/peers/service_support.py``)."""
    svc = make_service(tmp_path)
    yield svc
    svc.ctx.catalog.close()  # type: ignore[attr-defined]
