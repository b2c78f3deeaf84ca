"""LocalClaimer / LocalLease: claim-once, TTL expiry, done marker, lease ownership."""

from storage.claims import Lease, LocalClaimer


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_claim_once_until_release() -> None:
    c = LocalClaimer("n1")
    assert c.claim("r1", 10)
    assert not c.claim("r1", 10)
    c.release("r1")
    assert c.claim("r1", 10)


def test_claim_expires_after_ttl() -> None:
    clock = Clock()
    c = LocalClaimer("n1", clock=clock)
    assert c.claim("r1", 5)
    clock.t += 4
    assert not c.claim("r1", 5)
    clock.t += 2
    assert c.claim("r1", 5)


def test_done_makes_claims_fail_until_forget() -> None:
    c = LocalClaimer("n1")
    assert c.claim("r1")
    c.done("r1")
    assert c.is_done("r1")
    assert not c.claim("r1")
    c.forget("r1")
    assert c.claim("r1")


def test_lease_one_holder_and_safe_release() -> None:
    clock = Clock()
    c = LocalClaimer("n1", clock=clock)
    a, b = Lease(c, "retention", 10), Lease(c, "retention", 10)
    assert a.acquire()
    assert not b.acquire()
    assert not b.release()  # b cannot drop a's lease
    assert a.renew()
    clock.t += 11
    assert not a.renew()  # expired
    assert b.acquire()
    assert not a.release()
    assert b.release()
