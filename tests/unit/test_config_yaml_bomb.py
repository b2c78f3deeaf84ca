"""A YAML alias bomb in the config is refused fast with exit 2 naming the file (it took ~2 GB and
46 s, then exited 1 with MemoryError); anchors used sensibly still work."""

from __future__ import annotations

import time

import pytest

from pbx_recorder.cli import main
from pbx_recorder.config import load_config, yaml_load

BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    + ["rules: *i", ""]
)


def test_alias_bomb_exits_2_quickly_naming_the_file(tmp_path, capsys):
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(BOMB)
    started = time.monotonic()
    code = main(["--config", str(path), "check-config"])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(path) in err and "alias" in err
    assert elapsed < 20  # generous for a loaded machine; the bomb itself needs minutes and gigabytes


def test_recursive_alias_is_refused():
    with pytest.raises(yaml_load.ConfigTooLarge):
        yaml_load.load("a: &a [1, *a]\n")


def test_environment_values_are_bounded_too(tmp_path):
    value = "[" + ",".join(["x"] * 400) + "]"
    assert yaml_load.load(value) == ["x"] * 400
    with pytest.raises(yaml_load.ConfigTooLarge):
        yaml_load.load("x", limit=0)


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("""
base: &notify {record: "yes", consent: notify, prompt: recording-notice}
rules:
  - {name: a, match: {dialed: ["100"]}, action: *notify}
  - {name: b, match: {dialed: ["200"]}, action: {<<: *notify, consent: none}}
""")
    data = yaml_load.load(path.read_text())
    assert data["rules"][1]["action"] == {"record": "yes", "consent": "none", "prompt": "recording-notice"}
    with pytest.raises(Exception) as exc:  # `base` is not a config key: the normal error, not a crash
        load_config(path, env={})
    assert "base" in str(exc.value)


@pytest.mark.parametrize("doc", ["rules: " + "[" * 5000 + "]" * 5000,
                                 "rules: " + "{a: " * 3000 + "1" + "}" * 3000,
                                 "".join(" " * i + "k:\n" for i in range(2000)) + " " * 2000 + "k: 1\n"])
def test_deep_nesting_exits_2_naming_the_file_not_a_recursion_traceback(tmp_path, capsys, doc):
    path = tmp_path / "pbx-recorder.yaml"
    path.write_text(doc)
    code = main(["--config", str(path), "check-config"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(path) in err and "nested" in err
