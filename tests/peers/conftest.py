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


@pytest.fixture
def marked_service(seeded_service: Service) -> Service:
    """The seeded service with the QA accounts and a recording with audio on c-red-1 (2 channels)
    and on c-blue-1 (1), to mark and review."""
    from tests.peers.player_support import put_wav
    from tests.peers.qa_support import add_accounts

    add_accounts(seeded_service)
    put_wav(seeded_service, "c-red-1", "r-wav", 30, 2)
    put_wav(seeded_service, "c-blue-1", "r-blue", 30, 1)
    return seeded_service
