"""``verify`` against real S3 servers (issue 6): a re-put object whose ``sha256`` user metadata
was copied is found (the server's own checksum / the version id recorded at store time); an
S3 outage is "unreachable", never a mismatch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from s3_helpers import overwrite
from s3_servers import free_port

from pbx_recorder.catalog import Catalog
from pbx_recorder.recording import ledger
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.shipper import Shipper
from pbx_recorder.recording.signing import SignAfterStore, generate_signing_key
from pbx_recorder.recording.spool import Spool
from pbx_recorder.recording.verify import Verifier
from storage.s3 import S3Tier

pytestmark = pytest.mark.real
RID = "pbx1_1800000000.1_call001"


@pytest.fixture(params=["weed_tier", "moto_tier"])
def shipped(request, tmp_path: Path):
    tier = request.getfixturevalue(request.param)(lock=False)
    key = generate_signing_key(tmp_path / "sign.pem")
    catalog = Catalog(tmp_path / "cat.db")
    spool = Spool(tmp_path / "spool")
    src = tmp_path / f"{RID}.wav"
    src.write_bytes(os.urandom(70_000))
    manifest = Manifest(recording_id=RID, call_id=RID.rsplit("_", 1)[0], created_at=1_800_000_000.0,
                        files=(ManifestFile(src.name, 0, ""),))
    spool.spool_recording(RID, [src], manifest)
    shipper = Shipper(spool, catalog, lambda region: tier,
                      after_store=[SignAfterStore(key), ledger.StoredLedgerHook()])
    assert shipper.ship_once().shipped == [RID]
    yield tier, ledger.connection_of(catalog), key, catalog
    catalog.close()


def test_clean_then_reput_with_copied_metadata_is_a_mismatch(shipped) -> None:
    tier, conn, key, catalog = shipped
    assert Verifier(conn, {"s3": tier}, public_key=key.public_key()).run().mismatches == []
    row = catalog.get_recording(RID)
    full = tier.prefix + row["storage_key"]
    head = tier.client.head_object(Bucket=tier.bucket, Key=full)
    forged = os.urandom(int(head["ContentLength"]))  # same size, metadata (sha256 included) copied
    overwrite(tier.client, tier.bucket, full, Body=forged, Metadata=head["Metadata"],
              ChecksumAlgorithm="SHA256")
    assert tier.stat(row["storage_key"]).sha256 == row["sha256"]  # what the old verify trusted
    found = [str(m) for m in Verifier(conn, {"s3": tier}, public_key=key.public_key()).run().mismatches]
    assert any(RID in f and ("replaced after it was stored" in f or "checksum differs" in f
                             or "stored bytes hash differs" in f) for f in found), found


def test_outage_is_unreachable_not_a_mismatch(shipped) -> None:
    tier, conn, key, _ = shipped
    down = S3Tier("s3", bucket=tier.bucket, prefix="rec", endpoint_url=f"http://127.0.0.1:{free_port()}",
                  region_name="us-east-1", access_key="a", secret_key="b", max_attempts=1, connect_timeout=1)
    report = Verifier(conn, {"s3": down}, public_key=key.public_key(), deep=True).run()
    assert report.mismatches == [] and report.status == "unreachable"
    assert report.unreachable and "tier s3" in report.unreachable[0]
