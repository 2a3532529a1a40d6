"""reference-stores/by-md5/ on the fake backend: names, sizes, bytes, one scan, persistence,
refusals (fs/refview.py, fs/contigs.py)."""

from __future__ import annotations

import errno
import hashlib
import logging
import random
import stat
from pathlib import Path

import pysam
import pytest
import trio
import trio.testing

from omicsfs.backend.errors import ServiceFailure
from omicsfs.backend.models import StoreKind
from omicsfs.fs.errors import FsError
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.metastore import MetadataStore
from omicsfs.fs.stats import Stats
from tests.fakes.backend import FakeBackend
from tests.fakes.harness import PART, UNIT_CONFIG, listing, make_fs, read_file, resolve

RNG = random.Random(11)
CHR1 = "".join(RNG.choice("ACGTacgtN") for _ in range(150_000))  # soft-masked, spans parts
CHR2 = "".join(RNG.choice("ACGT") for _ in range(5_000))


def m5(sequence: str) -> str:
    return hashlib.md5(sequence.upper().encode()).hexdigest()


def indexed(tmp_path: Path, text: str) -> tuple[bytes, bytes]:
    """The FASTA and the .fai htslib's faidx makes of it (as the service does at import)."""
    path = tmp_path / f"ref{RNG.random()}.fa"
    path.write_text(text)
    pysam.faidx(str(path))
    return path.read_bytes(), Path(f"{path}.fai").read_bytes()


def fasta_with_fai(tmp_path: Path, sequences: dict[str, str], width: int = 60) -> tuple[bytes, bytes]:
    text = ""
    for name, sequence in sequences.items():
        text += f">{name}\n" + "".join(sequence[i : i + width] + "\n" for i in range(0, len(sequence), width))
    return indexed(tmp_path, text)


def add_reference(backend: FakeBackend, tmp_path: Path, sequences: dict[str, str], name: str = "genome",
                  store: str | None = None) -> str:  # fmt: skip
    if store is None:
        store = backend.add_store(StoreKind.REFERENCE, "references").id
    fasta, fai = fasta_with_fai(tmp_path, sequences)
    backend.add_reference(store, name, fasta, fai)
    return store


def path_of(md5: str) -> str:
    return f"reference-stores/by-md5/{md5[:2]}/{md5[2:4]}/{md5[4:]}"


@pytest.mark.trio
async def test_every_contig_is_a_file_named_by_its_md5_holding_its_upper_case_bases(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    backend = FakeBackend()
    add_reference(backend, tmp_path, {"chr1": CHR1, "chr2": CHR2})
    (stored,) = next(iter(backend.objects.values())).values()
    reference = stored.summary
    fs = make_fs(backend, nursery)
    assert "by-md5" in await listing(fs, "reference-stores")
    assert backend.calls["GetReference"] == 0  # listing reference-stores costs no scan
    assert sorted(await listing(fs, "reference-stores/by-md5")) == sorted({m5(CHR1)[:2], m5(CHR2)[:2]})
    for sequence in (CHR1, CHR2):
        md5 = m5(sequence)
        assert await listing(fs, f"reference-stores/by-md5/{md5[:2]}/{md5[2:4]}") == [md5[4:]]
        attr = await fs.getattr(await resolve(fs, path_of(md5)))
        assert (attr.size, attr.mode) == (len(sequence), stat.S_IFREG | 0o444)
        assert attr.mtime == reference.creation_time
        assert attr.attr_timeout == UNIT_CONFIG.kernel.immutable_timeout
        data = await read_file(fs, path_of(md5), chunk=10_000)  # reads that straddle FASTA lines
        assert data == sequence.upper().encode()
        assert hashlib.md5(data).hexdigest() == md5
    xattrs = await fs.xattrs(await resolve(fs, path_of(m5(CHR2))))
    assert xattrs["user.omics.contig"] == "chr2"
    assert xattrs["user.omics.referenceName"] == "genome"


@pytest.mark.trio
async def test_random_reads_return_exactly_the_bases_asked_for(nursery: trio.Nursery, tmp_path: Path) -> None:
    backend = FakeBackend()
    add_reference(backend, tmp_path, {"chr1": CHR1})
    fs = make_fs(backend, nursery)
    handle, keep_cache = await fs.open(await resolve(fs, path_of(m5(CHR1))), 0)
    assert keep_cache  # immutable: the page cache may keep it
    rng = random.Random(5)
    for _ in range(50):
        offset, size = rng.randrange(len(CHR1) + 10), rng.randrange(1, 70_000)
        assert await fs.read(handle, offset, size) == CHR1[offset : offset + size].upper().encode()
    fs.release(handle)


@pytest.mark.trio
async def test_concurrent_first_lookups_make_one_scan_and_read_the_fasta_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    backend = FakeBackend()
    add_reference(backend, tmp_path, {"chr1": CHR1, "chr2": CHR2})
    fs = make_fs(backend, nursery)
    found: list[int] = []

    async def look(md5: str) -> None:
        found.append(await resolve(fs, path_of(md5)))

    async with trio.open_nursery() as lookups:
        for _ in range(10):
            for sequence in (CHR1, CHR2):
                lookups.start_soon(look, m5(sequence))
    assert len(found) == 20
    assert fs.contigs.scans == 1
    fasta_parts = -(-len(fasta_with_fai(tmp_path, {"chr1": CHR1, "chr2": CHR2})[0]) // PART)
    assert backend.calls["GetReference"] == fasta_parts + 1  # every FASTA part once, and the .fai
    assert backend.calls["GetReferenceMetadata"] == 1


@pytest.mark.trio
async def test_an_interrupted_first_lookup_does_not_lose_the_scan(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    backend = FakeBackend()
    add_reference(backend, tmp_path, {"chr1": CHR1})
    fs = make_fs(backend, nursery)
    gate = backend.hold_bodies()
    with trio.move_on_after(1):  # a FUSE interrupt: the first asker gives up mid-scan
        await resolve(fs, path_of(m5(CHR1)))
    gate.release()
    await resolve(fs, path_of(m5(CHR1)))
    assert fs.contigs.scans == 1


@pytest.mark.trio
async def test_md5s_are_persisted_under_the_cache_dir(nursery: trio.Nursery, tmp_path: Path) -> None:
    backend = FakeBackend()
    add_reference(backend, tmp_path, {"chr1": CHR1, "chr2": CHR2})
    folder = tmp_path / "cache"
    first = FileSystem(UNIT_CONFIG, backend, Stats(backend=backend.stats), metastore=MetadataStore(folder))
    first.tasks.attach(nursery)
    await resolve(first, path_of(m5(CHR2)))
    assert first.contigs.scans == 1
    first.metastore.close()
    calls = backend.calls["GetReference"]
    second = FileSystem(UNIT_CONFIG, backend, Stats(backend=backend.stats), metastore=MetadataStore(folder))
    second.tasks.attach(nursery)
    assert sorted(await listing(second, "reference-stores/by-md5")) == sorted({m5(CHR1)[:2], m5(CHR2)[:2]})
    assert second.contigs.scans == 0
    assert backend.calls["GetReference"] == calls  # not even the .fai: the row holds the layout
    assert await read_file(second, path_of(m5(CHR2))) == CHR2.encode()


@pytest.mark.trio
async def test_a_contig_whose_lines_do_not_fit_its_fai_is_listed_and_refused_with_eio(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeBackend()
    store = backend.add_store(StoreKind.REFERENCE, "references").id
    body = "ACGTACGTAC\nACG\tTACGTA\nACGTACGTAC\nACG\n"  # htslib's faidx indexes it; the tab takes a column
    backend.add_reference(store, "tabbed", *indexed(tmp_path, f">bad\n{body}>good\nACGTAC\n"))
    fs = make_fs(backend, nursery)
    bad = "".join(c for c in body if c not in "\n\t")
    with caplog.at_level(logging.WARNING):
        ino = await resolve(fs, path_of(m5(bad)))
        assert (await fs.getattr(ino)).size == len(bad)
        for _ in range(2):
            with pytest.raises(FsError) as refused:
                await fs.open(ino, 0)
            assert refused.value.errno == errno.EIO
    scan_lines = [r.message for r in caplog.records if "refuses reads" in r.message]
    assert len(scan_lines) == 1  # found once, by the scan; each refused open is one line (fuse_ops)
    assert "contig bad of reference" in scan_lines[0]
    assert "contig bad of reference" in str(refused.value)
    assert "FASTA lines do not all hold 10 bases" in str(refused.value)
    assert await read_file(fs, path_of(m5("ACGTAC"))) == b"ACGTAC"  # its neighbour is served


@pytest.mark.trio
async def test_a_reference_that_is_not_plain_fasta_is_left_out_with_one_log_line(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeBackend()
    store = backend.add_store(StoreKind.REFERENCE, "references").id
    backend.add_reference(store, "gzipped", b"\x1f\x8b\x08\x00" + bytes(100), b"chr1\t10\t6\t60\t61\n")
    add_reference(backend, tmp_path, {"chr2": CHR2}, store=store)
    fs = make_fs(backend, nursery)
    with caplog.at_level(logging.WARNING):
        assert await listing(fs, "reference-stores/by-md5") == [m5(CHR2)[:2]]
        await listing(fs, "reference-stores/by-md5")
    lines = [r.message for r in caplog.records if "left out of by-md5" in r.message]
    assert len(lines) == 1
    assert "gzipped" in lines[0]
    assert "not plain-text FASTA" in lines[0]


@pytest.mark.trio
async def test_a_failed_scan_is_retried_after_the_listing_ttl(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    add_reference(backend, tmp_path, {"chr2": CHR2})
    fs = make_fs(backend, nursery)
    backend.fail("GetReference", lambda: ServiceFailure("GetReference", "boom", "InternalServerException"), 3)
    with pytest.raises(FsError) as missing:
        await resolve(fs, path_of(m5(CHR2)))
    assert missing.value.errno == errno.ENOENT
    await resolve(fs, "reference-stores/by-md5")  # within the TTL: no new scan
    assert fs.contigs.scans == 1
    autojump_clock.jump(UNIT_CONFIG.listing_ttl + 1)
    assert await read_file(fs, path_of(m5(CHR2))) == CHR2.encode()
    assert fs.contigs.scans == 2


@pytest.mark.trio
async def test_a_contig_two_references_share_is_one_file_and_references_come_and_go_with_the_ttl(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    store = add_reference(backend, tmp_path, {"chr2": CHR2}, name="a")
    add_reference(backend, tmp_path, {"chrM": CHR2, "chr1": CHR1}, name="b", store=store)
    fs = make_fs(backend, nursery)
    assert await listing(fs, f"reference-stores/by-md5/{m5(CHR2)[:2]}/{m5(CHR2)[2:4]}") == [m5(CHR2)[4:]]
    late = "".join(RNG.choice("ACGT") for _ in range(777))
    add_reference(backend, tmp_path, {"late": late}, name="c", store=store)
    with pytest.raises(FsError):
        await resolve(fs, path_of(m5(late)))
    autojump_clock.jump(UNIT_CONFIG.listing_ttl + 1)
    assert await read_file(fs, path_of(m5(late))) == late.encode()
    gone = next(oid for oid, obj in backend.objects[store].items() if obj.summary.name == "c")
    del backend.objects[store][gone]
    autojump_clock.jump(UNIT_CONFIG.listing_ttl + 1)
    with pytest.raises(FsError) as deleted:
        await resolve(fs, path_of(m5(late)))
    assert deleted.value.errno == errno.ENOENT
    assert await read_file(fs, path_of(m5(CHR2))) == CHR2.encode()


@pytest.mark.trio
async def test_a_reference_store_named_by_md5_gets_its_id(nursery: trio.Nursery, tmp_path: Path) -> None:
    backend = FakeBackend()
    store = backend.add_store(StoreKind.REFERENCE, "by-md5").id
    fs = make_fs(backend, nursery)
    assert await listing(fs, "reference-stores") == ["by-id", "by-md5", f"by-md5.{store}"]
