"""File naming rules (pure logic)."""

from __future__ import annotations

from omicsfs.fs.names import assign_folder_names, assign_names, read_set_suffixes, safe_component


def test_safe_component() -> None:
    assert safe_component("a/b\0c", "ID") == "a_b_c"
    for bad in ("", ".", ".."):
        assert safe_component(bad, "ID") == "ID"
    assert safe_component("NA12878 run 1", "ID") == "NA12878 run 1"


def test_suffixes_per_file_type() -> None:
    assert read_set_suffixes("BAM", False, True) == [(".bam", "source1"), (".bam.bai", "index")]
    assert read_set_suffixes("BAM", False, False) == [(".bam", "source1")]
    assert read_set_suffixes("CRAM", False, True) == [(".cram", "source1"), (".cram.crai", "index")]
    assert read_set_suffixes("UBAM", False, True) == [(".bam", "source1")]
    assert read_set_suffixes("FASTQ", False, False) == [(".fastq.gz", "source1")]
    assert read_set_suffixes("FASTQ", True, False) == [("_1.fastq.gz", "source1"), ("_2.fastq.gz", "source2")]


def _names(objects: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    named = assign_names(
        objects, lambda o: o[0], lambda o: o[1], lambda o: read_set_suffixes(o[2], False, True)
    )
    return {name: (obj[0], file) for name, (obj, file) in named.items()}


def test_collisions_give_every_member_its_id() -> None:
    names = _names([("1", "x", "BAM"), ("2", "x", "UBAM"), ("3", "y", "BAM"), ("4", "x", "FASTQ")])
    assert names == {
        "x.1.bam": ("1", "source1"), "x.1.bam.bai": ("1", "index"),
        "x.2.bam": ("2", "source1"),
        "y.bam": ("3", "source1"), "y.bam.bai": ("3", "index"),
        "x.fastq.gz": ("4", "source1"),
    }  # fmt: skip


def test_a_name_clashing_with_a_paired_mate_is_disambiguated() -> None:
    named = assign_names(
        [("1", "s", True), ("2", "s_1", False)],
        lambda o: o[0], lambda o: o[1], lambda o: read_set_suffixes("FASTQ", o[2], False),
    )  # fmt: skip
    assert sorted(named) == ["s.1_1.fastq.gz", "s.1_2.fastq.gz", "s_1.2.fastq.gz"]


def test_reserved_folder_names_are_never_taken() -> None:
    folders = assign_folder_names([("7", "by-id"), ("8", "cohort")], lambda o: o[0], lambda o: o[1])
    assert sorted(folders) == ["by-id.7", "cohort"]
