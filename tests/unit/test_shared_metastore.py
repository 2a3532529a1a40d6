"""Metadata in a shared cache dir: one immutable, private JSON file per object version (NFS-safe)."""

from __future__ import annotations

from pathlib import Path

from omicsfs.backend.models import FileLayout, ObjectFiles, ObjectKind
from omicsfs.fs.fasta import ReferenceDigests
from omicsfs.fs.metastore import SharedMetadataStore

FILES = ObjectFiles("1700000000.000:abc:", "ACTIVE", {"source1": FileLayout(1000, 100, 10, "s3://b/k")})


def test_layouts_and_contigs_round_trip_as_one_private_file_per_version(tmp_path: Path) -> None:
    first, second = SharedMetadataStore(tmp_path), SharedMetadataStore(tmp_path)  # two mounts
    first.put(ObjectKind.READ_SET, "111", FILES)
    assert second.get(ObjectKind.READ_SET, "111", FILES.validator) == FILES
    assert second.get(ObjectKind.READ_SET, "111", "another version") is None
    assert second.get(ObjectKind.READ_SET, "222", FILES.validator) is None
    digests = ReferenceDigests((), refused="uneven line lengths")
    second.put_contigs("333", "v1", digests)
    assert first.get_contigs("333", "v1") == digests
    assert first.get_contigs("333", "v2") is None
    files = sorted(path for path in (tmp_path / "metadata").rglob("*") if path.is_file())
    assert len(files) == 2
    assert all(oct(path.stat().st_mode & 0o777) == "0o600" for path in files)
    assert all(oct(path.parent.stat().st_mode & 0o777) == "0o700" for path in files)
    assert not list((tmp_path / "metadata").rglob("*.tmp"))
    assert not (tmp_path / "metadata.sqlite3").exists()


def test_a_damaged_file_is_a_miss_and_is_written_again(tmp_path: Path) -> None:
    store = SharedMetadataStore(tmp_path)
    store.put(ObjectKind.REFERENCE, "444", FILES)
    path = store.path(str(ObjectKind.REFERENCE), "444", FILES.validator)
    before = path.stat().st_mtime_ns
    store.put(ObjectKind.REFERENCE, "444", FILES)  # immutable: an existing file is left alone
    assert path.stat().st_mtime_ns == before
    path.write_text("{not json")  # damage on disk (writes themselves are whole or absent)
    assert store.get(ObjectKind.REFERENCE, "444", FILES.validator) is None
    store.put(ObjectKind.REFERENCE, "444", FILES)  # the refetched metadata replaces it
    assert store.get(ObjectKind.REFERENCE, "444", FILES.validator) == FILES
