"""The unit tier: pure logic and the filesystem in-process on the fake backend (tests/fakes/).

Every trio test here runs on trio's MockClock with autojump: sleeps, backoffs, TTLs and pair
timeouts take no wall time, so the whole tier runs in seconds. pytest-trio hands ``trio.run`` a
clock only when the test itself names a clock fixture (an autouse fixture is not passed on), so
the hook below gives every trio test of this folder a runner that supplies one. A test that needs
to move the clock by hand names ``autojump_clock``; that clock is then the one used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

HERE = Path(__file__).parent


def run_on_mock_clock(
    fn: Callable[[], Awaitable[Any]],
    *,
    clock: trio.abc.Clock | None = None,
    instruments: Sequence[trio.abc.Instrument] = (),
) -> Any:
    return trio.run(fn, clock=clock or trio.testing.MockClock(autojump_threshold=0), instruments=instruments)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE) and item.get_closest_marker("trio") is not None:
            # Appended after the test's own @pytest.mark.trio, which names no runner.
            item.add_marker(pytest.mark.trio(run=run_on_mock_clock))
