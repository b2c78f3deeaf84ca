"""CLI start time: wall time of a whole ``pbx-recorder`` process, from exec to exit.

Commands (each a fresh ``python -m pbx_recorder.cli`` process, like the console script): ``--help``,
``calls search --preset 7d`` and ``audit list`` against a local-tier config and a small catalog
(they touch only the catalog), ``calls search`` again with a signing key the process can read (an
operator as root: the command then checks and signs the chain heads as it ends, see
``cli/chain_heads_on_exit.py``), and ``verify --help``.  Baselines measured in the same run, in the
same rounds: ``python -c pass`` (the interpreter and site, with the venv's editable-install finder)
and ``python -c 'import click'`` (the least any click CLI pays).  Rounds are interleaved so that
load from other work on the machine falls on every command alike; the figures are the medians of
``--runs`` rounds of wall time and of CPU time (user + system, which other work on the machine
disturbs less), with the ratio of the wall median to ``import click``.  Bytecode caches are
written by a warm-up round first (as an installed package has them), even when
PYTHONDONTWRITEBYTECODE is set here.

Target: a catalog-only command (``calls search``, ``audit list``) well under 0.3 s.

    .venv/bin/python bench/bench_cli_start.py [--runs 15] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx_recorder.catalog import Catalog  # noqa: E402
from pbx_recorder.recording.signing import generate_signing_key  # noqa: E402

TARGET_S = 0.3


def make_setup(work: Path, calls: int) -> tuple[Path, Path]:
    """(config, the same config with a signing key this process can read, as root has)."""
    db = work / "catalog.db"
    cfg = work / "pbx-recorder.yaml"
    cfg.write_text(f"timezone: UTC\ncatalog:\n  path: {db}\nstorage:\n  tiers:\n"
                   f"    hot: {{type: local, path: {work / 'hot'}}}\n  hot: hot\n  cold: null\n")
    signed = work / "signed.yaml"
    generate_signing_key(work / "sign.pem")
    signed.write_text(cfg.read_text() + f"signing: {{key_file: {work / 'sign.pem'}}}\n")
    cat = Catalog(db)
    now = time.time()
    for i in range(calls):
        cat.upsert_call({"call_id": f"n1_{i}.1", "caller_num": f"1381234{i % 10000:04d}",
                         "status": "answered", "agent": f"agent{i % 7}", "queue": "sales",
                         "started_at": now - 60 * i})
    cat.close()
    return cfg, signed


def commands(cfg: Path, signed: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "pbx_recorder.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "--help": [*cli, "--help"],
        "calls search --preset 7d": [*cli, "--config", str(cfg), "calls", "search", "--preset", "7d"],
        "audit list": [*cli, "--config", str(cfg), "audit", "list"],
        "calls search, key readable": [*cli, "--config", str(signed), "calls", "search", "--preset", "7d"],
        "verify --help": [*cli, "verify", "--help"],
    }


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[3:]} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def top_imports(argv: list[str], env: dict[str, str], count: int) -> list[tuple[int, str]]:
    """The slowest top-level imports of one run (``-X importtime``, cumulative microseconds)."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|", 2)
            if cumulative.strip().isdigit() and not name.startswith("  "):  # depth 0 only
                rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--calls", type=int, default=500, help="Calls in the catalog.")
    ap.add_argument("--importtime", action="store_true",
                    help="Also show the slowest imports of calls search.")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("PBX_")}
    env["PBX_RECORDER_USER"] = "bench"
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        cmds = commands(*make_setup(Path(tmp), args.calls))
        for argv in cmds.values():  # warm-up: bytecode caches, page cache
            run_once(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        cpu: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.runs):
            for name, argv in cmds.items():
                wall, used = run_once(argv, env)
                times[name].append(wall)
                cpu[name].append(used)
        click_s = statistics.median(times["python -c 'import click'"])
        print(f"CLI start time, median of {args.runs} interleaved runs ({os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}); ratio of the wall median to `import click`:")
        print(f"  {'command':<28} {'wall':>7} {'min':>7} {'CPU':>7} {'ratio':>6}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:<28} {median:>6.3f}s {min(values):>6.3f}s {statistics.median(cpu[name]):>6.3f}s "
                  f"{median / click_s:>5.1f}x")
        catalog_only = ("calls search --preset 7d", "audit list")
        wall = max(statistics.median(times[n]) for n in catalog_only)
        used = max(statistics.median(cpu[n]) for n in catalog_only)
        # on a shared host the wall time includes waiting for a core; the CPU time is what the command
        # costs, i.e. its wall time on an otherwise idle host of the same speed
        print(f"target: catalog-only command < {TARGET_S:.1f} s: CPU {used:.3f} s "
              f"{'met' if used < TARGET_S else 'MISSED'}, wall {wall:.3f} s "
              f"{'met' if wall < TARGET_S else 'MISSED'} (slowest medians, at this load)")
        if args.importtime:
            print("slowest top-level imports of `calls search` (cumulative, one run under -X importtime):")
            for micros, name in top_imports(cmds["calls search --preset 7d"], env, 10):
                print(f"  {micros / 1000:>7.1f} ms  {name}")


if __name__ == "__main__":
    main()
