"""Shared pieces of the export tests: a service with an export folder, starting a job, waiting for
it, opening the encrypted ZIP it produced, seeding many calls fast."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyzipper

from pbx_recorder.catalog import call_tags
from pbx_recorder.exports import runner
from pbx_recorder.lifecycle.journal import Tx, open_catalog
from tests.peers.service_support import NOW, Service, make_service

PASSWORD = "a long export password"
HOSTILE_NAMES = ("=HYPERLINK(\"http://evil.example/x\",\"click\")", "+cmd|' /C calc'!A", "-cmd",
                 "@SUM(A)", "  =indented")  # tab / CR: removed from names by masking.sanitize


def export_service(tmp_path: Path) -> Service:
    return make_service(tmp_path, export_dir=tmp_path / "exports")


def start(client: Any, csrf: str, kind: str = "csv", query: str = "", **body: Any) -> Any:
    payload = {"kind": kind, "password": PASSWORD, **body}
    return client.post("/api/exports" + (f"?{query}" if query else ""), json=payload,
                       headers={"X-CSRF-Token": csrf})


def finished(client: Any, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job once its thread ended (joined, not polled: a loaded machine only makes it slower)."""
    runner.wait(job_id, timeout)
    answer = client.get(f"/api/exports/{job_id}")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    assert job["state"] not in ("queued", "running"), job
    return job


def unzip(data: bytes, password: str = PASSWORD) -> dict[str, bytes]:
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:
        zf.setpassword(password.encode())
        for info in zf.infolist():
            assert info.flag_bits & 0x1, info.filename  # every entry encrypted
        return {name: zf.read(name) for name in zf.namelist()}


def csv_rows(data: bytes) -> list[list[str]]:
    import csv

    text = data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def xlsx_strings(data: bytes) -> list[str]:
    """Every text cell of the workbook's first sheet, in order (inline or shared strings)."""
    import re
    import zipfile
    from xml.etree import ElementTree

    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in book.namelist():
            root = ElementTree.fromstring(book.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t"))
                      for si in root.findall("m:si", ns)]
        sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
        out = []
        for c in sheet.iter(f"{{{ns['m']}}}c"):
            if c.get("t") == "s":
                out.append(shared[int(c.find("m:v", ns).text or "0")])  # type: ignore[union-attr]
            elif c.get("t") == "inlineStr":
                out.append("".join(t.text or "" for t in c.iter(f"{{{ns['m']}}}t")))
            elif c.get("t") == "str":
                out.append(c.find("m:v", ns).text or "")  # type: ignore[union-attr]
        assert not any(re.match(r"^f$", x.tag.split("}")[-1]) for x in sheet.iter())  # no formula at all
        return out


def seed_calls(db: Path, n: int, *, agent: str = "alice", names: tuple[str, ...] = ()) -> None:
    """``n`` calls written with one executemany (SQLite or PostgreSQL alike)."""
    conn = open_catalog(db)
    try:
        rows = ((f"bulk-{i:07d}", NOW - 10 * (i + 10), "+86139" + f"{i:08d}", "8001",
                 names[i % len(names)] if names else f"Caller {chr(65 + i % 26)}", agent, "answered", "sales",
                 json.dumps(["bulk"]), 42 + i % 100)
                for i in range(n))  # a generator: the seeding itself stays small
        with Tx(conn):  # one transaction (the catalog connection autocommits otherwise)
            conn.executemany("INSERT INTO calls (call_id, started_at, caller_num, callee_num, caller_name, "
                             "agent, status, queue, tags, duration) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            call_tags.copy_all(conn)  # raw rows: their tags copied as the catalog's own writes copy them
    finally:
        conn.close()
