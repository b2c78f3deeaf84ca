"""``pbx.type: freeswitch`` and the ``pbx.esl`` keys (esl/CONTRACT.md section 1): validated at
start-up, every error names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.config import ConfigErrors, load_config


def write(tmp_path: Path, pbx: str) -> Path:
    (tmp_path / "esl.password").write_text("ClueCon\n")
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(
        f"pbx:\n{pbx}\n  monitor_dir: {tmp_path}/monitor\nspool: {{dir: {tmp_path}/spool}}\n"
        f"catalog: {{path: {tmp_path}/c.db}}\n"
    )
    return path


def errors(path: Path) -> str:
    with pytest.raises(ConfigErrors) as exc:
        load_config(path)
    return "\n".join(str(e) for e in exc.value.errors)


def test_freeswitch_keys_load(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            f"""  type: freeswitch
  esl:
    host: 127.0.0.1
    port: 8022
    password_file: {tmp_path}/esl.password
    reconnect_min_s: 0.2
    reconnect_max_s: 5
    api_timeout_s: 3
    connect_timeout: 2
    outbound: {{host: 127.0.0.1, port: 8085, max_sessions: 10, session_timeout_s: 60}}""",
        )
    )
    esl = cfg.pbx.esl
    assert cfg.pbx.type == "freeswitch" and esl.password is not None and esl.password.reveal() == "ClueCon"
    assert (esl.port, esl.reconnect_min_s, esl.reconnect_max_s, esl.api_timeout_s) == (8022, 0.2, 5.0, 3.0)
    assert (esl.outbound.port, esl.outbound.max_sessions, esl.outbound.session_timeout_s) == (8085, 10, 60.0)
    assert "ClueCon" not in str(cfg.to_safe_dict())


def test_defaults_match_the_contract(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, f"  type: freeswitch\n  esl: {{password_file: {tmp_path}/esl.password}}")
    )
    assert (cfg.pbx.esl.host, cfg.pbx.esl.port) == ("127.0.0.1", 8021)
    assert (cfg.pbx.esl.outbound.host, cfg.pbx.esl.outbound.port) == ("127.0.0.1", 8084)


def test_freeswitch_without_a_password_is_refused(tmp_path: Path) -> None:
    assert "pbx.esl.password" in errors(write(tmp_path, "  type: freeswitch"))


@pytest.mark.parametrize(
    ("esl", "key"),
    [
        ("outbound: {port: 70000}", "pbx.esl.outbound.port"),
        ("outbound: {prot: 1}", "pbx.esl.outbound.prot"),
        ("reconnect_min_s: 9\n    reconnect_max_s: 1", "pbx.esl.reconnect_min_s"),
        ("api_timeout_s: 0", "pbx.esl.api_timeout_s"),
        ("hots: x", "pbx.esl.hots"),
        ("host: 'a b'", "pbx.esl.host"),
    ],
)
def test_bad_esl_keys_name_the_key(tmp_path: Path, esl: str, key: str) -> None:
    text = errors(write(tmp_path, f"  type: freeswitch\n  esl:\n    password: x\n    {esl}"))
    assert key in text
