"""The daemon probes its S3 tiers before it takes a call: a hot tier the server refuses to
store recordings on (as configured) stops the start with StorageRefused (exit 4), before a
single recording piles up in the spool; an unreachable endpoint does not."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "peers"))  # test_daemon.write_config

from s3_helpers import client_for, new_bucket  # noqa: E402
from s3_servers import free_port  # noqa: E402
from test_daemon import write_config  # noqa: E402

from pbx_recorder.app import build_app  # noqa: E402
from pbx_recorder.config import load_config  # noqa: E402
from pbx_recorder.daemon import Daemon  # noqa: E402
from pbx_recorder.errors import StorageRefused  # noqa: E402

pytestmark = pytest.mark.real


def _config(tmp_path: Path, endpoint: str, bucket: str, server, extra: str) -> Path:
    path = write_config(tmp_path, free_port(), free_port())
    hot = (f"    hot: {{type: s3, bucket: {bucket}, endpoint_url: {endpoint}, region_name: {server.region}, "
           f"access_key_id: {server.access_key}, secret_access_key: {server.secret_key}{extra}}}\n")
    text = path.read_text().replace(f"    hot: {{type: local, path: {tmp_path}/hot}}\n", hot)
    assert hot in text
    path.write_text(text)
    return path


def test_a_hot_tier_the_server_refuses_stops_the_start(moto_s3, tmp_path: Path) -> None:
    bucket = new_bucket(client_for(moto_s3), lock=False)
    cfg = _config(tmp_path, moto_s3.endpoint_url, bucket, moto_s3, ", storage_class: COLD-TIER")
    daemon = Daemon(build_app(load_config(cfg)), tick_s=0.1, install_signals=False)
    with pytest.raises(StorageRefused, match="InvalidStorageClass") as caught:
        asyncio.run(asyncio.wait_for(daemon.run(), 60))
    assert caught.value.exit_code == 4 and daemon.agi is None  # no call was taken


def test_an_unreachable_endpoint_does_not_stop_the_start(moto_s3, tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"http://127.0.0.1:{free_port()}", "rec-gone", moto_s3, "")
    daemon = Daemon(build_app(load_config(cfg)), tick_s=0.1, install_signals=False)

    async def start_then_stop() -> None:
        task = asyncio.create_task(daemon.run())
        for _ in range(600):
            if daemon.agi is not None:
                break
            await asyncio.sleep(0.1)
        daemon.request_stop()
        await asyncio.wait_for(task, 60)

    asyncio.run(start_then_stop())
    assert daemon.agi is not None  # it started: the spool holds recordings until the endpoint is back
