"""Issue 11: two recorder nodes on one PostgreSQL catalog, one Redis and one S3 server.

Two ``pbx-recorder run`` daemons, ``node-a`` and ``node-b``, each with its own PBX (the
session's private Asterisk for node A, a second private Asterisk of the same build for node B:
one daemon per PBX, as deployed; two daemons on one Asterisk would both take the same AMI
events and one FastAGI port), its own ``catalog.path`` folder (chain heads, verify state),
spool and monitor folder, and the same ``catalog.url`` (one schema of the session's private
PostgreSQL), the same redis-server and the same SeaweedFS bucket as their hot tier.  The nodes
share one key folder (signing key, privacy HMAC key, master key ring: the catalog's number
cipher), as a multi-node deployment must: every node opens and checks every node's rows.

Real sipp calls are placed on both PBXs at the same time, so both daemons write calls,
recordings and ledger entries to the catalog concurrently.  Then, with EITHER node's config:
``calls search`` (the operator's view) lists the calls of both nodes, ``ledger verify`` finds
the one chain clean and ``verify`` finds every stored object where the catalog says.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from call_helpers import linkedid_of, new_caller, spare_asterisk
from recorder_checks import Recorder, wait_shipped
from s3_servers import S3Server, seaweedfs  # noqa: F401 - the session's SeaweedFS fixture

from pbx_recorder.catalog import engine
from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.recorder import (
    CatalogReader,
    RecorderProcess,
    recorder_command,
    write_recorder_config,
)
from storage import file_modes
from tests.postgres_server import PostgresServer

sys.path.insert(0, str(Path(__file__).resolve().parent / "s3"))
from s3_helpers import client_for, new_bucket  # noqa: E402

pytestmark = [pytest.mark.real, pytest.mark.timeout(300)]

CALLS_PER_NODE = 2


@pytest.fixture
def second_asterisk(asterisk: PrivateAsterisk, prompts_dir: Path) -> Iterator[PrivateAsterisk]:
    """Node B's PBX: the same Asterisk build as the session's, in a folder of its own."""
    with spare_asterisk(asterisk.install, prompts_dir, "pbxrec-nb-") as pbx:
        yield pbx


def _node_config(work: Path, node: str, pbx: PrivateAsterisk, prompts_dir: Path, redis_url: str,
                 catalog_url: str, keys: Path, s3: S3Server, bucket: str) -> Path:
    config = write_recorder_config(work, pbx, prompts_dir, redis_url=redis_url, node=node)
    data = yaml.safe_load(config.read_text())
    data["catalog"]["url"] = catalog_url  # catalog.path stays the node's own folder anchor
    data["storage"]["tiers"]["hot"] = {
        "type": "s3", "bucket": bucket, "endpoint_url": s3.endpoint_url, "region_name": s3.region,
        "access_key_id": s3.access_key, "secret_access_key": s3.secret_key}
    data["signing"]["key_file"] = str(keys / "signing.ed25519")
    data["privacy"]["hash_key_file"] = str(keys / "subject-hmac.key")
    data["encryption"]["master_key_file"] = str(keys / "master" / "demo.key")  # the catalog key ring
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*recorder_command(), "--config", str(config), *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_two_nodes_share_one_postgres_catalog_and_each_sees_both_nodes_calls(
        asterisk: PrivateAsterisk, ami: AmiProbe, second_asterisk: PrivateAsterisk, prompts_dir: Path,
        redis_url: str, postgres: PostgresServer, seaweedfs: S3Server,  # noqa: F811
        tmp_path: Path) -> None:
    url = postgres.fresh_schema()
    bucket = new_bucket(client_for(seaweedfs), lock=False)
    keys = file_modes.private_dir(tmp_path / "shared-keys")
    pbxs = {"node-a": asterisk, "node-b": second_asterisk}
    recorders: dict[str, Recorder] = {}
    ami_b = second_asterisk.ami_probe()
    probes = {"node-a": ami, "node-b": ami_b}
    try:
        for node, pbx in pbxs.items():  # one after the other: the first start makes the shared keys
            work = tmp_path / node
            config = _node_config(work, node, pbx, prompts_dir, redis_url, url, keys, seaweedfs, bucket)
            process = RecorderProcess(config, pbx, tmp_path / f"{node}.log").start(ready_timeout=60)
            recorders[node] = Recorder(process, config, work, CatalogReader(work / "catalog.db", url))

        placed: list[tuple[str, str, int, SippCall]] = []
        for _ in range(CALLS_PER_NODE):  # both PBXs at once: the daemons write concurrently
            for node, pbx in pbxs.items():
                caller, since = new_caller(), len(probes[node].events)
                placed.append((node, caller, since, SippCall(
                    tmp_path, pbx.sip_port, "8001", hangup_after_s=6, from_user=caller).start()))
            time.sleep(0.5)
        linked: list[tuple[str, str]] = []
        for node, caller, since, sipp in placed:
            result = sipp.wait(timeout=60)
            assert result.ok, (node, result.errors)
            linked.append((node, linkedid_of(probes[node], caller, since)))

        calls: dict[str, str] = {}  # call id -> node
        for node, linkedid in linked:
            row, recs = wait_shipped(recorders[node], linkedid, timeout=90)
            assert row["call_id"].startswith(f"{node}_"), row["call_id"]
            assert row["record_decision"] == "record" and recs[0]["storage_key"], (row, recs)
            calls[row["call_id"]] = node
        assert sorted(calls.values()) == sorted(["node-a", "node-b"] * CALLS_PER_NODE)

        for node, rec in recorders.items():  # the operator's view from either node
            found = _cli(rec.config_path, "calls", "search", "--json", "--limit", "100")
            assert found.returncode == 0, (node, found.stderr)
            listed = {c["call_id"] for c in json.loads(found.stdout)}
            assert listed == set(calls), (node, sorted(set(calls) ^ listed))

        for rec in recorders.values():
            rec.process.terminate()  # the chain as both nodes left it
        reader = recorders["node-a"].catalog
        entries = reader.query("SELECT COUNT(*) AS n FROM ledger")[0]["n"]
        recordings = reader.query("SELECT COUNT(*) AS n FROM recordings")[0]["n"]
        for node, rec in recorders.items():  # the one chain and every object, from either node
            chain = _cli(rec.config_path, "ledger", "verify")
            assert chain.returncode == 0, (node, chain.stdout, chain.stderr)
            assert f"{entries} ledger entries, {entries} recomputed, 0 problems" in chain.stdout, chain.stdout
            objects = _cli(rec.config_path, "verify")
            assert objects.returncode == 0, (node, objects.stdout, objects.stderr)
            assert re.search(rf"checked {recordings} recordings: 0 mismatches, 0 unreachable, 0 pending",
                             objects.stdout), objects.stdout
        stored = reader.query(  # both nodes' entries are in the one chain
            "SELECT r.call_id FROM ledger l JOIN recordings r ON r.recording_id = l.recording_id "
            "WHERE l.event = 'stored'")
        assert set(calls) <= {r["call_id"] for r in stored}, stored
    finally:
        for rec in recorders.values():
            rec.process.terminate()
        ami_b.close()
        engine.close_pools()
