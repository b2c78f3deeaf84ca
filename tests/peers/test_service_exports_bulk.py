"""200,000 rows exported through the service in bounded memory, measured as the growth of the
process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the
export) over its resident set at that moment: the request, the job's thread, the catalog reads,
the ZIP encryption, the XLSX writer all count."""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyzipper

from tests.peers.exports_support import PASSWORD, export_service, finished, seed_calls, start
from tests.peers.service_support import Service

ROWS = 200_000
#: the bound: one page of rows (1,000) plus the writers' buffers stays far below it, whatever the
#: row count; the whole result held in memory would be 200,000 row dicts, some 300 MiB
PEAK_BOUND_MIB = 48


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    raise AssertionError(key)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = export_service(tmp_path)
    seed_calls(service.seeded.db, ROWS)
    yield service
    service.ctx.catalog.close()  # type: ignore[attr-defined]


def _export(svc: Service, client: object, csrf: str, kind: str) -> None:
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    base = _status("VmRSS")
    answer = start(client, csrf, kind, fields=["call_id", "started_at", "caller_num", "caller_name", "agent",
                                               "duration", "tags"])
    assert answer.status_code == 202, answer.text
    job = finished(client, answer.json()["id"], timeout=1100)
    growth_mib = (_status("VmHWM") - base) / 1024
    print(f"{kind}: {ROWS} rows, peak RSS growth {growth_mib:.1f} MiB (bound {PEAK_BOUND_MIB} MiB)")
    assert job["state"] == "done", job
    assert job["rows_total"] == job["rows_done"] == ROWS + 4  # the seeded four and the bulk
    assert growth_mib < PEAK_BOUND_MIB
    data = client.get(f"/api/exports/{job['id']}/file").content  # type: ignore[attr-defined]
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:
        zf.setpassword(PASSWORD.encode())
        name = zf.namelist()[0]
        with zf.open(name) as entry:
            if kind == "csv":
                lines = sum(1 for _ in io.TextIOWrapper(entry, encoding="utf-8-sig", newline=""))
                assert lines == ROWS + 5  # the header too
            else:
                assert entry.read(2) == b"PK"  # an OOXML package (its cells: test_service_exports)


@pytest.mark.slow  # (about 100 s: handed out first, tests/conftest.py)
@pytest.mark.timeout(1200)
def test_200000_rows_in_bounded_memory_as_csv_and_as_xlsx(svc: Service) -> None:
    """Both formats from one seeded catalog (seeding 200,000 calls is most of the cost), each
    export's peak measured on its own."""
    client, csrf = svc.login("root-admin")
    for kind in ("csv", "xlsx"):
        _export(svc, client, csrf, kind)
