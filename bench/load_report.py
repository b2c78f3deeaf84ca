"""What a benchmark ran under: load average and CPU of the processes involved.

    sampler = LoadSampler({"daemon": pid, "asterisk": pid})
    sampler.add("sipp", sipp_pid)           # processes that come and go: CPU summed per name
    ... run ...
    print(sampler.report())

CPU is read from ``/proc/<pid>/stat`` (utime + stime) at the start and whenever
:meth:`sample` is called (at least once before a process exits: a reaped process has no
``/proc`` entry), and reported in % of one core over the wall time; the host's busy share of
all cores comes from ``/proc/stat``.  A figure that says "load 14 on 2 cores" tells the reader
the machine was shared.  Linux only; nothing here changes what it measures.
"""

from __future__ import annotations

import os
import time

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def host_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return float(sum(values) - idle), float(sum(values))


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as handle:
        return " ".join(handle.read().split()[:3])


class LoadSampler:
    def __init__(self, pids: dict[str, int] | None = None) -> None:
        self.started = time.monotonic()
        self.load_before = loadavg()
        self.host_before = host_busy()
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._names: dict[int, str] = {}
        for name, pid in (pids or {}).items():
            self.add(name, pid)

    def add(self, name: str, pid: int) -> None:
        cpu = process_cpu_s(pid)
        if cpu is not None:
            self._names[pid] = name
            self._first[pid] = cpu
            self._last[pid] = cpu

    def sample(self) -> None:
        for pid in self._names:
            cpu = process_cpu_s(pid)
            if cpu is not None:
                self._last[pid] = cpu

    def cpu_by_name(self) -> dict[str, float]:
        self.sample()
        out: dict[str, float] = {}
        for pid, name in self._names.items():
            out[name] = out.get(name, 0.0) + self._last[pid] - self._first[pid]
        return out

    def report(self) -> str:
        wall = max(1e-6, time.monotonic() - self.started)
        busy0, total0 = self.host_before
        busy1, total1 = host_busy()
        host = 100.0 * (busy1 - busy0) / max(1.0, total1 - total0)
        parts = [f"{name} {100.0 * cpu / wall:.0f}%" for name, cpu in sorted(self.cpu_by_name().items())]
        return (f"load avg {self.load_before} -> {loadavg()} on {os.cpu_count()} cores; host busy {host:.0f}%"
                f" of all cores over {wall:.0f} s; CPU (% of one core): {', '.join(parts) or '-'}")
