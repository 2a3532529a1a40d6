"""``omicsfs manifest`` and ``omicsfs mount --manifest`` on real mounts of the local service."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.cluster.conftest import mount_stats, non_data_calls, write_manifest
from tests.localservice import RunningService
from tests.mount.builders import fastq_gz
from tests.mount.expected import READ_SET_FILES, read_set_bytes
from tests.mounting import Mounted, omicsfs
from tests.service.helpers import download, upload_file


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def listing(folder: Path) -> list[tuple[str, int]]:
    """Every entry below ``folder`` with its size (symlinks by their target's length)."""
    found = []
    for base, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(base, name)
            found.append((str(path.relative_to(folder)), path.lstat().st_size))
    return sorted(found)


def test_a_manifest_mount_serves_the_same_tree_with_only_data_calls(
    cohort: tuple[RunningService, LoadedSample], sample: SampleFiles, tmp_path: Path
) -> None:
    service, loaded = cohort
    omics = service.client()
    manifest = tmp_path / "cohort.json"
    document = write_manifest(service, manifest, "--sequence-store", "demo-cohort")
    assert document["format"] == "omicsfs-manifest"
    assert document["version"] == 1
    assert len(document["sequenceStores"][0]["readSets"]) == 4
    # The CRAM's and BAM's reference came along (a CRAM decodes only against it).
    assert [ref["id"] for ref in document["referenceStores"][0]["references"]] == [loaded.reference_id]

    normal = Mounted(tmp_path / "normal", service.url)
    try:
        expected_tree = listing(normal.path / "sequence-stores") + listing(normal.path / "reference-stores")
    finally:
        assert normal.stop() == 0

    digests = {name: hashlib.md5(read_set_bytes(omics, loaded, name)).hexdigest() for name in READ_SET_FILES}
    service.reset_stats()
    mounted = Mounted(tmp_path / "mnt", service.url, "--manifest", str(manifest))
    try:
        assert non_data_calls(service) == {}  # mounting called nothing
        tree = listing(mounted.path / "sequence-stores") + listing(mounted.path / "reference-stores")
        # The same names, links and sizes; only the job documents are not in a manifest.
        assert tree == [entry for entry in expected_tree if not entry[0].endswith(".json")]
        store = mounted.path / "sequence-stores" / "demo-cohort"
        for name in READ_SET_FILES:
            digest = run("md5sum", store / name).split()[0]
            assert digest == digests[name], name
        reference = mounted.path / "reference-stores" / "references" / "demo-genome.fasta"
        for bam in ("NA12878-aligned.bam", "NA12878-aligned.cram"):
            mounted_count = run("samtools", "view", "-c", "-T", reference, store / bam, "chr1:10000-20000")
            local_count = run("samtools", "view", "-c", sample.bam, "chr1:10000-20000")
            assert mounted_count == local_count
        assert os.getxattr(store / "NA12878-aligned.bam", "user.omics.sampleId") == b"NA12878"
        assert os.listdir(store / ".jobs" / "import") == []  # jobs are not part of a manifest
        assert non_data_calls(service) == {}
        assert service.requests().get("GetReadSet", 0) > 0
        stats = mount_stats(mounted)
        assert set(stats["api_calls"]) <= {"GetReadSet", "GetReference"}
    finally:
        assert mounted.stop() == 0
    assert non_data_calls(service) == {}  # nor did unmounting


@pytest.fixture
def fading(private_service: RunningService) -> tuple[RunningService, str, dict[str, str], dict[str, bytes]]:
    """A store of three FASTQ read sets, each several parts long."""
    omics = private_service.client()
    store = omics.create_sequence_store(name="fading")
    ids = {
        name: upload_file(omics, store["id"], {"SOURCE1": fastq_gz(6000, seed=seed)}, "FASTQ", name=name)
        for seed, name in enumerate(("kept", "deleted", "archived"))
    }
    private_service.drain()
    expected = {name: download(omics, store["id"], read_set) for name, read_set in ids.items()}
    return private_service, store["id"], ids, expected


def test_read_sets_deleted_or_archived_since_the_manifest_are_refused_on_open(
    fading: tuple[RunningService, str, dict[str, str], dict[str, bytes]], tmp_path: Path
) -> None:
    service, store_id, ids, expected = fading
    omics = service.client()
    manifest = tmp_path / "fading.json"
    write_manifest(service, manifest, "--sequence-store", store_id)
    omics.batch_delete_read_set(sequenceStoreId=store_id, ids=[ids["deleted"]])
    service.admin("POST", f"archive/{store_id}/{ids['archived']}")
    service.drain()
    service.reset_stats()
    mounted = Mounted(tmp_path / "mnt", service.url, "--manifest", str(manifest))
    try:
        folder = mounted.path / "sequence-stores" / "fading"
        # Listed as the manifest has them, sizes included: nothing asked the service.
        files = sorted(name for name in os.listdir(folder) if name.endswith(".gz"))
        assert files == ["archived.fastq.gz", "deleted.fastq.gz", "kept.fastq.gz"]
        assert os.stat(folder / "deleted.fastq.gz").st_size == len(expected["deleted"])
        for _ in range(2):
            with pytest.raises(OSError) as gone:
                (folder / "deleted.fastq.gz").read_bytes()
            assert gone.value.errno == errno.ENOENT
            with pytest.raises(OSError) as cold:
                (folder / "archived.fastq.gz").read_bytes()
            assert cold.value.errno == errno.EACCES
        assert (folder / "kept.fastq.gz").read_bytes() == expected["kept"]
        refusals = [line for line in mounted.lines if "refusing to open" in line]
        assert len(refusals) == 2, refusals  # one line per object, not one per attempt
        deleted_line = next(line for line in refusals if ids["deleted"] in line)
        archived_line = next(line for line in refusals if ids["archived"] in line)
        assert "deleted since the manifest was written" in deleted_line
        assert "start-read-set-activation-job" in archived_line
        # The second attempts were refused without asking again (within --listing-ttl).
        assert service.requests().get("GetReadSet", 0) == 2 + -(-len(expected["kept"]) // 65536)
        assert non_data_calls(service) == {}
        assert mount_stats(mounted)["errors_by_errno"] == {"ENOENT": 2, "EACCES": 2}
    finally:
        assert mounted.stop() == 0


def test_manifest_command_and_flag_failures_are_one_line(
    cohort: tuple[RunningService, LoadedSample], tmp_path: Path
) -> None:
    service, _ = cohort
    done = omicsfs("manifest", "--endpoint-url", service.url, "--sequence-store", "nosuch")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "nosuch" in done.stderr
    assert "Traceback" not in done.stderr
    done = omicsfs("manifest", "--endpoint-url", service.url, "--sample-id", "nobody")
    assert done.returncode == 1
    assert "nothing matches" in done.stderr

    good = tmp_path / "good.json"
    document = write_manifest(service, good, "--sequence-store", "demo-cohort")
    cases: dict[str, tuple[Any, str]] = {
        "future.json": ({**document, "version": 2}, "version 2 is not supported"),
        "missing.json": (
            {**document, "sequenceStores": [{**document["sequenceStores"][0], "readSets": [
                {k: v for k, v in document["sequenceStores"][0]["readSets"][0].items() if k != "files"}
            ]}]},
            "sequenceStores[0].readSets[0]: 'files' is a required property",
        ),
        "parts.json": (_with_total_parts(document, 99), "totalParts: 99 parts cannot hold"),
        "text.json": ("not json", "is not JSON"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        mountpoint = tmp_path / f"mnt-{name}"
        mountpoint.mkdir()
        done = omicsfs("mount", str(mountpoint), "--endpoint-url", service.url, "--manifest", str(path))
        assert done.returncode == 1, name
        assert done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr, done.stderr
        assert str(path) in done.stderr, done.stderr
        assert os.listdir(mountpoint) == []  # nothing was mounted
    for flag in ("--read-write", "--sequence-store=demo-cohort"):
        done = omicsfs("mount", str(tmp_path / "mnt-good.json"), "--endpoint-url", service.url,
                       "--manifest", str(good), flag)  # fmt: skip
        assert done.returncode == 1
        assert "--manifest" in done.stderr
        assert done.stderr.count("\n") == 1


def _with_total_parts(document: dict[str, Any], parts: int) -> dict[str, Any]:
    changed = json.loads(json.dumps(document))
    files = changed["sequenceStores"][0]["readSets"][0]["files"]
    next(iter(files.values()))["totalParts"] = parts
    return changed


def test_a_manifest_mount_reads_what_a_normal_mount_cached_in_a_shared_cache_dir(
    cohort: tuple[RunningService, LoadedSample], tmp_path: Path
) -> None:
    """One cache key for both: the manifest keeps each object's version exactly."""
    service, loaded = cohort
    omics = service.client()
    expected = read_set_bytes(omics, loaded, "NA12878-aligned.bam")
    manifest = tmp_path / "cohort.json"
    write_manifest(service, manifest, "--sequence-store", "demo-cohort")
    cache = ("--cache-dir", str(tmp_path / "cache"), "--cache-dir-shared")
    normal = Mounted(tmp_path / "normal", service.url, *cache)
    try:
        path = normal.path / "sequence-stores" / "demo-cohort" / "NA12878-aligned.bam"
        assert path.read_bytes() == expected
    finally:
        assert normal.stop() == 0
    service.reset_stats()
    mounted = Mounted(tmp_path / "mnt", service.url, "--manifest", str(manifest), *cache)
    try:
        path = mounted.path / "sequence-stores" / "demo-cohort" / "NA12878-aligned.bam"
        assert path.read_bytes() == expected
        assert service.requests() == {}  # every block from the cache the normal mount filled
    finally:
        assert mounted.stop() == 0
