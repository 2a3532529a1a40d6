"""Names the service cannot hold are refused, never cut: HealthOmics keeps read set names,
sample IDs and subject IDs to 127 characters, the kernel allows 255 bytes per name."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.mounting import Mounted
from tests.write.conftest import open_uploads, read_sets_named, wait_active


@pytest.mark.parametrize("group", ["by-sample", "by-subject"])
def test_a_group_folder_longer_than_an_id_can_be_is_enametoolong(group: str, cohort: Path) -> None:
    for length in (128, 255):
        with pytest.raises(OSError) as raised:
            (cohort / group / ("s" * length)).mkdir()
        assert raised.value.errno == errno.ENAMETOOLONG
        assert "s" * length not in os.listdir(cohort / group)
    (cohort / group / ("s" * 127)).mkdir()  # the longest ID the service takes
    assert (cohort / group / ("s" * 127)).is_dir()
    os.rmdir(cohort / group / ("s" * 127))


def test_a_read_set_name_longer_than_127_characters_is_refused_at_create(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    result = subprocess.run(
        ["cp", str(sample.fastq1), str(cohort / ("n" * 128 + ".fastq.gz"))], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "File name too long" in result.stderr
    assert read_sets_named(omics, write_loaded.sequence_store_id, "n" * 128) == []
    assert read_sets_named(omics, write_loaded.sequence_store_id, "n" * 127) == []
    assert open_uploads(omics, write_loaded.sequence_store_id) == []


def test_a_sample_id_of_127_characters_is_kept_whole(
    cohort: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    value = "é" * 127  # 254 bytes: fits the kernel's name limit and the service's
    folder = cohort / "by-sample" / value
    folder.mkdir()
    shutil.copyfile(sample.fastq1, folder / "long-sample.fastq.gz")
    meta = wait_active(omics, write_loaded.sequence_store_id, "long-sample")
    assert meta["sampleId"] == value


def test_a_header_sample_longer_than_127_characters_fails_the_first_write(
    rw: Mounted, cohort: Path, tmp_path: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    header = subprocess.run(
        ["samtools", "view", "-H", str(sample.bam)], capture_output=True, text=True, check=True
    ).stdout
    long_sample = "S" * 200
    rewritten = "\n".join(
        "\t".join(f"SM:{long_sample}" if field.startswith("SM:") else field for field in line.split("\t"))
        if line.startswith("@RG") else line
        for line in header.splitlines()
    ) + "\n"  # fmt: skip
    assert f"SM:{long_sample}" in rewritten
    (tmp_path / "header.sam").write_text(rewritten)
    bam = tmp_path / "long-sm.bam"
    subprocess.run(
        ["samtools", "reheader", "-P", str(tmp_path / "header.sam"), str(sample.bam)],
        stdout=bam.open("wb"), check=True,
    )  # fmt: skip
    fd = os.open(cohort / "long-sm.bam", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with pytest.raises(OSError) as raised:
            os.write(fd, bam.read_bytes())
    finally:
        os.close(fd)
    assert raised.value.errno == errno.EINVAL
    assert "sampleId 'SSSS" in rw.log
    assert "has 200 characters (at most 127)" in rw.log
    assert read_sets_named(omics, write_loaded.sequence_store_id, "long-sm") == []
    assert open_uploads(omics, write_loaded.sequence_store_id) == []
