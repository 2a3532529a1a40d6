"""The unit tier: pure logic and the filesystem in-process on the fake backend (tests/fakes/).

Every trio test here runs on trio's MockClock with autojump: sleeps, backoffs, TTLs and pair
timeouts take no wall time, so the whole tier runs in seconds.
"""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture(autouse=True)
def fake_clock(autojump_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    return autojump_clock
