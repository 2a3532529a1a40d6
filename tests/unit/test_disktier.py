"""The disk tier's file format: blocks verified by CRC, damage detected (real files, no service)."""

from __future__ import annotations

from pathlib import Path

import trio

from omicsfs.fs.read.disktier import DiskTier


def test_round_trip_damage_and_cap(tmp_path: Path) -> None:
    async def main() -> None:
        tier = DiskTier(tmp_path / "parts", max_bytes=10_000, block_size=1000)
        tier.scan()
        path = tier.path(("readSet", "123", "source1", "v1"), 1)
        data = bytes(range(256)) * 10  # 2560 bytes: blocks of 1000, 1000, 560
        writer = tier.begin(path)
        for start in range(0, len(data), 1000):
            await writer.write_block(data[start : start + 1000])
        await writer.commit()
        assert tier.has(path)
        assert await tier.read_block(path, len(data), 2) == data[2000:]
        assert await tier.read_block(path, len(data) + 1, 0) is None  # wrong length: dropped
        assert not tier.has(path)

        writer = tier.begin(path)
        for start in range(0, len(data), 1000):
            await writer.write_block(data[start : start + 1000])
        await writer.commit()
        raw = bytearray(path.read_bytes())
        raw[1500] ^= 1
        path.write_bytes(bytes(raw))
        assert await tier.read_block(path, len(data), 0) == data[:1000]  # other blocks still good
        assert await tier.read_block(path, len(data), 1) is None
        assert not path.exists()

        for number in range(10):  # 10 x ~2.6 KB against a 10 KB cap: the oldest go
            other = tier.path(("readSet", "9", "source1", "v"), number)
            writer = tier.begin(other)
            await writer.write_block(data)
            await writer.commit()
        assert tier.bytes <= 10_000
        assert tier.has(tier.path(("readSet", "9", "source1", "v"), 9))
        assert not tier.has(tier.path(("readSet", "9", "source1", "v"), 0))

    trio.run(main)
