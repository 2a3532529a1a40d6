"""CRAMs decode with no -T and no network once ``omicsfs env`` points htslib at by-md5/, and the
by-md5 files are what htslib expects (README.md, "CRAM without -T"; SEMANTICS.md, "by-md5").

Every decode through the mount runs offline (``run_offline``: no network, and the local FASTAs
the CRAMs' UR tags name hidden), so a fallback to the internet or to a local copy fails the test.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pysam
import pytest

from omicsfs.sample.data import SampleFiles
from tests.localservice import RunningService
from tests.mounting import Mounted
from tests.references.conftest import Loaded, Offline, clean_env, omicsfs_env, samtools, wait_for_lines
from tests.references.data import HTSLIB_TEST, Cram, Made, m5

#: The CRAMs of the test data: the sample's and two made here, read from the mount; htslib-test's.
MOUNTED_CRAMS = ("NA12878-aligned.cram", "masked.cram", "crlf.cram")
HTSLIB_CRAMS = sorted(path.name for path in HTSLIB_TEST.glob("*.cram"))


def _crams(mnt: Mounted, sample: SampleFiles, made: Made) -> dict[str, Cram]:
    store = mnt.path / "sequence-stores" / "demo-cohort"
    crams = {
        "NA12878-aligned.cram": Cram(store / "NA12878-aligned.cram", sample.reference),
        "masked.cram": Cram(store / "masked.cram", made.masked),
        "crlf.cram": Cram(store / "crlf.cram", made.crlf),
    }
    for name in HTSLIB_CRAMS:
        copy = re.sub(r"[^A-Za-z0-9_.]", "_", name)
        crams[name] = next(cram for cram in made.htslib_crams if cram.path.name == copy)
    return crams


def _regions(cram: Path) -> list[str]:
    regions = []
    for line in samtools("view", "-H", cram).splitlines():
        if line.startswith("@SQ"):
            fields = dict(item.split(":", 1) for item in line.split("\t")[1:])
            length = int(fields["LN"])
            regions += [f"{fields['SN']}:1-{min(length, 1000)}", f"{fields['SN']}:{length // 2}-{length}"]
    return regions[:6]


def _by_md5(root: Path, md5: str) -> Path:
    return root / "reference-stores" / "by-md5" / md5[:2] / md5[2:4] / md5[4:]


def _htslib_version() -> tuple[int, int]:
    match = re.search(r"htslib-(\d+)\.(\d+)", samtools("--version-only"))
    assert match
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("name", [*MOUNTED_CRAMS, *HTSLIB_CRAMS])
def test_every_cram_decodes_offline_without_t_exactly_as_with_the_local_fasta(
    name: str, mnt: Mounted, sample: SampleFiles, made: Made, run_offline: Offline, tmp_path: Path
) -> None:
    cram = _crams(mnt, sample, made)[name]
    expected = samtools("view", "-T", cram.reference, cram.path)
    assert expected.count("\n") > 0
    env = clean_env(tmp_path)
    recipe = f'eval "$({sys.executable} -m omicsfs env {mnt.path})" && exec samtools view "$1"'  # README's
    decoded = run_offline(["sh", "-c", recipe, "sh", str(cram.path)], env)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stderr == ""  # no warning: htslib found every contig on the mount
    assert decoded.stdout == expected
    for region in _regions(cram.path):
        count = run_offline(
            ["samtools", "view", "-c", str(cram.path), region], {**env, **omicsfs_env(mnt.path)}
        )
        assert count.stderr == ""
        assert count.stdout == samtools("view", "-c", "-T", cram.reference, cram.path, region), region
    assert not (tmp_path / ".cache").exists()  # htslib made no cache of its own


def test_without_the_env_lines_htslib_goes_to_the_internet_and_fails_offline(
    mnt: Mounted, run_offline: Offline, tmp_path: Path
) -> None:
    """The premise of the test above, issue 17's symptom: without REF_PATH, htslib before 1.22
    asks the EBI's server; offline, with the local FASTAs out of reach, nothing decodes."""
    cram = mnt.path / "sequence-stores" / "demo-cohort" / "masked.cram"
    decoded = run_offline(["samtools", "view", str(cram)], clean_env(tmp_path))
    assert decoded.returncode != 0
    assert decoded.stdout == ""
    if _htslib_version() < (1, 22):
        assert 'Failed to open reference "https://www.ebi.ac.uk/ena/cram/md5/' in decoded.stderr


def test_pysam_decodes_with_ref_path_from_the_mount(
    mnt: Mounted, made: Made, run_offline: Offline, tmp_path: Path
) -> None:
    cram = mnt.path / "sequence-stores" / "demo-cohort" / "masked.cram"
    with pysam.AlignmentFile(str(cram), reference_filename=str(made.masked)) as local:
        expected = [record.to_string() for record in local.fetch("chrB", 1000, 9000)]
    assert expected
    script = (
        "import sys, pysam\n"
        "with pysam.AlignmentFile(sys.argv[1]) as f:\n"
        "    print('\\n'.join(r.to_string() for r in f.fetch('chrB', 1000, 9000)))\n"
    )
    decoded = run_offline(
        [sys.executable, "-c", script, str(cram)], {**clean_env(tmp_path), **omicsfs_env(mnt.path)}
    )
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.splitlines() == expected


def test_samtools_t_on_the_mounted_fasta_still_works(
    mnt: Mounted, sample: SampleFiles, run_offline: Offline, tmp_path: Path
) -> None:
    cram = mnt.path / "sequence-stores" / "demo-cohort" / "NA12878-aligned.cram"
    fasta = mnt.path / "reference-stores" / "references" / "demo-genome.fasta"
    decoded = run_offline(
        ["samtools", "view", "-T", str(fasta), str(cram), "chr2:1000-9000"], clean_env(tmp_path)
    )
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout == samtools("view", "-T", sample.reference, cram, "chr2:1000-9000")


def _local_contigs(fastas: list[Path]) -> dict[str, int]:
    """M5 -> length of every contig of the given local FASTAs, computed without the mount."""
    found = {}
    for path in fastas:
        with pysam.FastaFile(str(path)) as fasta:
            for name in fasta.references:
                sequence = fasta.fetch(name)
                found[m5(sequence)] = len(sequence)
    return found


def test_by_md5_holds_every_contig_and_md5sum_of_each_file_is_its_name(
    mnt: Mounted, sample: SampleFiles, made: Made
) -> None:
    root = mnt.path / "reference-stores" / "by-md5"
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            assert re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}", str(path.relative_to(root)))
            files["".join(path.relative_to(root).parts)] = path
    expected = _local_contigs([sample.reference, HTSLIB_TEST / "ce.fa", HTSLIB_TEST / "auxf.fa",
                               HTSLIB_TEST / "xx.fa", made.masked, made.crlf, made.superset])  # fmt: skip
    expected[m5(made.tabbed_bad_sequence)] = len(made.tabbed_bad_sequence)
    expected[m5("GATTACA" * 20)] = 140  # the tabbed reference's other contig
    assert set(files) == set(expected)
    served = [md5 for md5 in files if md5 != m5(made.tabbed_bad_sequence)]  # that one: the next test
    for md5, path in files.items():
        assert path.stat().st_size == expected[md5]
    paths = [str(files[md5]) for md5 in served]
    digests = subprocess.run(["md5sum", *paths], check=True, capture_output=True, text=True).stdout
    assert [line.split()[0] for line in digests.splitlines()] == served
    masked = files[m5(made.masked_sequences["chrA"])].read_bytes()
    assert masked == made.masked_sequences["chrA"].upper().encode()  # soft-masking is gone
    assert b"\n" not in masked


def test_a_contig_whose_lines_do_not_fit_its_fai_is_refused_with_eio_and_one_log_line(
    mnt: Mounted, made: Made
) -> None:
    path = _by_md5(mnt.path, m5(made.tabbed_bad_sequence))
    assert path.stat().st_size == len(made.tabbed_bad_sequence)
    refusal = ("-> EIO", "contig bad of reference")
    before = [line for line in mnt.lines if all(text in line for text in refusal)]
    result = subprocess.run(["md5sum", str(path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Input/output error" in result.stderr
    refused = wait_for_lines(mnt, *refusal, count=len(before) + 1)
    assert len(refused) == len(before) + 1, refused  # one open, one line
    assert "omicsfs.fuse_ops: open " in refused[-1]
    found = [line for line in mnt.lines if "contig bad of reference" in line and "refuses reads" in line]
    assert len(found) == 1  # the scan said so once, when it found the layout wrong


def test_omicsfs_env_prints_both_variables_and_refuses_a_folder_that_is_not_a_mount(
    mnt: Mounted, tmp_path: Path
) -> None:
    printed = subprocess.run([sys.executable, "-m", "omicsfs", "env", str(mnt.path)], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
    pattern = f"{mnt.path}/reference-stores/by-md5/%2s/%2s/%s"
    assert printed == f"export REF_PATH={pattern}\nexport REF_CACHE={pattern}\n"
    refused = subprocess.run([sys.executable, "-m", "omicsfs", "env", str(tmp_path)], capture_output=True,
                             text=True)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "is not an omicsfs mount" in refused.stderr


def test_ref_cache_on_the_mount_keeps_htslib_from_copying_contigs(
    mnt: Mounted, run_offline: Offline, tmp_path: Path
) -> None:
    """Why ``omicsfs env`` sets REF_CACHE too: with REF_PATH alone and a REF_CACHE of the
    user's, htslib before 1.22 copies every contig it loads through REF_PATH into that cache."""
    cram = mnt.path / "sequence-stores" / "demo-cohort" / "masked.cram"
    ours = omicsfs_env(mnt.path)
    users_cache = tmp_path / "hts-ref"
    with_users_cache = clean_env(tmp_path, REF_PATH=ours["REF_PATH"], REF_CACHE=f"{users_cache}/%2s/%2s/%s")
    assert run_offline(["samtools", "view", "-c", str(cram)], with_users_cache).returncode == 0
    copies = [path for path in users_cache.rglob("*") if path.is_file()] if users_cache.exists() else []
    if _htslib_version() < (1, 22):
        assert len(copies) == 3, "htslib before 1.22 copies every REF_PATH contig into REF_CACHE"
    with_ours = clean_env(tmp_path / "second", **ours)
    counted = run_offline(["samtools", "view", "-c", str(cram)], with_ours)
    assert counted.returncode == 0, counted.stderr
    assert counted.stderr == ""
    assert not (tmp_path / "second").exists()  # nothing written anywhere, not even HOME/.cache


def test_md5s_are_computed_once_and_a_remount_with_the_same_cache_dir_scans_nothing(
    tmp_path: Path, refs_service: RunningService, refs_loaded: Loaded, made: Made
) -> None:
    cache = tmp_path / "cache"
    md5 = m5(made.masked_sequences["chrB"])
    first = Mounted(tmp_path / "first", refs_service.url, "--cache-dir", str(cache))
    try:
        os.listdir(first.path / "reference-stores" / "by-md5")
        assert hashlib.md5(_by_md5(first.path, md5).read_bytes()).hexdigest() == md5
    finally:
        assert first.stop() == 0  # the whole log is in once the daemon has exited
    assert first.log.count("computing the MD5") == len(refs_loaded.references)  # each reference once
    refs_service.reset_stats()
    again = Mounted(tmp_path / "again", refs_service.url, "--cache-dir", str(cache))
    try:
        assert _by_md5(again.path, md5).stat().st_size == len(made.masked_sequences["chrB"])
        assert hashlib.md5(_by_md5(again.path, md5).read_bytes()).hexdigest() == md5
        assert refs_service.requests().get("GetReference", 0) == 0  # MD5s, .fai and FASTA parts on disk
    finally:
        assert again.stop() == 0
    assert "computing the MD5" not in again.log
