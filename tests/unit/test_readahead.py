"""Read-ahead policy and budget (pure logic)."""

from __future__ import annotations

from omicsfs.backend.models import FileLayout
from omicsfs.fs.read.readahead import ReadAheadBudget, StreamState

PART = 100 << 20
LAYOUT = FileLayout(content_length=20 * PART + 5, part_size=PART, total_parts=21)
READ = 128 << 10


def test_first_read_fetches_nothing_ahead() -> None:
    assert StreamState().observe(0, READ, LAYOUT, 4) == []


def test_sequential_reader_grows_one_two_four() -> None:
    stream = StreamState()
    reached: dict[int, int] = {}  # depth -> offset of the read that reached it
    offset = 0
    while offset < 6 * PART:
        wanted = stream.observe(offset, READ, LAYOUT, 4)
        reached.setdefault(len(wanted), offset)
        offset += READ
    assert stream.observe(offset, READ, LAYOUT, 4) == [8, 9, 10, 11]  # reading part 7
    assert reached[0] == 0  # the first read fetches only its own part
    assert reached[1] == 2 * READ  # after two in-order reads
    assert PART // 4 <= reached[2] < PART // 4 + 3 * READ  # then doubling every quarter part
    assert PART // 2 <= reached[4] < PART // 2 + 3 * READ
    assert 3 not in reached  # never more than max_depth, never in between


def test_random_reader_gets_no_read_ahead() -> None:
    stream = StreamState()
    for offset in (5 * PART, 1 * PART, 17 * PART, 3 * PART + 7, 11 * PART):
        assert stream.observe(offset, 4096, LAYOUT, 4) == []


def test_a_seek_resets_the_window() -> None:
    stream = StreamState()
    for index in range(10):
        stream.observe(index * READ, READ, LAYOUT, 4)
    assert stream.depth == 1
    assert stream.observe(15 * PART, READ, LAYOUT, 4) == []
    assert stream.depth == 0


def test_last_part_bounds_the_window() -> None:
    stream = StreamState(next_offset=18 * PART, in_order=5, depth=4, part=19)
    assert stream.observe(18 * PART + 10, READ, LAYOUT, 4) == [20, 21]  # part 19 of 21


def test_budget_is_shared_and_caps_streams() -> None:
    budget = ReadAheadBudget(total_bytes=5 * PART, max_streams=2)
    assert budget.grant(1, [2, 3, 4, 5], PART) == [2, 3, 4, 5]
    assert budget.grant(2, [8, 9, 10], PART) == [8]
    assert budget.grant(3, [4], PART) == []  # stream cap
    budget.release(1)
    assert budget.grant(3, [4, 5], PART) == [4, 5]
    assert budget.in_use == 3 * PART
