"""Run sipp against a :class:`PrivateAsterisk`: ``SippCall`` (UAC) and ``SippUas`` (agent).

Each process gets its own ``-p`` signalling port and ``-mp`` media block (sipp binds the
media port and +2 and uses 4 ports per call).  Every run is bounded: sipp's own
``-timeout`` plus a hard kill.  Output goes to files in ``workdir``.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pbx_recorder.testbed.ports import DEFAULT_ALLOCATOR, PortAllocator
from pbx_recorder.testbed.rtp_pcap import call_pcap
from pbx_recorder.testbed.sipp_scenarios import digits_of, uac_scenario, uas_scenario

_SEQ = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str  # sipp's -trace_err file
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class _SippProcess:
    def __init__(self, workdir: Path, name: str, scenario: str, args: list[str], calls: int,
                 timeout_s: float, ports: PortAllocator) -> None:
        self.workdir = workdir / f"sipp-{name}-{next(_SEQ)}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._ports = ports
        self._media_count = 4 * calls + 8
        self.media_port = ports.udp_range(self._media_count)
        self.sip_port = ports.udp_port()
        self.timeout_s = timeout_s
        (self.workdir / "scenario.xml").write_text(scenario, encoding="utf-8")
        self.cmd = ["sipp", *args, "-sf", "scenario.xml", "-i", "127.0.0.1", "-p", str(self.sip_port),
                    "-mp", str(self.media_port), "-m", str(calls), "-timeout", f"{int(timeout_s)}s",
                    "-timeout_error", "-trace_err", "-error_file", "errors.log", "-nostdin"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def start(self) -> _SippProcess:
        self._out = open(self.workdir / "stdout.log", "wb")  # noqa: SIM115
        self._err = open(self.workdir / "stderr.log", "wb")  # noqa: SIM115
        self._started = time.monotonic()
        self._proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                      stdout=self._out, stderr=self._err, start_new_session=True)
        return self

    def wait(self, timeout: float | None = None) -> SippResult:
        assert self._proc is not None, "start() first"
        try:
            code = self._proc.wait(timeout=timeout if timeout is not None else self.timeout_s + 15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait(timeout=5)
        return self._result(code)

    def stop(self) -> SippResult:
        """Kill (if still running) and collect."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        return self._result(self._proc.returncode if self._proc else -1)

    def _result(self, code: int) -> SippResult:
        for handle in (self._out, self._err):
            handle.close()
        self._ports.release(self.media_port, self._media_count)
        self._ports.release(self.sip_port, 1)
        read = lambda name: (self.workdir / name).read_text(errors="replace") \
            if (self.workdir / name).exists() else ""  # noqa: E731
        return SippResult(code, read("stdout.log")[-4000:], read("stderr.log")[-4000:],
                          read("errors.log")[-4000:], time.monotonic() - self._started)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


class SippCall(_SippProcess):
    """UAC: ``calls`` calls (``concurrent`` at once) to ``did`` on ``asterisk_port``.

    The caller's audio is one continuous RTP stream from the answer to ``hangup_after_s``
    (:mod:`pbx_recorder.testbed.rtp_pcap`); ``dtmf``: ``[(ms_after_answer, digit)]`` RFC 2833
    digits inside it (``timeline``, ``[(ms, "dtmf:<d>" | "audio")]``, is the older spelling);
    ``mute``: the caller sends no RTP at all.
    The UAC hangs up after ``hangup_after_s`` unless Asterisk sends a BYE first (both count
    as success).
    """

    def __init__(self, workdir: str | Path, asterisk_port: int, did: str, *, hangup_after_s: float = 5.0,
                 dtmf: Sequence[tuple[int, str]] = (), timeline: list[tuple[int, str]] | None = None,
                 from_user: str = "5551234", mute: bool = False,
                 from_display: str = "", test_tag: str = "", calls: int = 1, concurrent: int | None = None,
                 rate_per_s: float = 10.0, timeout_s: float | None = None,
                 ports: PortAllocator = DEFAULT_ALLOCATOR) -> None:
        hang_ms = int(hangup_after_s * 1000)
        digits = list(dtmf) + digits_of(timeline or [])
        pcap = "" if mute else str(call_pcap(hang_ms, digits))
        headers = {"X-Test-Tag": test_tag} if test_tag else {}
        scenario = uac_scenario(did, from_user, from_display, hang_ms, pcap, headers)
        limit = concurrent or calls
        args = [f"127.0.0.1:{asterisk_port}", "-l", str(limit), "-r", str(rate_per_s)]
        bound = timeout_s or (hangup_after_s + calls / max(rate_per_s, 0.1) + 20)
        super().__init__(Path(workdir), f"uac-{did}", scenario, args, calls, bound, ports)


class SippUas(_SippProcess):
    """An agent phone on ``sip_port`` that answers up to ``calls`` calls and plays continuous
    audio (as long as ``timeout_s``) in each until Asterisk hangs up.  With ``refer_to`` (an
    extension) it blind-transfers each caller there by SIP REFER ``refer_after_ms`` after answering."""

    def __init__(self, workdir: str | Path, sip_port: int, *, calls: int = 1, timeout_s: float = 120.0,
                 answer_after_ms: int = 300, refer_to: str = "", refer_after_ms: int = 4000,
                 ports: PortAllocator = DEFAULT_ALLOCATOR) -> None:
        pcap = call_pcap(int(timeout_s * 1000))
        scenario = uas_scenario(str(pcap), answer_after_ms, refer_to, refer_after_ms)
        super().__init__(Path(workdir), "uas", scenario, ["-l", str(calls)], calls, timeout_s, ports)
        self.sip_port = sip_port
        self.cmd[self.cmd.index("-p") + 1] = str(sip_port)
