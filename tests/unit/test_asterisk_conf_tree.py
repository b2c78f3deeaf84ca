"""Reading Asterisk .conf trees: #include expansion around pyst2's parser, and hostile input.

Every bad input ends in a ``ConfigError`` naming the file (exit 2) or a note the check reports,
never in another exception.
"""

import os

import asterisk.config
import pytest

from pbx_recorder.asterisk_check.conf_tree import MAX_DEPTH, MAX_FILE_BYTES, _config_class, read_tree
from pbx_recorder.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def kinds(tree):
    return [note.kind for note in tree.notes]


@pytest.mark.parametrize("header", ["[tpl](!)", "[rec](tpl)", "[rec](+)"])
def test_pyst2_itself_refuses_template_headers(header):
    """Why conf_tree cuts the suffix off before pyst2 sees a header (pyst2's parse, unchanged;
    its own ``load`` leaves the file open, so the lines are given to it)."""
    lines_config, _ = _config_class()
    with pytest.raises(asterisk.config.ParseError, match="Missing"):
        lines_config("t.conf", [header, "read = call"])


def test_templates_inherit_and_are_not_sections(tmp_path):
    conf = write(tmp_path / "manager.conf", "[tpl](!)\nread = call\nwrite = system ; comment\n"
                                            "[rec](tpl)\nwrite = system,call\n[rec](+)\nsecret = x\n")
    tree = read_tree(conf, tmp_path)
    assert tree.section("tpl") is None
    rec = tree.section("rec")
    assert rec.last("read")[0] == "call"
    assert rec.last("write")[0] == "system,call"  # its own line comes after the template's
    assert rec.last("secret")[0] == "x"  # (+) added to the earlier [rec]
    assert str(rec.last("read")[1]) == f"{conf}:2"  # an inherited item keeps its own origin


def test_missing_template_is_a_note(tmp_path):
    tree = read_tree(write(tmp_path / "m.conf", "[rec](nosuch)\nread = call\n"), tmp_path)
    assert kinds(tree) == ["template-missing"]
    assert tree.section("rec").last("read")[0] == "call"


def test_includes_are_relative_to_etc_and_globs_sorted(tmp_path):
    write(tmp_path / "manager.d" / "b.conf", "[b]\nx = 2\n")
    write(tmp_path / "manager.d" / "a.conf", "[a]\nx = 1\n#include \"inner.conf\"\n")
    write(tmp_path / "inner.conf", "[inner]\ny = 3\n")  # relative to etc, not to manager.d (as Asterisk)
    conf = write(tmp_path / "manager.conf", "[general]\nenabled = yes\n#include \"manager.d/*.conf\"\n")
    tree = read_tree(conf, tmp_path)
    assert [s.name for s in tree.sections] == ["general", "a", "inner", "b"]
    assert str(tree.section("b").last("x")[1]) == f"{tmp_path / 'manager.d' / 'b.conf'}:2"
    assert tree.notes == []


def test_include_loop_missing_empty_exec_are_notes(tmp_path):
    write(tmp_path / "loop.conf", "[l]\n#include loop.conf\n")
    conf = write(tmp_path / "m.conf", "[g]\n#include loop.conf\n#include <nosuch.conf>\n"
                                      "#tryinclude nosuch2.conf\n#include \"none.d/*.conf\"\n"
                                      "#exec /bin/echo hi\n#bogus x\n")
    tree = read_tree(conf, tmp_path)
    assert kinds(tree) == ["include-loop", "include-missing", "include-empty", "exec-not-followed",
                           "directive-unknown"]
    assert [s.name for s in tree.sections] == ["g", "l"]


def test_include_depth_is_bounded(tmp_path):
    for n in range(MAX_DEPTH + 3):
        write(tmp_path / f"d{n}.conf", f"[s{n}]\n#include d{n + 1}.conf\n")
    write(tmp_path / f"d{MAX_DEPTH + 3}.conf", "[last]\n")
    tree = read_tree(tmp_path / "d0.conf", tmp_path)
    assert kinds(tree) == ["include-depth"]
    assert tree.section("last") is None


def test_relative_include_outside_etc_is_not_followed(tmp_path):
    etc = tmp_path / "etc"
    write(tmp_path / "secret.conf", "[outside]\nx = 1\n")
    absolute = write(tmp_path / "abs.conf", "[absolute]\nx = 1\n")
    conf = write(etc / "m.conf", f"[g]\n#include ../secret.conf\n#include {absolute}\n")
    tree = read_tree(conf, etc)
    assert kinds(tree) == ["include-outside"]
    assert [s.name for s in tree.sections] == ["g", "absolute"]


def test_block_comments_hide_lines(tmp_path):
    conf = write(tmp_path / "m.conf",
                 "[g]\na = 1 ;-- start\nnot a pair\n#include nosuch.conf\nend --; b = 2\n")
    tree = read_tree(conf, tmp_path)
    assert tree.notes == []
    assert [(k, v) for k, v, _ in tree.section("g").items] == [("a", "1"), ("b", "2")]


@pytest.mark.parametrize("content, problem", [
    (b"[g]\n" + b"; padding\n" * (MAX_FILE_BYTES // 10 + 1), "MiB"),
    (bytes(range(256)) * 16, "binary"),
    (b"\xff\xfe\x8f garbage without pairs\n", "cannot parse"),
    (b"[general\nenabled = yes\n", "cannot parse"),
])
def test_hostile_files_are_clear_errors(tmp_path, content, problem):
    bad = tmp_path / "bad.conf"
    bad.write_bytes(content)
    conf = write(tmp_path / "m.conf", "[g]\nx = 1\n#include bad.conf\n")
    with pytest.raises(ConfigError) as caught:
        read_tree(conf, tmp_path)
    assert problem in str(caught.value)
    assert str(bad) in str(caught.value)


@pytest.mark.timeout(10)
def test_a_fifo_in_place_of_a_conf_file_is_refused_without_waiting_for_a_writer(tmp_path):
    """A FIFO planted as manager.conf (by whoever can write to /etc/asterisk) would block a plain
    open() forever in a check that root runs; it is refused as not a regular file.  (Includes are
    followed only to regular files already; this also closes the race between that test and the
    open.)"""
    os.mkfifo(tmp_path / "manager.conf")
    with pytest.raises(ConfigError, match="not a regular file") as caught:
        read_tree(tmp_path / "manager.conf", tmp_path)
    assert str(tmp_path / "manager.conf") in str(caught.value)


def test_unreadable_top_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_tree(tmp_path / "nosuch.conf", tmp_path)
    if os.geteuid() != 0:  # root reads a 000 file anyway
        locked = write(tmp_path / "locked.conf", "[g]\n")
        locked.chmod(0)
        with pytest.raises(ConfigError, match="cannot read"):
            read_tree(locked, tmp_path)


def test_escaped_semicolon_stays_in_the_value(tmp_path):
    conf = write(tmp_path / "m.conf", "[u]\nsecret = ab\\;cd ; a comment\n")
    assert read_tree(conf, tmp_path).section("u").last("secret")[0] == "ab;cd"
