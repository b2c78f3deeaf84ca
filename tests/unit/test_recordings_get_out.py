"""``recordings get --out``: never over an existing file or through a symlink, only into the
caller's own directory (or access.download_dir), written owner-only."""

from __future__ import annotations

import os
import stat

import pytest
from lifecycle_support import add_call, add_recording, make_cli_env

from pbx_recorder.cli import main

AUDIO = b"audio of r1" * 10


@pytest.fixture()
def site(tmp_path):
    env, cfg = make_cli_env(tmp_path)
    add_call(env, "c1")
    add_recording(env, "c1", "r1")
    yield env, cfg, tmp_path
    env.conn.close()


def get(cfg: str, out, capsys) -> tuple[int, str]:
    code = main(["--config", cfg, "recordings", "get", "r1", "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_writes_a_new_owner_only_file(site, capsys):
    _, cfg, tmp = site
    old = os.umask(0o022)
    try:
        code, out = get(cfg, tmp / "mine.wav", capsys)
    finally:
        os.umask(old)
    assert code == 0, out
    assert (tmp / "mine.wav").read_bytes() == AUDIO
    assert stat.S_IMODE((tmp / "mine.wav").stat().st_mode) == 0o600
    assert [p.name for p in tmp.iterdir() if ".tmp-" in p.name] == []


def test_refuses_existing_files_and_symlinks(site, capsys):
    _, cfg, tmp = site
    victim = tmp / "victim"
    victim.write_bytes(b"precious")
    code, out = get(cfg, victim, capsys)
    assert code == 7 and "exists" in out and victim.read_bytes() == b"precious"
    link = tmp / "link.wav"
    link.symlink_to(victim)
    code, out = get(cfg, link, capsys)
    assert code == 7 and victim.read_bytes() == b"precious"
    dangling = tmp / "dangling.wav"
    dangling.symlink_to(tmp / "would-be-created")
    assert get(cfg, dangling, capsys)[0] == 7 and not (tmp / "would-be-created").exists()


def test_refuses_a_directory_of_another_account(site, capsys):
    _, cfg, tmp = site
    foreign = tmp / "someone-else"
    foreign.mkdir()
    os.chown(foreign, 4242, 4242)  # the tests run as root (CI: a fresh root machine)
    code, out = get(cfg, foreign / "x.wav", capsys)
    assert code == 7 and "own" in out and not (foreign / "x.wav").exists()


def test_a_named_operator_is_confined_to_the_download_dir(tmp_path, monkeypatch, capsys):
    access = f"access: {{users: {{sup1: supervisor}}, download_dir: {tmp_path}/dl}}\n"
    env, cfg = make_cli_env(tmp_path, access)
    add_call(env, "c1")
    add_recording(env, "c1", "r1")
    (tmp_path / "dl").mkdir()
    monkeypatch.setenv("PBX_RECORDER_USER", "sup1")
    monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # a privileged front end acting for sup1
    code, out = get(cfg, tmp_path / "etc-cron.d-evil", capsys)
    assert code == 7 and "download_dir" in out and not (tmp_path / "etc-cron.d-evil").exists()
    code, out = get(cfg, tmp_path / "dl" / "sup1.wav", capsys)
    assert code == 0, out
    assert (tmp_path / "dl" / "sup1.wav").read_bytes() == AUDIO
    env.conn.close()


def test_a_directory_swapped_for_a_symlink_after_the_check_is_not_followed(tmp_path):
    """Red-team re-try: the operator owns ``d``; between the check and the write (a root front end
    runs the download) they rename it and put a symlink to a system directory in its place.  The
    write used to follow the path again and create the file in the system directory."""
    from pbx_recorder import output_path
    from pbx_recorder.errors import AccessDenied

    own = tmp_path / "d"
    own.mkdir()
    system = tmp_path / "etc-sudoers.d"  # stands in for a directory only root may write
    system.mkdir()
    target = output_path.check(own / "x.wav", actor="me", download_dir=None)
    own.rename(tmp_path / "d-moved")
    own.symlink_to(system)
    with pytest.raises(AccessDenied, match="changed while writing"):
        output_path.write_new(target, lambda tmp: tmp.write_bytes(b"audio"))
    assert list(system.iterdir()) == [] and list((tmp_path / "d-moved").iterdir()) == []
