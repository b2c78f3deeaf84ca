"""Shipping throughput: our S3 path vs raw boto3 ``upload_file``, same files, same server, same run.

Starts its own SeaweedFS (tests/real/s3_servers.py), writes N WAV-like files, then uploads
them (a) with raw ``client.upload_file`` and (b) through ``S3Tier.put`` (SHA-256 in the same
read pass as the upload, server checksum check), with the AES-256-GCM envelope streamed in
between when ``storage/envelope.py`` is present.  Each source file is read once on our path:
the encryptor reads the file and feeds the upload through a pipe; nothing is staged on disk.

    .venv/bin/python bench/bench_shipping.py [--files 40] [--mb 2] [--rounds 2]

Uploads alternate file by file between the two paths (load from other processes hits both
alike).  Prints MB/s for both and the ratio ours/raw (target >= 0.9).  No timing assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "real")]

from s3_servers import seaweedfs_server  # noqa: E402

from storage.base import PutOptions  # noqa: E402
from storage.s3 import S3Tier, make_client  # noqa: E402

try:
    from storage import envelope
    from storage.keyring import KeyRing
except ImportError:  # the crypto helper's envelope is optional for this bench
    envelope = None  # type: ignore[assignment]


def wav_like(path: Path, size: int) -> None:
    """A 8 kHz 16-bit mono WAV header and noisy PCM (incompressible, like real audio)."""
    data_len = size - 44
    header = b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", data_len)
    path.write_bytes(header + os.urandom(data_len))


def encrypted_put(tier: S3Tier, keyring: Any, key: str, path: Path, rid: str) -> str:
    """Encrypt while uploading: the encryptor thread writes into a pipe the upload reads."""
    rfd, wfd = os.pipe()
    with contextlib.suppress(OSError):  # a 1 MiB pipe: fewer wake-ups between the two threads
        fcntl.fcntl(wfd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1024 * 1024)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with open(wfd, "wb", buffering=1024 * 1024) as sink:
                envelope.encrypt_stream(path, sink, keyring, "bench", rid)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    worker = threading.Thread(target=produce)
    worker.start()
    try:
        with open(rfd, "rb", buffering=1024 * 1024) as source:
            stored = tier.put(key, source, options=PutOptions(metadata={"recording_id": rid}))
    finally:
        worker.join()
    if errors:
        raise errors[0]
    return stored.sha256


def interleaved(files: list[Path], raw: Callable[[Path], Any],
                ours: Callable[[Path], Any]) -> tuple[float, float]:
    """Seconds spent in raw and in ours, alternating file by file so that load from other
    processes on the machine hits both sides alike."""
    t_raw = t_ours = 0.0
    for i, path in enumerate(files):
        for first in ((raw, ours) if i % 2 == 0 else (ours, raw)):
            start = time.perf_counter()
            first(path)
            spent = time.perf_counter() - start
            if first is raw:
                t_raw += spent
            else:
                t_ours += spent
    return t_raw, t_ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--mb", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-envelope", action="store_true", help="hash only, even if envelope.py exists")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ship-") as tmp_name:
        tmp = Path(tmp_name)
        files = []
        for i in range(args.files):
            p = tmp / f"rec{i:03d}.wav"
            wav_like(p, int(args.mb * 1024 * 1024))
            files.append(p)
        keyring = None
        if envelope is not None and not args.no_envelope:
            keyring = KeyRing(tmp / "keys")
            (tmp / "keys").mkdir()
            keyring.generate("bench")
        why = "--no-envelope" if envelope is not None else "storage/envelope.py absent"
        mode = "hash + AES-256-GCM envelope (storage/envelope.py)" if keyring else f"hash only ({why})"
        with seaweedfs_server(tmp / "weed") as server:
            client = make_client(endpoint_url=server.endpoint_url, region_name=server.region,
                                 access_key=server.access_key, secret_key=server.secret_key)
            client.create_bucket(Bucket="bench-raw")
            client.create_bucket(Bucket="bench-ours")
            tier = S3Tier("bench", bucket="bench-ours", client=client, prefix="rec")
            print(f"{args.files} files x {args.mb} MB against SeaweedFS; our path: {mode}")

            total_mb = sum(p.stat().st_size for p in files) / 1e6
            sum_raw = sum_ours = 0.0
            for rnd in range(args.rounds):

                def raw(p: Path, rnd: int = rnd) -> None:
                    client.upload_file(str(p), "bench-raw", f"r{rnd}/{p.name}")

                def ours(p: Path, rnd: int = rnd) -> None:
                    key = f"r{rnd}/{p.name}"
                    if keyring is not None:
                        encrypted_put(tier, keyring, key + ".pbxr", p, f"pbx1_1.{p.stem}_call001")
                    else:
                        tier.put(key, p)

                t_raw, t_ours = interleaved(files, raw, ours)
                sum_raw, sum_ours = sum_raw + t_raw, sum_ours + t_ours
                print(f"round {rnd + 1}: raw {total_mb / t_raw:6.1f} MB/s, "
                      f"ours {total_mb / t_ours:6.1f} MB/s, ratio {t_raw / t_ours:.2f}")
            rate_raw, rate_ours = args.rounds * total_mb / sum_raw, args.rounds * total_mb / sum_ours
            sample = files[0]
            body = client.get_object(Bucket="bench-raw", Key=f"r0/{sample.name}")["Body"].read()
            assert hashlib.sha256(body).digest() == hashlib.sha256(sample.read_bytes()).digest()
        print(f"all rounds: raw boto3 upload_file {rate_raw:.1f} MB/s, S3Tier.put {rate_ours:.1f} MB/s, "
              f"ratio ours/raw = {rate_ours / rate_raw:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
