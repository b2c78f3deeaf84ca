"""Several nodes on one catalog, each taking catalog backups under backup keys of its own (the hourly
backup runs on whichever node holds the lifecycle lease): an erasure is done with its backups only
once every such node has destroyed the keys of the backups it took before (``backup_shred``).

Before: the backup after an erasure destroyed the older keys of the node that took it, and the
receipt said ``done`` while a backup another node had taken under its own keys still opened."""

from __future__ import annotations

import json
import time

import pytest
from tamper_support import CALLER, Deployment, two_recorded_calls

from pbx_recorder.cli import main
from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle import backup, backup_shred
from pbx_recorder.lifecycle.job_lease import exclusive_job, node_lock
from pbx_recorder.lifecycle.runtime import Runtime


@pytest.fixture()
def dep(tmp_path):
    d = two_recorded_calls(tmp_path)  # n1_1.1 of CALLER, n1_2.2 of another caller
    config = (tmp_path / "cfg.yaml").read_text()
    # node n2: the same catalog and tiers, its own backup keys
    (tmp_path / "cfg-n2.yaml").write_text(
        config.replace("node: n1", "node: n2")
        .replace("encryption: {enabled: true,", "encryption: {enabled: true, backup_key_dir: ./backup-n2,"))
    yield d
    d.close()


def on(d: Deployment, node: str, capsys, *args: str) -> tuple[int, str]:
    """The CLI on ``node`` (n1: the deployment's own config)."""
    cfg = d.root / ("cfg.yaml" if node == "n1" else f"cfg-{node}.yaml")
    code = main(["--config", str(cfg), *args])
    out = capsys.readouterr()
    return code, out.out + "".join(line for line in out.err.splitlines(keepends=True)
                                   if not line.startswith("warning: access.users is empty"))


def runtime(d: Deployment, node: str) -> Runtime:
    cfg = d.root / ("cfg.yaml" if node == "n1" else f"cfg-{node}.yaml")
    return Runtime.load(str(cfg), "catalog.backup")


def opens(d: Deployment, node: str, key: str) -> bool:
    """Whether ``node``'s backup keys still open the backup ``key``."""
    rt = runtime(d, node)
    try:
        backup.restore(rt.backup_tier(), key, d.root / f"probe-{time.monotonic_ns()}.db",
                       keys=rt.backup_keys())
    except CryptoError:
        return False
    finally:
        rt.conn.close()
    return True


def receipt_of(d: Deployment, request_id: str) -> dict:
    rt = runtime(d, "n1")
    try:
        row = rt.conn.execute("SELECT receipt FROM erasure_requests WHERE request_id = ?",
                              (request_id,)).fetchone()
        return json.loads(row[0])
    finally:
        rt.conn.close()


def backup_key_of(out: str) -> str:
    return out.split()[0].split(":", 1)[1]  # "hot:catalog-backups/<time>.db.pbxr sha256:..."


def test_a_backup_another_node_took_is_shredded_by_that_nodes_next_run_even_without_the_lease(dep, capsys):
    code, out = on(dep, "n2", capsys, "catalog", "backup")  # n2 held the lease that hour
    assert code == 0, out
    n2_backup = backup_key_of(out)
    code, out = on(dep, "n1", capsys, "catalog", "backup")
    assert code == 0, out
    assert opens(dep, "n2", n2_backup)
    assert set(backup_shred.nodes(runtime(dep, "n1").conn)) == {"n1", "n2"}

    code, out = on(dep, "n1", capsys, "erase", "--caller", CALLER, "--request-id", "ER-a")
    assert code == 0 and json.loads(out)["backups"]["shred"] == "pending", out
    code, out = on(dep, "n1", capsys, "catalog", "backup")  # the fresh backup, n1's older keys destroyed
    assert code == 0 and "for 1 erasure request(s): ER-a" in out, out
    assert "ER-a: still waiting for the backup keys of node(s) n2" in out
    # n2's backup still opens: the request is not done with its backups
    assert opens(dep, "n2", n2_backup)
    assert receipt_of(dep, "ER-a")["backups"]["shred"] == "pending"
    code, out = on(dep, "n1", capsys, "erase", "status")
    assert code == 0 and "on node(s) n2 shreds them" in out and "1 waiting for a backup shred" in out, out

    # n2's next hourly run: n1 holds the lease, n2 still destroys its own keys before giving way
    rt1 = runtime(dep, "n1")
    with exclusive_job(rt1.config, "catalog-backup") as busy:
        assert busy == ""
        code, out = on(dep, "n2", capsys, "catalog", "backup")
    assert code == 0, out
    assert "node n2: every backup key of this node destroyed for 1 erasure request(s)" in out
    assert "nothing done here" in out  # the lease: no backup of its own this time
    assert not opens(dep, "n2", n2_backup)
    receipt = receipt_of(dep, "ER-a")["backups"]
    assert receipt["shred"] == "done" and receipt["fresh_backup"].startswith("hot:catalog-backups/")
    assert receipt["nodes"]["n1"]["fresh_backup"] is True
    assert receipt["nodes"]["n2"]["fresh_backup"] is False and receipt["nodes"]["n2"]["destroyed_backup_keys"]
    assert backup_shred.pending(rt1.conn) == {} and backup_shred.parts(rt1.conn) == {}
    actions = [r[0] for r in rt1.conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("erase.backups_shredded") == 2
    # n2's next backup starts a new epoch of its own
    code, out = on(dep, "n2", capsys, "catalog", "backup")
    assert code == 0 and opens(dep, "n2", backup_key_of(out)), out
    rt1.conn.close()


def test_a_node_that_never_took_a_backup_is_not_waited_for(dep, capsys):
    code, out = on(dep, "n1", capsys, "erase", "--call-id", "n1_2.2", "--request-id", "ER-b")
    assert code == 0, out
    code, out = on(dep, "n2", capsys, "catalog", "backup")  # n2's first backup: after the erasure
    assert code == 0 and "for 1 erasure request(s): ER-b" in out, out
    assert receipt_of(dep, "ER-b")["backups"]["shred"] == "done"
    assert set(receipt_of(dep, "ER-b")["backups"]["nodes"]) == {"n2"}


def test_a_node_taken_out_of_service_is_struck_off_by_the_admin(dep, capsys):
    assert on(dep, "n2", capsys, "catalog", "backup")[0] == 0
    assert on(dep, "n1", capsys, "erase", "--caller", CALLER, "--request-id", "ER-c")[0] == 0
    assert on(dep, "n1", capsys, "catalog", "backup")[0] == 0
    code, out = on(dep, "n1", capsys, "catalog", "backup-nodes")
    assert code == 0 and "n2  backups since" in out, out
    assert "owes the destruction of its backup keys for: ER-c" in out
    assert "n1  backups since" in out and "nothing owed" in out.split("n1  backups since")[1].splitlines()[0]

    code, out = on(dep, "n1", capsys, "catalog", "backup-nodes", "--forget", "n9")
    assert code != 0 and "not listed" in out, out
    code, out = on(dep, "n1", capsys, "catalog", "backup-nodes", "--forget", "n2")
    assert code == 0 and "completed now: ER-c" in out, out
    assert receipt_of(dep, "ER-c")["backups"]["shred"] == "done"
    rt = runtime(dep, "n1")
    assert set(backup_shred.nodes(rt.conn)) == {"n1"}
    assert ("catalog.backup_node_forgotten", "n2") in [
        (r[0], r[1]) for r in rt.conn.execute("SELECT action, target FROM audit_log")]
    rt.conn.close()


def test_shred_now_on_one_node_leaves_the_other_nodes_part_waiting(dep, capsys):
    assert on(dep, "n2", capsys, "catalog", "backup")[0] == 0
    code, out = on(dep, "n2", capsys, "catalog", "backups")
    n2_backups = [line.split()[0] for line in out.splitlines() if "catalog-backups/" in line]
    code, out = on(dep, "n1", capsys, "erase", "--caller", CALLER, "--request-id", "ER-d",
                   "--shred-backups-now")
    assert code == 0, out
    receipt = json.loads(out)["backups"]
    assert receipt["shred"] == "pending" and receipt["waiting_nodes"] == ["n2"]
    assert receipt["fresh_backup"].startswith("hot:catalog-backups/")
    code, out = on(dep, "n2", capsys, "catalog", "backup")
    assert code == 0, out
    assert "destroyed for 1 erasure request(s) another node took the fresh backup for: ER-d" in out
    assert receipt_of(dep, "ER-d")["backups"]["shred"] == "done"
    assert n2_backups and not any(opens(dep, "n2", k.split(":", 1)[-1]) for k in n2_backups)


def test_a_node_with_backup_keys_from_before_the_list_is_listed_at_its_next_run(dep, capsys):
    assert on(dep, "n2", capsys, "catalog", "backup")[0] == 0
    rt = runtime(dep, "n1")
    rt.conn.execute("DELETE FROM catalog_settings WHERE name LIKE 'backup_node:%'")  # as before the list
    assert backup_shred.nodes(rt.conn) == {}
    with exclusive_job(rt.config, "catalog-backup") as busy:  # n1 holds the lease: n2 takes none
        assert busy == ""
        assert on(dep, "n2", capsys, "catalog", "backup")[0] == 0
    assert set(backup_shred.nodes(rt.conn)) == {"n2"}  # its keys are waited for from now on
    rt.conn.close()


def test_a_nodes_keys_are_not_destroyed_while_a_backup_of_that_node_runs_under_them(dep, capsys):
    assert on(dep, "n2", capsys, "catalog", "backup")[0] == 0
    assert on(dep, "n1", capsys, "erase", "--caller", CALLER, "--request-id", "ER-e")[0] == 0
    assert on(dep, "n1", capsys, "catalog", "backup")[0] == 0  # the fresh backup: n2's part waits
    rt2 = runtime(dep, "n2")
    keys = rt2.backup_keys().ids()
    with node_lock(rt2.backup_keys().key_dir) as busy:  # another run of n2 is taking a backup
        assert busy == ""
        code, out = on(dep, "n2", capsys, "catalog", "backup")
    assert code == 0 and "its part of the waiting erasures: at the next run" in out, out
    assert rt2.backup_keys().ids() == keys and receipt_of(dep, "ER-e")["backups"]["shred"] == "pending"
    code, out = on(dep, "n2", capsys, "catalog", "backup")
    assert code == 0 and receipt_of(dep, "ER-e")["backups"]["shred"] == "done", out
    rt2.conn.close()
