"""The console in a real browser: one headless chromium for the run, one console (uvicorn on a
free port) per module over a seeded catalog (``tests/peers/service_support.py``'s two teams and an
account of every role, plus a hostile caller name and a bulk of calls for deep paging).  Each
test starts logged out; a screenshot of where it ended is saved to
``test-artifacts/screenshots/<test>.png``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.driving import make_driver, screenshot, serve
from tests.peers.service_support import CALLS, CHEAP, NOW, USERS, Clock, seed

BULK = 57  # calls of a queue of their own: deep paging at 10 a page
HOSTILE = ("c-hostile", "<img src=x onerror=\"document.title='pwned'\">")


@dataclass
class Console:
    base: str
    db: Path
    users: dict[str, tuple[str, tuple[str, ...]]]
    calls: tuple[tuple[str, str, str], ...]
    bulk: list[str]


def _seed_more(db: Path) -> list[str]:
    from pbx_recorder.catalog import Catalog

    catalog = Catalog(db, clock=lambda: NOW)
    bulk = []
    for n in range(BULK):
        call_id = f"c-bulk-{n:03d}"
        catalog.upsert_call({"call_id": call_id, "agent": "zed", "caller_num": f"+86139{n:08d}",
                             "status": "answered", "started_at": NOW - 86400 - 60 * n, "queue": "bulk"})
        bulk.append(call_id)
    catalog.upsert_call({"call_id": HOSTILE[0], "agent": "alice", "caller_num": "+8613811112222",
                         "caller_name": HOSTILE[1], "status": "answered", "started_at": NOW - 60,
                         "queue": "hostile", "tags": ["<b>x</b>"]})
    catalog.close()
    return bulk


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from pbx_recorder.catalog import Catalog
    from pbx_recorder.service.app import build_app
    from pbx_recorder.service.context import ServiceContext

    tmp = tmp_path_factory.mktemp("console")
    seeded = seed(tmp)
    bulk = _seed_more(seeded.db)
    clock = Clock()
    ctx = ServiceContext(Catalog(seeded.db, clock=clock), {"hot": seeded.tier}, hasher=CHEAP, clock=clock)
    with serve(build_app(ctx)) as base:
        yield Console(base, seeded.db, dict(USERS), CALLS, bulk)
    ctx.catalog.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    driver = make_driver()
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The run's browser, logged out, its screenshot saved when the test ends."""
    chromium.delete_all_cookies()
    yield chromium
    screenshot(chromium, request.node.name)
