"""Throttling degrades gracefully: jittered, doubling backoff, and EIO only once the attempts are
spent (many mounts of one account: README.md, "Running on a cluster")."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from omicsfs.backend.errors import Throttled
from omicsfs.backend.models import StoredFile
from omicsfs.backend.retry import backoff_delay
from omicsfs.config import BackendLimits, RetryPolicy
from omicsfs.fs.errors import to_errno
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import PART, make_fs, read_file, sequence_store

DATA = bytes(range(256)) * (PART // 256) + b"tail"


def test_backoff_is_jittered_and_doubles_up_to_its_ceiling() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=20.0)
    for attempt in range(1, 11):
        ceiling = min(20.0, 0.1 * 2 ** (attempt - 1))
        delays = {backoff_delay(policy, attempt) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # mounts throttled together do not retry together


def test_per_mount_rates_default_to_the_account_quotas_and_take_a_share() -> None:
    limits = BackendLimits()
    assert (limits.metadata_tps, limits.get_read_set_tps, limits.get_reference_tps) == (5.0, 30.0, 10.0)
    sixteenth = BackendLimits(metadata_tps=5 / 16, get_read_set_tps=30 / 16, get_reference_tps=10 / 16)
    assert sixteenth.get_read_set_tps * 16 == pytest.approx(30.0)
    with pytest.raises(ValueError, match="positive"):
        BackendLimits(get_read_set_tps=0)


@pytest.mark.trio
async def test_a_throttled_read_succeeds_while_attempts_last_and_is_eio_after(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    store = sequence_store(backend)
    for name in ("x", "y"):
        backend.add_read_set(store, name, {StoredFile.SOURCE1: DATA, StoredFile.INDEX: b"i"})
    fs = make_fs(backend, nursery)
    attempts = backend.retry_policy.attempts

    def throttled() -> Throttled:
        return Throttled("GetReadSet", "Rate exceeded", "ThrottlingException")

    backend.fail("GetReadSet", throttled, times=attempts - 1)
    assert await read_file(fs, "sequence-stores/cohort/x.bam") == DATA
    assert backend.stats.throttled == attempts - 1
    backend.fail("GetReadSet", throttled, times=2 * attempts)  # every attempt of both parts
    with pytest.raises(Throttled) as caught:
        await read_file(fs, "sequence-stores/cohort/y.bam")
    assert to_errno(caught.value) == errno.EIO
