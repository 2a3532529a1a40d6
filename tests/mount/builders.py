"""Small read sets made on the fly for tests that need many of them or particular names."""

from __future__ import annotations

import gzip
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.service.helpers import upload_file


def fastq_gz(reads: int, seed: int = 0, length: int = 50) -> bytes:
    rng = random.Random(seed)
    lines = []
    for index in range(reads):
        lines.append(f"@r{seed}_{index}\n{''.join(rng.choices('ACGT', k=length))}\n+\n{'I' * length}\n")
    return gzip.compress("".join(lines).encode())


def tiny_read_sets(omics: Any, store_id: str, count: int, prefix: str = "rs", **fields: Any) -> list[str]:
    """``count`` single-end FASTQ read sets named PREFIX-0001...; returns their IDs (PROCESSING)."""

    def one(index: int) -> str:
        return upload_file(
            omics,
            store_id,
            {"SOURCE1": fastq_gz(3, seed=index)},
            "FASTQ",
            name=f"{prefix}-{index:04d}",
            **fields,
        )

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))
