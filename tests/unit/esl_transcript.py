"""What the ESL ingest path makes of a byte stream, as text: every call event the normalizer
produces and every command the core answers with, one line each (dataclass reprs).

tests/fixtures/esl/normalized_golden.json holds these transcripts as the normalizer of commit
3aa2428 produced them (dict copies of every header, all percent-decoded), for the captures and
a small bench stream; test_esl_fast_paths.py proves the lazy views give the same lines.
Regenerate (only when a change of the events is intended) with

    .venv/bin/python -m tests.unit.esl_transcript > tests/fixtures/esl/normalized_golden.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from esl.frames import EslParser
from esl.normalize import EslNormalizer
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.rules import rules_from_dicts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "esl"
RULES = [
    {"name": "hr-never", "match": {"dialed": ["_+4930123457XX"]}, "action": {"record": "never"}},
    {"name": "inbound", "match": {"direction": ["inbound"]},
     "action": {"record": "yes", "start_on": "bridge"}},
    {"name": "queue", "match": {"dialed": ["8004"]}, "action": {"record": "yes", "start_on": "bridge"}},
    {"name": "default-record", "match": {}, "action": {"record": "yes"}},
]


def transcript(data: bytes, t0: float = 1_764_600_000.0) -> list[str]:
    normalizer = EslNormalizer("pbx1")
    book = CallBook("pbx1", "/var/spool/pbx-recorder/monitor", rules_from_dicts(RULES), gosub_grace_s=0.0)
    lines: list[str] = []
    now = t0
    for frame in EslParser().feed(data):
        event = frame.event()
        if event is None:
            continue
        for item in normalizer.normalize(event, now):
            lines.append(repr(item))
            lines += ["  " + repr(cmd) for cmd in book.handle(item, now)]
        now += 0.5
    lines += ["tick " + repr(cmd) for cmd in book.tick(now + 3600.0)]
    lines.append(f"injections={normalizer.injections} ignored={normalizer.ignored}")
    return lines


def sources() -> dict[str, bytes]:
    """Every capture, plus three calls of the bench's synthetic stream."""
    sys.path.insert(0, str(FIXTURES.parents[2] / "bench"))
    from bench_esl_pipeline import generate

    data = {p.stem: p.read_bytes() for p in sorted(FIXTURES.glob("*.esl"))}
    data["bench_synthetic_3_calls"] = generate(3)
    return data


if __name__ == "__main__":
    golden = {name: transcript(data) for name, data in sources().items()}
    print(json.dumps(golden, indent=1, ensure_ascii=False))
