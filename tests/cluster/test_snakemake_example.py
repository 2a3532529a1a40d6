"""examples/cohort-snakemake: a real Snakemake workflow scattering samtools over a manifest mount."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample
from tests.cluster.conftest import non_data_calls, write_manifest
from tests.localservice import RunningService
from tests.mounting import Mounted

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cohort-snakemake" / "Snakefile"
REGION = "chr1:10000-20000"


def samtools(*args: str | Path) -> str:
    return subprocess.run(["samtools", *map(str, args)], check=True, capture_output=True, text=True).stdout


def test_the_snakemake_example_scatters_flagstat_and_region_counts_over_every_bam_and_cram(
    cohort: tuple[RunningService, LoadedSample], sample: SampleFiles, tmp_path: Path
) -> None:
    service, loaded = cohort
    manifest = tmp_path / "cohort.json"
    write_manifest(service, manifest, "--sequence-store", "demo-cohort")
    cache = tmp_path / "cache"
    mounted = Mounted(tmp_path / "mnt", service.url, "--manifest", str(manifest), "--cache-dir", str(cache),
                      "--cache-dir-shared")  # fmt: skip
    try:
        service.reset_stats()
        workdir = tmp_path / "work"
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(EXAMPLE), "--directory", str(workdir),
             "--cores", "2", "--config", f"manifest={manifest}", f"mount={mounted.path}", f"region={REGION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        with open(workdir / "results" / "summary.tsv") as handle:
            rows = {row["read_set"]: row for row in csv.DictReader(handle, delimiter="\t")}
        bam, cram = loaded.read_sets["bam"], loaded.read_sets["cram"]
        assert set(rows) == {bam, cram}  # every BAM and CRAM of the store, nothing else
        total = samtools("flagstat", sample.bam).split()[0]
        in_region = samtools("view", "-c", sample.bam, REGION).strip()
        for read_set in (bam, cram):
            assert rows[read_set]["total_reads"] == total
            assert rows[read_set][f"reads_in_{REGION}"] == in_region
        assert rows[cram]["type"] == "CRAM"
        assert non_data_calls(service) == {}  # the whole workflow: data calls only
    finally:
        assert mounted.stop() == 0
