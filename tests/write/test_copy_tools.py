"""Copy tools into a --read-write mount, as users run them (README.md, "Writing"): plain rsync is
refused with a hint, cp -p keeps its exit 0 (its times are accepted and ignored). The tools with
their after-close steps are exercised in test_after_close.py."""

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


def test_rsync_is_refused_with_a_hint_and_cp_p_succeeds(
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
    rw.wait_for_log("use rsync --inplace")
    assert read_sets_named(omics, store, "by-rsync") == []
    # cp -p uploads, then sets times and mode: accepted and ignored on a file this mount wrote.
    kept = subprocess.run(
        ["cp", "-p", str(_copy(tmp_path, sample, "by-cp-p.fastq.gz")), str(cohort)],
        capture_output=True,
        text=True,
    )
    assert kept.returncode == 0, kept.stderr
    assert wait_active(omics, store, "by-cp-p")["fileType"] == "FASTQ"
    assert open_uploads(omics, store) == []
