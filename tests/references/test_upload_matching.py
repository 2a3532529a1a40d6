"""``cp`` of a BAM names the reference its @SQ lines identify the way htslib does: subsets match,
M5 tags decide over names, ambiguity fails the first write (SEMANTICS.md, "Which reference an
upload names")."""

from __future__ import annotations

import errno
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.mounting import Mounted
from tests.references.conftest import Loaded
from tests.references.data import Made, renamed_bam, subset_bam
from tests.write.conftest import open_uploads, read_sets_named, wait_active


@pytest.fixture(scope="module")
def rw(
    tmp_path_factory: pytest.TempPathFactory, refs_service: RunningService, refs_loaded: Loaded
) -> Iterator[Mounted]:
    mounted = Mounted(
        tmp_path_factory.mktemp("refs-rw"), refs_service.url, "--read-write", "--part-size", "256K"
    )
    yield mounted
    assert mounted.stop() == 0


def _copy(rw: Mounted, name: str, source: Path) -> None:
    (rw.path / "sequence-stores" / "demo-cohort" / name).write_bytes(source.read_bytes())


def _refused(rw: Mounted, name: str, source: Path) -> OSError:
    with pytest.raises(OSError) as raised:
        _copy(rw, name, source)
    assert raised.value.errno == errno.EINVAL
    return raised.value


def _nothing_left(omics: Any, loaded: Loaded, name: str) -> None:
    store = loaded.sample.sequence_store_id
    assert open_uploads(omics, store) == []
    assert read_sets_named(omics, store, name) == []


def test_a_header_listing_a_subset_of_a_references_contigs_names_that_reference(
    rw: Mounted, made: Made, omics: Any, refs_loaded: Loaded, tmp_path: Path
) -> None:
    bam = subset_bam(made.masked_bam, tmp_path / "subset.bam", keep=["chrA", "chrB"])  # chrC_random dropped
    _copy(rw, "subset.bam", bam)
    read_set = wait_active(omics, refs_loaded.sample.sequence_store_id, "subset")
    assert read_set["status"] == "ACTIVE"
    assert read_set["referenceArn"] == refs_loaded.references["masked"]


def test_of_two_matches_the_reference_whose_every_contig_the_header_lists_wins(
    rw: Mounted, sample: SampleFiles, omics: Any, refs_loaded: Loaded
) -> None:
    """The sample's chr1 and chr2 are in demo-genome and in superset (which adds chr3)."""
    _copy(rw, "whole.bam", sample.bam)
    read_set = wait_active(omics, refs_loaded.sample.sequence_store_id, "whole")
    assert read_set["referenceArn"] == refs_loaded.references["demo-genome"]


def test_m5_tags_match_contigs_under_other_names(
    rw: Mounted, made: Made, omics: Any, refs_loaded: Loaded, tmp_path: Path
) -> None:
    names = {"chrA": "A", "chrB": "B", "chrC_random": "C"}
    tagged = renamed_bam(made.masked_bam, tmp_path / "renamed.bam", names, made.masked_sequences, tmp_path)
    _copy(rw, "renamed.bam", tagged)
    read_set = wait_active(omics, refs_loaded.sample.sequence_store_id, "renamed")
    assert read_set["status"] == "ACTIVE"  # the service agrees: the same rule
    assert read_set["referenceArn"] == refs_loaded.references["masked"]
    untagged = renamed_bam(made.masked_bam, tmp_path / "untagged.bam", names, None, tmp_path)
    _refused(rw, "renamed-untagged.bam", untagged)  # without the M5 tags, A is no contig of any
    rw.wait_for_log("no reference matches the header's 3 @SQ (A:40000, B:25000, C:6000)")
    _nothing_left(omics, refs_loaded, "renamed-untagged")


def test_a_name_match_with_another_m5_is_not_a_match(
    rw: Mounted, made: Made, omics: Any, refs_loaded: Loaded, tmp_path: Path
) -> None:
    rng = random.Random(5)
    other = {name: "".join(rng.choices("ACGT", k=len(seq))) for name, seq in made.masked_sequences.items()}
    wrong = renamed_bam(made.masked_bam, tmp_path / "wrong-m5.bam", {}, other, tmp_path)
    _refused(rw, "wrong-m5.bam", wrong)
    rw.wait_for_log(
        "no reference matches the header's 3 @SQ (chrA:40000, chrB:25000, chrC_random:6000, 3 with M5)"
    )
    _nothing_left(omics, refs_loaded, "wrong-m5")


def test_an_ambiguous_header_fails_the_first_write_naming_the_candidates_unless_one_is_named(
    rw: Mounted,
    sample: SampleFiles,
    omics: Any,
    refs_loaded: Loaded,
    refs_service: RunningService,
    tmp_path: Path,
) -> None:
    chr1_only = subset_bam(sample.bam, tmp_path / "chr1.bam", keep=["chr1"])
    _refused(rw, "chr1-only.bam", chr1_only)
    rw.wait_for_log("2 references match the header's 1 @SQ (chr1:50000)")  # the daemon's stderr lags
    lines = [line for line in rw.lines if "2 references match the header's 1 @SQ (chr1:50000)" in line]
    assert lines  # the upload's failure line (and the write's EINVAL) say why
    assert refs_loaded.references["demo-genome"] in lines[0]
    assert refs_loaded.references["superset"] in lines[0]
    assert "--reference-arn" in lines[0]
    _nothing_left(omics, refs_loaded, "chr1-only")
    chosen = refs_loaded.references["superset"]
    named = Mounted(tmp_path / "named", refs_service.url, "--read-write", "--reference-arn", chosen)
    try:
        _copy(named, "chr1-only.bam", chr1_only)
        assert wait_active(omics, refs_loaded.sample.sequence_store_id, "chr1-only")["referenceArn"] == chosen
    finally:
        assert named.stop() == 0
