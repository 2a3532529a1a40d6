"""Read-ahead policy and budget (pure logic)."""

from __future__ import annotations

import itertools

from omicsfs.backend.models import FileLayout
from omicsfs.config import MountConfig
from omicsfs.fs.read.readahead import RangeStream, ReadAheadBudget, StreamState

PART = 100 << 20
LAYOUT = FileLayout(content_length=20 * PART + 5, part_size=PART, total_parts=21)
READ = 128 << 10
GROWTH = 8 << 20  # ReadAheadConfig.growth_bytes


def test_first_read_fetches_nothing_ahead() -> None:
    assert StreamState().observe(0, READ, LAYOUT, 4, GROWTH) == []


def test_sequential_reader_grows_one_two_four() -> None:
    stream = StreamState()
    reached: dict[int, int] = {}  # depth -> offset of the read that reached it
    offset = 0
    while offset < 6 * PART:
        wanted = stream.observe(offset, READ, LAYOUT, 4, GROWTH)
        reached.setdefault(len(wanted), offset)
        offset += READ
    assert stream.observe(offset, READ, LAYOUT, 4, GROWTH) == [8, 9, 10, 11]  # reading part 7
    assert reached[0] == 0  # the first read fetches only its own part
    assert reached[1] == 2 * READ  # after two in-order reads
    assert 2 * READ + GROWTH <= reached[2] < 2 * READ + GROWTH + 2 * READ  # then doubling every 8 MiB
    assert 2 * READ + 2 * GROWTH <= reached[4] < 2 * READ + 2 * GROWTH + 2 * READ
    assert reached[4] < PART // 4  # four parts in flight long before a quarter of the first part
    assert 3 not in reached  # never more than max_depth, never in between


def test_by_default_a_sequential_reader_reaches_eight_parts_and_a_1g_cache_grants_seven() -> None:
    """The defaults the mount runs with: depth 8 after 24 MiB in order, never more; the default
    1 GiB cache's read-ahead budget (three quarters) holds 7 parts of 100 MiB for one stream."""
    config = MountConfig()
    read_ahead = config.read_ahead
    stream = StreamState()
    reached: dict[int, int] = {}
    offset = 0
    while offset < 2 * PART:
        wanted = stream.observe(offset, READ, LAYOUT, read_ahead.max_depth, read_ahead.growth_bytes)
        reached.setdefault(len(wanted), offset)
        offset += READ
    assert sorted(reached) == [0, 1, 2, 4, 8]
    assert 2 * READ + 3 * GROWTH <= reached[8] < 2 * READ + 3 * GROWTH + 2 * READ
    assert config.read_ahead_budget == 768 << 20
    budget = ReadAheadBudget(config.read_ahead_budget, read_ahead.max_streams, arriving=lambda ref: False)
    assert budget.grant(1, "a", list(range(2, 10)), _length) == [2, 3, 4, 5, 6, 7, 8]


def test_small_parts_grow_every_quarter_part() -> None:
    small = FileLayout(content_length=100 * (4 << 20), part_size=4 << 20, total_parts=100)
    stream = StreamState()
    offset, reached = 0, dict[int, int]()
    while offset < 8 << 20:
        reached.setdefault(len(stream.observe(offset, READ, small, 4, GROWTH)), offset)
        offset += READ
    assert reached[2] - reached[1] == 1 << 20  # a quarter of a 4 MiB part, not 8 MiB


def test_range_stream_window_doubles_while_sequential_and_resets_on_a_seek() -> None:
    block, blocks = 1 << 20, 10_000
    ranges = RangeStream()
    assert ranges.observe(0, READ, block, blocks, 64 << 20) == []  # a miss fetches only its block
    windows = []
    offset = READ
    while offset < 200 << 20:
        windows.append(len(ranges.observe(offset, READ, block, blocks, 64 << 20)))
        offset += READ
    assert windows[:2] == [0, 1]  # sequential after two in-order reads
    assert max(windows) == 64  # capped at the window
    assert sorted(set(windows)) == [0, 1, 2, 4, 8, 16, 32, 64]  # doubling, never in between
    assert ranges.observe(5000 << 20, READ, block, blocks, 64 << 20) == []  # a seek: no read-ahead
    assert RangeStream().observe((blocks - 1) * block, READ, block, blocks, 64 << 20) == []


def test_range_stream_window_ends_on_request_boundaries_once_it_holds_a_request() -> None:
    block, blocks, request = 1 << 20, 10_000, 8
    ranges = RangeStream()
    ends = []
    offset = 0
    while offset < 200 << 20:
        wanted = ranges.observe(offset, READ, block, blocks, 64 << 20, request)
        if wanted:
            ends.append((ranges.window, wanted[-1] + 1))
        offset += READ
    assert all(end % min(window, request) == 0 for window, end in ends)  # whole, aligned GETs
    assert max(window for window, _ in ends) == 64
    # The window's end moves a request at a time: between reads it stays put or jumps by 8.
    steps = {
        later - earlier
        for (before, earlier), (window, later) in itertools.pairwise(ends)
        if before == window == 64
    }
    assert steps <= {0, request}


def test_random_reader_gets_no_read_ahead() -> None:
    stream = StreamState()
    for offset in (5 * PART, 1 * PART, 17 * PART, 3 * PART + 7, 11 * PART):
        assert stream.observe(offset, 4096, LAYOUT, 4, GROWTH) == []


def test_a_seek_resets_the_window() -> None:
    stream = StreamState()
    for index in range(10):
        stream.observe(index * READ, READ, LAYOUT, 4, GROWTH)
    assert stream.depth == 1
    assert stream.observe(15 * PART, READ, LAYOUT, 4, GROWTH) == []
    assert stream.depth == 0


def test_last_part_bounds_the_window() -> None:
    stream = StreamState(next_offset=18 * PART, in_order=5, depth=4, part=19)
    assert stream.observe(18 * PART + 10, READ, LAYOUT, 4, GROWTH) == [20, 21]  # part 19 of 21


def _length(part: int) -> int:
    return LAYOUT.part_length(part)


def test_budget_is_shared_and_caps_streams() -> None:
    arriving: set[tuple[object, int]] = set()
    budget = ReadAheadBudget(total_bytes=5 * PART, max_streams=2, arriving=arriving.__contains__)
    assert budget.grant(1, "a", [2, 3, 4, 5], _length) == [2, 3, 4, 5]
    assert budget.grant(2, "b", [8, 9, 10], _length) == [8]
    assert budget.grant(3, "c", [4], _length) == []  # stream cap
    budget.release(1)
    assert budget.grant(3, "c", [4, 5], _length) == [4, 5]
    assert budget.in_use == 3 * PART


def test_a_stream_keeps_its_window_while_its_parts_are_in_flight() -> None:
    """The bug the budget had: a stream whose window was all in flight asked for nothing new,
    dropped its grant, and the next stream took the whole budget."""
    arriving: set[tuple[object, int]] = set()
    budget = ReadAheadBudget(total_bytes=5 * PART, max_streams=8, arriving=arriving.__contains__)
    granted = budget.grant(1, "a", [2, 3, 4, 5], _length)
    arriving.update(("a", part) for part in granted)
    assert budget.grant(1, "a", [2, 3, 4, 5], _length) == [2, 3, 4, 5]  # same window, still held
    assert budget.grant(2, "b", [2, 3, 4, 5], _length) == [2]  # only what is left
    assert budget.in_use == 5 * PART


def test_parts_given_up_stay_charged_until_they_arrive() -> None:
    arriving: set[tuple[object, int]] = set()
    budget = ReadAheadBudget(total_bytes=4 * PART, max_streams=8, arriving=arriving.__contains__)
    arriving.update(("a", part) for part in budget.grant(1, "a", [2, 3, 4, 5], _length))
    assert budget.grant(1, "a", [], _length) == []  # a seek: the stream wants nothing now
    assert budget.grant(2, "b", [2, 3], _length) == []  # but parts 2-5 of "a" are still coming
    arriving.clear()  # they have arrived
    assert budget.grant(2, "b", [2, 3], _length) == [2, 3]


def test_eight_sequential_readers_never_have_more_ahead_than_the_budget() -> None:
    """The issue's simulation: eight readers, 100 MiB parts, a budget of 5 parts, fetches that
    never finish. Before the fix, 48 parts (4.8 GiB) ended up outstanding."""
    layout = FileLayout(content_length=50 * PART, part_size=PART, total_parts=50)
    arriving: set[tuple[object, int]] = set()
    budget = ReadAheadBudget(total_bytes=5 * PART, max_streams=8, arriving=arriving.__contains__)
    streams = {reader: StreamState() for reader in range(8)}
    offsets = dict.fromkeys(streams, 0)
    most = 0
    for _ in range(2000):
        for reader, stream in streams.items():
            window = stream.observe(offsets[reader], READ, layout, 4, GROWTH)
            for part in budget.grant(reader, f"file{reader}", window, layout.part_length):
                arriving.add((f"file{reader}", part))
            offsets[reader] += READ
            ahead = {(f, p) for f, p in arriving if p > offsets[int(str(f)[4:])] // PART + 1}
            most = max(most, len(ahead))
    assert most <= 5
    assert budget.in_use <= 5 * PART
