"""File naming rules (pure logic)."""

from __future__ import annotations

import hashlib

from omicsfs.fs.names import (
    NAME_MAX,
    assign_folder_names,
    assign_names,
    cut_to_bytes,
    encoded_length,
    group_folder_name,
    group_folder_names,
    read_set_suffixes,
    safe_component,
)


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


# -- NAME_MAX: every component within 255 bytes -------------------------------------------------

EMOJI = "\U0001f9ec"  # DNA double helix, 4 bytes in UTF-8


def test_cut_to_bytes_never_splits_a_character() -> None:
    assert cut_to_bytes("é" * 200, 255) == "é" * 127  # 254 bytes: a 128th would need 256
    assert cut_to_bytes(EMOJI * 3, 7) == EMOJI
    assert cut_to_bytes("abc", 255) == "abc"
    for limit in range(0, 20):
        cut = cut_to_bytes("a" + EMOJI * 4 + "é", limit)
        assert encoded_length(cut) <= limit
        assert cut.encode().decode() == cut


def test_a_name_of_127_emoji_is_cut_on_a_character_and_keeps_its_id() -> None:
    long_name = EMOJI * 127  # 508 bytes: the service allows 127 characters
    named = assign_names(
        [("1234567890", long_name, "CRAM"), ("2234567890", "short", "CRAM")],
        lambda o: o[0], lambda o: o[1], lambda o: read_set_suffixes(o[2], False, True),
    )  # fmt: skip
    long_files = sorted(name for name, (obj, _) in named.items() if obj[0] == "1234567890")
    assert len(long_files) == 2
    for file_name in long_files:
        assert encoded_length(file_name) <= NAME_MAX
        assert file_name.startswith(EMOJI * 58)
    stem = long_files[0].removesuffix(".cram")
    assert long_files == [f"{stem}.cram", f"{stem}.cram.crai"]  # one stem for all of its files
    assert stem.endswith(".1234567890")
    assert encoded_length(f"{stem}.cram.crai") <= NAME_MAX < encoded_length(f"{stem}{EMOJI}.cram.crai")
    assert "short.cram" in named  # names that fit are left alone


def test_shortened_names_with_the_same_start_stay_distinct() -> None:
    name = "x" * 127
    suffix_room = len("_1.fastq.gz")
    named = assign_names(
        [("1", EMOJI * 100 + name, True), ("2", EMOJI * 100 + name[:-1] + "y", True)],
        lambda o: o[0], lambda o: o[1], lambda o: read_set_suffixes("FASTQ", o[2], False),
    )  # fmt: skip
    assert len(named) == 4
    assert all(encoded_length(file_name) <= NAME_MAX for file_name in named)
    stems = {file_name.removesuffix("_1.fastq.gz").removesuffix("_2.fastq.gz") for file_name in named}
    assert sorted(stem[-2:] for stem in stems) == [".1", ".2"]
    assert all(encoded_length(stem) + suffix_room <= NAME_MAX for stem in stems)


def test_names_exactly_at_the_limit_are_kept() -> None:
    name = "n" * (NAME_MAX - len(".bam.bai"))
    named = _names([("1", name, "BAM")])
    assert sorted(named) == [f"{name}.bam", f"{name}.bam.bai"]
    over = _names([("1", name + "n", "BAM")])
    assert sorted(over) == [f"{'n' * (NAME_MAX - 10)}.1.bam", f"{'n' * (NAME_MAX - 10)}.1.bam.bai"]


def test_colliding_long_names_still_fit() -> None:
    name = EMOJI * 127
    named = _names([("1", name, "BAM"), ("2", name, "UBAM")])
    assert len(named) == 3
    assert all(encoded_length(file_name) <= NAME_MAX for file_name in named)


def test_store_folders_fit_name_max() -> None:
    folders = assign_folder_names([("7", EMOJI * 127), ("8", "cohort")], lambda o: o[0], lambda o: o[1])
    long_folder = next(name for name in folders if name != "cohort")
    assert encoded_length(long_folder) <= NAME_MAX
    assert long_folder.endswith(".7")


def test_sample_folders_fit_name_max_by_a_hash_of_the_whole_value() -> None:
    first, second = EMOJI * 127, EMOJI * 126 + "x"
    names = group_folder_names([first, second, "NA12878"])
    assert names["NA12878"] == "NA12878"
    assert sorted(names.values()) == sorted([first, second, "NA12878"])
    for folder, value in names.items():
        assert encoded_length(folder) <= NAME_MAX
        if value != "NA12878":
            digest = hashlib.sha256(value.encode()).hexdigest()[:12]
            assert folder.endswith(f".{digest}")
    # A literal value spelling another's shortened name: the shortened one takes the full hash.
    crafted = group_folder_name(first)
    names = group_folder_names([first, crafted])
    assert names[crafted] == crafted
    shortened = next(folder for folder, value in names.items() if value == first)
    assert shortened.endswith(hashlib.sha256(first.encode()).hexdigest())
