"""pbx_recorder.testbed.installs and the start-up module check: the test bed finds the module
folder (multiarch on Asterisk 22) and refuses an Asterisk that loaded no modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_recorder.testbed import asterisk_conf
from pbx_recorder.testbed.asterisk import running_modules
from pbx_recorder.testbed.installs import STAMP, AsteriskInstall, InstallError, install_for


def fake_root(tmp_path: Path, *module_dirs: str) -> Path:
    for folder in module_dirs:
        (tmp_path / folder.lstrip("/")).mkdir(parents=True)
        (tmp_path / folder.lstrip("/") / "app_mixmonitor.so").write_bytes(b"")
    return tmp_path


def test_module_folder_plain_and_multiarch(tmp_path: Path) -> None:
    assert AsteriskInstall(fake_root(tmp_path / "a", "/usr/lib/asterisk/modules")).module_dir() == \
        "/usr/lib/asterisk/modules"
    multiarch = fake_root(tmp_path / "b", "/usr/lib/x86_64-linux-gnu/asterisk/modules")
    (multiarch / "usr/lib/asterisk").mkdir()  # Debian 22 keeps other files there, not modules
    assert AsteriskInstall(multiarch).module_dir() == "/usr/lib/x86_64-linux-gnu/asterisk/modules"


def test_no_or_two_module_folders_are_errors(tmp_path: Path) -> None:
    (tmp_path / "none/usr/lib").mkdir(parents=True)
    with pytest.raises(InstallError, match="found none"):
        AsteriskInstall(tmp_path / "none").module_dir()
    two = fake_root(tmp_path / "two", "/usr/lib/asterisk/modules",
                    "/usr/lib/aarch64-linux-gnu/asterisk/modules")
    with pytest.raises(InstallError, match="expected one"):
        AsteriskInstall(two).module_dir()


def test_chroot_launch_mounts_in_a_private_namespace(tmp_path: Path) -> None:
    install = AsteriskInstall(Path("/srv/sid"))
    argv = install.launch(["asterisk", "-f"], shared=[tmp_path])
    assert argv[:5] == ["unshare", "-m", "--propagation", "private", "--"]
    assert argv[-5:] == ["/srv/sid", str(tmp_path), "--", "asterisk", "-f"]
    assert "exec chroot" in argv[7] and 'mount --bind "$1" "$root$1"' in argv[7]
    assert install.remote(42, ["asterisk", "-rx", "x"]) == ["nsenter", "-t", "42", "-m", "-r", "-w",
                                                            "asterisk", "-rx", "x"]
    with pytest.raises(InstallError):
        install.launch(["asterisk"], shared=[Path("relative")])
    with pytest.raises(InstallError):
        install.remote(None, ["asterisk"])
    assert AsteriskInstall().launch(["asterisk", "-f"], shared=[tmp_path]) == ["asterisk", "-f"]


def test_asterisk22_needs_a_finished_chroot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBXREC_SID_ROOT", str(tmp_path))
    with pytest.raises(InstallError, match="install-asterisk22.sh"):
        install_for("22")
    (tmp_path / STAMP).write_text("asterisk 22.10.1\n")
    assert install_for("22").root == tmp_path
    assert install_for("16").root is None
    with pytest.raises(InstallError):
        install_for("18")


def test_modules_by_version() -> None:
    assert "res_monitor" in asterisk_conf.modules_for(16)
    assert "res_monitor" not in asterisk_conf.modules_for(22)  # removed in 21
    assert all("res_pjsip_refer" in asterisk_conf.modules_for(v) for v in (16, 22))


LISTING = """Module                         Description                              Use Count  Status
app_mixmonitor.so              Mixed Audio Monitoring Application       0          Running              core
res_pjsip_refer.so             PJSIP Blind and Attended Transfer Suppor 1          Running              core
chan_pjsip.so                  PJSIP Channel Driver                     0          Not Running          core
3 modules loaded
"""


def test_running_modules_reads_module_show() -> None:
    assert running_modules(LISTING) == {"app_mixmonitor", "res_pjsip_refer"}
    assert running_modules("0 modules loaded\n") == set()  # what an empty module folder gives
