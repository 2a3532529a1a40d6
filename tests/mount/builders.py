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


def noisy_fastq_gz(size: int, seed: int = 0, length: int = 150) -> bytes:
    """A gzip FASTQ of about ``size`` bytes that barely compresses (random bases and qualities),
    made in about a second per 50 MB: a big read set without minutes of ``fastq_gz``."""
    rng = random.Random(seed)
    bases = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)
    qualities = bytes.maketrans(bytes(range(256)), bytes(33 + value % 41 for value in range(256)))
    records = []
    written = 0
    index = 0
    while written < size:
        noise = rng.randbytes(2 * length)
        record = b"@n%d_%d\n%s\n+\n%s\n" % (
            seed, index, noise[:length].translate(bases), noise[length:].translate(qualities)
        )
        records.append(record)
        written += 6 * length // 5  # what one record compresses to, about
        index += 1
    return gzip.compress(b"".join(records), compresslevel=1)


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
