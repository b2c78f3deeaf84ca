"""consent.agi_server over a real socket, with a fake Asterisk speaking FastAGI."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fake_asterisk_agi import converse, env_block

from consent.agi_server import AgiServer, ConsentSession, ConsentTicket, DialogSettings, parse_args
from pbx_recorder import events as ev
from pbx_recorder.naming import make_call_id
from pbx_recorder.rules import RuleDecision
from pbx_recorder.vip import VipDirectory

ARGS = [
    "direction=inbound",
    "dialed=4930123456",
    "linkedid=1732200000.1",
    "queue=support",
    "region=eu",
    "lang=de",
]
CALL = make_call_id("pbx1", "1732200000.1")


class FakeBackend:
    def __init__(self, decision: RuleDecision | None, recording_ok: bool = True) -> None:
        self.decision = decision
        self.recording_ok = recording_ok
        self.requested: list[ev.ConsentRequested] = []
        self.resolved: list[ev.ConsentResolved] = []
        self.started: bool | None = None  # what resolve() answers (False: the recording failed)

    def request(self, event: ev.ConsentRequested) -> ConsentTicket:
        self.requested.append(event)
        return ConsentTicket(self.decision, self.recording_ok)

    def resolve(self, event: ev.ConsentResolved) -> bool | None:
        self.resolved.append(event)
        return self.started


class FakePrompts:
    def path(self, prompt_id: str, language: str) -> tuple[str, str]:
        return f"/prompts/{language}/{prompt_id}", "v7"


@pytest.fixture
def serve(tmp_path: object) -> Iterator[object]:
    servers: list[AgiServer] = []

    def start(backend: FakeBackend, *, vip: VipDirectory | None = None, max_sessions: int = 4) -> AgiServer:
        def session(agi: object) -> ConsentSession:
            return ConsentSession(
                agi,
                node="pbx1",
                backend=backend,
                prompts=FakePrompts(),
                vip=vip,  # type: ignore[arg-type]
                settings=DialogSettings(timeout_s=2.0, max_attempts=2),
            )

        server = AgiServer("127.0.0.1", 0, session=session, max_sessions=max_sessions, session_timeout_s=5)
        server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.close()


QUESTION = 'STREAM FILE /prompts/de/consent-question "0123456789*#" 0'


def answers(digits: list[str]) -> object:
    """Reply 200 to everything; the question (STREAM FILE with escape digits, 2 s in) or the
    WAIT FOR DIGIT after it consumes the scripted digits ('' = timeout, 'H' = hangup)."""
    queue = list(digits)

    def respond(command: str) -> str | None:
        if command.startswith("STREAM FILE") and '"0123456789*#"' in command:
            d = queue[0] if queue else ""
            if d == "H":
                return "HANGUP"
            if d:
                queue.pop(0)
                return f"200 result={ord(d)} endpos=16000"
            return "200 result=0 endpos=40000"
        if command.startswith("WAIT FOR DIGIT"):
            d = queue.pop(0)
            return "HANGUP" if d == "H" else f"200 result={ord(d) if d else 0}"
        return "200 result=0"

    return respond


def talk(server: AgiServer, env: bytes, respond: object) -> list[str]:
    """One session as Asterisk would run it; returns once the server finished the session."""
    commands = converse(server.port, env, respond)  # type: ignore[arg-type]
    assert server.wait_idle(5)
    return commands


def variables(commands: list[str]) -> dict[str, str]:
    out = {}
    for c in commands:
        if c.startswith("SET VARIABLE"):
            _, _, name, value = c.split(" ", 3)
            out[name.strip('"')] = value.strip('"')
    return out


EXPLICIT = RuleDecision(
    record=True, rule="eu-inbound", verdict="yes", reason="rule", consent="explicit", refusal_route="hangup"
)


def test_explicit_yes_records(serve: object) -> None:
    backend = FakeBackend(EXPLICIT)
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers(["1"]))
    assert commands[0] == QUESTION
    assert variables(commands) == {"PBXREC_CONSENT": "granted", "PBXREC_RESULT": "record"}
    req = backend.requested[0]
    assert (
        req.call_id,
        req.channel,
        req.channel_id,
        req.direction,
        req.dialed,
        req.queue,
        req.region,
        req.language,
        req.caller_num,
        req.caller_name,
        req.vip,
    ) == (
        CALL,
        "PJSIP/alice-00000001",
        "1732200000.1",
        "inbound",
        "4930123456",
        "support",
        "eu",
        "de",
        "4915112345678",
        "Alice",
        False,
    )
    (resolved,) = backend.resolved
    assert resolved.decision == "granted" and resolved.call_id == CALL
    assert resolved.evidence["prompt_version"] == "v7" and resolved.evidence["digits"] == ["1"]


def test_explicit_no_refuses_with_goodbye(serve: object) -> None:
    backend = FakeBackend(EXPLICIT)
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers(["2"]))
    assert variables(commands) == {
        "PBXREC_CONSENT": "refused",
        "PBXREC_GOODBYE": "/prompts/de/refusal-goodbye",
        "PBXREC_RESULT": "refused",
    }
    assert backend.resolved[0].decision == "refused"


def test_refusal_routed_to_a_context(serve: object) -> None:
    decision = RuleDecision(record=True, consent="explicit", refusal_route="unrecorded,s,1")
    backend = FakeBackend(decision)
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers(["2"]))
    assert variables(commands) == {
        "PBXREC_CONSENT": "refused",
        "PBXREC_ROUTE": "unrecorded,s,1",
        "PBXREC_RESULT": "refused",
    }


def test_timeouts_then_retry_prompt_fail_closed(serve: object) -> None:
    decision = RuleDecision(record=True, consent="explicit")  # refusal route "continue"
    backend = FakeBackend(decision)
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers(["", ""]))
    retry = 'STREAM FILE /prompts/de/consent-retry "" 0'
    assert commands[:4] == [QUESTION, "WAIT FOR DIGIT 2000", retry, QUESTION]
    assert variables(commands) == {"PBXREC_CONSENT": "timeout", "PBXREC_RESULT": "norecord"}
    assert backend.resolved[0].decision == "timeout"


def test_hangup_mid_dialogue_is_not_consent(serve: object) -> None:
    backend = FakeBackend(EXPLICIT)
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers(["H"]))
    assert variables(commands) == {}
    assert backend.resolved[0].decision == "hangup"


@pytest.mark.parametrize("reply", ["200 result=-1", "511 Command Not Permitted on a dead channel", None])
def test_dead_channel_replies_are_hangups(serve: object, reply: str | None) -> None:
    backend = FakeBackend(EXPLICIT)
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), lambda c: reply)
    assert variables(commands) == {}
    assert backend.resolved[0].decision == "hangup"


def test_notify_plays_notice_and_records(serve: object) -> None:
    backend = FakeBackend(RuleDecision(record=True, consent="notify", language="fr"))
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers([]))
    assert commands[0] == 'STREAM FILE /prompts/fr/recording-notice "" 0'
    assert variables(commands) == {"PBXREC_CONSENT": "notified", "PBXREC_RESULT": "record"}


def test_no_record_decision_and_consent_none(serve: object) -> None:
    backend = FakeBackend(RuleDecision(record=False))
    server = serve(backend)  # type: ignore[operator]
    assert variables(talk(server, env_block(ARGS), answers([]))) == {"PBXREC_RESULT": "norecord"}
    backend.decision = RuleDecision(record=True, consent="none")
    assert variables(talk(server, env_block(ARGS), answers([]))) == {
        "PBXREC_CONSENT": "not_required",
        "PBXREC_RESULT": "record",
    }
    assert backend.resolved == []


def test_backend_failure_leaves_result_unset(serve: object, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeBackend):
        def request(self, event: ev.ConsentRequested) -> ConsentTicket:
            raise TimeoutError("daemon did not answer")

    server = serve(Broken(EXPLICIT))  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers(["1"]))
    assert commands == []
    assert f"AGI consent session failed call={CALL}" in caplog.text
    backend = FakeBackend(EXPLICIT, recording_ok=False)
    server2 = serve(backend)  # type: ignore[operator]
    assert talk(server2, env_block(ARGS), answers(["1"])) == []
    assert server2.failed == 1


def test_vip_flag_from_file(serve: object, tmp_path: object) -> None:
    vip_file = tmp_path / "vip.txt"  # type: ignore[operator]
    vip_file.write_text("# board\n+49 151 1234-5678\n")
    backend = FakeBackend(RuleDecision(record=False))
    server = serve(backend, vip=VipDirectory(file=vip_file))  # type: ignore[operator]
    talk(server, env_block(ARGS, callerid="+4915112345678"), answers([]))
    talk(server, env_block(ARGS, callerid="4930999"), answers([]))
    assert [r.vip for r in backend.requested] == [True, False]


def test_hostile_arguments_and_unknown_script(serve: object) -> None:
    env = {
        "agi_arg_1": "direction=inbound",
        "agi_arg_2": "dialed=1\x00\x1b[2J",
        "agi_arg_3": "evil=1",
        "agi_arg_4": "queue=" + "q" * 500,
        "agi_arg_5": "noequals",
        "agi_arg_6": "direction=outbound",
        "agi_arg_7": "region=eu",
    }
    assert parse_args(env) == {"direction": "inbound", "region": "eu"}
    backend = FakeBackend(EXPLICIT)
    server = serve(backend)  # type: ignore[operator]
    assert talk(server, env_block(ARGS, script="other"), answers([])) == []
    hostile = ["direction=sideways", "dialed=1;2", "linkedid=../../x", "lang=de\\x"]
    commands = talk(server, env_block(hostile, name='Evil"; SET VARIABLE X'), answers(["1"]))
    req = backend.requested[0]
    assert req.direction == "" and "/" not in req.call_id.split("_", 1)[1]
    assert variables(commands)["PBXREC_RESULT"] == "record"


def test_sessions_are_bounded_and_stop_refuses(serve: object) -> None:
    gate = threading.Event()

    class Slow(FakeBackend):
        def request(self, event: ev.ConsentRequested) -> ConsentTicket:
            gate.wait(5)
            return super().request(event)

    backend = Slow(RuleDecision(record=False))
    server = serve(backend, max_sessions=1)  # type: ignore[operator]
    first: list[list[str]] = []
    t = threading.Thread(target=lambda: first.append(talk(server, env_block(ARGS), answers([]))))
    t.start()
    try:
        import time

        deadline = time.time() + 5
        while server.active == 0 and time.time() < deadline:
            time.sleep(0.01)
        assert converse(server.port, env_block(ARGS), answers([])) == []  # second one refused
    finally:
        gate.set()
        t.join(5)
    assert variables(first[0]) == {"PBXREC_RESULT": "norecord"}
    server.stop_accepting()
    assert talk(server, env_block(ARGS), answers([])) == []
    assert server.wait_idle(2)


def test_recording_that_fails_after_the_notice_takes_the_fail_direction(serve: object) -> None:
    backend = FakeBackend(RuleDecision(record=True, consent="notify", language="fr"))
    backend.started = False  # e.g. the AMI link is down: MixMonitor could not start
    server = serve(backend)  # type: ignore[operator]
    commands = talk(server, env_block(ARGS), answers([]))
    assert backend.resolved[0].decision == "notified"
    assert "PBXREC_RESULT" not in variables(commands)  # no "record": the snippet says unavailable
