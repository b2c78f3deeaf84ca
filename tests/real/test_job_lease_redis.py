"""Lifecycle jobs run on one node at a time when Redis is configured (real redis-server)."""

from types import SimpleNamespace

import pytest

from pbx_recorder.lifecycle.job_lease import exclusive_job

pytestmark = pytest.mark.real


def node(tmp_path, redis_url, name):
    return SimpleNamespace(redis=SimpleNamespace(url=redis_url), node=name,
                           catalog=SimpleNamespace(path=str(tmp_path / name / "catalog.db")))


def test_one_node_at_a_time_under_a_lease(tmp_path, redis_url):
    a, b = node(tmp_path, redis_url, "node-a"), node(tmp_path, redis_url, "node-b")
    with exclusive_job(a, "migrate", ttl_s=3.0) as held:
        assert held == ""
        with exclusive_job(b, "migrate", ttl_s=3.0) as busy:
            assert "node-a" in busy and "nothing done" in busy
        with exclusive_job(b, "retention-apply", ttl_s=3.0) as other:
            assert other == ""
    with exclusive_job(b, "migrate", ttl_s=3.0) as after_release:
        assert after_release == ""


def test_lease_is_renewed_while_the_job_runs(tmp_path, redis_url):
    import time

    a, b = node(tmp_path, redis_url, "node-a"), node(tmp_path, redis_url, "node-b")
    with exclusive_job(a, "capacity", ttl_s=0.6) as held:
        assert held == ""
        time.sleep(1.5)  # longer than the TTL: only renewal keeps it
        with exclusive_job(b, "capacity", ttl_s=0.6) as busy:
            assert "node-a" in busy
