"""Copy tools into a --read-write mount, as users run them (README.md, "Troubleshooting")."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.mounting import Mounted
from tests.write.conftest import open_uploads, read_sets_named, wait_active


def _copy(tmp_path: Path, sample: SampleFiles, name: str) -> Path:
    source = tmp_path / name
    source.write_bytes(sample.fastq1.read_bytes())
    return source


def test_rsync_is_refused_and_cp_p_reports_the_times_it_cannot_keep(
    rw: Mounted, cohort: Path, tmp_path: Path, sample: SampleFiles, omics: Any, write_loaded: LoadedSample
) -> None:
    store = write_loaded.sequence_store_id
    # rsync writes a hidden temporary name and renames it: the name is no read set file.
    plain = subprocess.run(
        ["rsync", str(_copy(tmp_path, sample, "by-rsync.fastq.gz")), str(cohort)],
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 23, plain.stderr
    assert "Invalid argument" in plain.stderr
    assert read_sets_named(omics, store, "by-rsync") == []
    # cp -p uploads, then cannot set the times (a read set has only its creation time): exit 1.
    kept = subprocess.run(
        ["cp", "-p", str(_copy(tmp_path, sample, "by-cp-p.fastq.gz")), str(cohort)],
        capture_output=True,
        text=True,
    )
    assert kept.returncode == 1
    assert "preserving times" in kept.stderr
    assert "Operation not permitted" in kept.stderr
    assert wait_active(omics, store, "by-cp-p")["fileType"] == "FASTQ"
    assert open_uploads(omics, store) == []
