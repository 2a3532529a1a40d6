"""``omicsfs stats`` renders the uploads section of stats.json the way ``rclone copy -P`` does."""

from __future__ import annotations

from omicsfs.cli.stats import render

MIB = 1 << 20


def test_uploads_in_flight_show_bytes_rate_eta_parts_and_a_total() -> None:
    stats = {"uploads": {
        "completed": 2, "aborted": 1,
        "in_flight": {
            "big.bam": {"state": "writing", "written_bytes": 40 * MIB, "stored_bytes": 40 * MIB,
                        "uploaded_bytes": 10 * MIB, "parts_done": 4, "rate_bytes_per_second": 5 * MIB,
                        "eta_seconds": 6.0},
            "reads.fastq": {"state": "closed", "written_bytes": 8 * MIB, "stored_bytes": 2 * MIB,
                            "uploaded_bytes": 2 * MIB, "parts_done": 1, "rate_bytes_per_second": None,
                            "eta_seconds": 0.0},
        },
        "total": {"files": 2, "written_bytes": 48 * MIB, "stored_bytes": 42 * MIB, "uploaded_bytes": 12 * MIB,
                  "parts_done": 5, "rate_bytes_per_second": 5 * MIB, "eta_seconds": 372.0},
        "recent": [],
    }}  # fmt: skip
    lines = render(stats).splitlines()
    assert "uploads: 2 completed, 1 aborted; 2 in flight: 12.0 MiB of 42.0 MiB uploaded, 5.0 MiB/s, " \
           "ETA 6m12s, 5 parts" in lines  # fmt: skip
    big = next(line for line in lines if line.startswith("  big.bam ["))
    assert "[#######" + "." * 23 + "]" in big  # a quarter of 30
    assert "10.0 MiB of 40.0 MiB uploaded, 40.0 MiB written, 5.0 MiB/s, ETA 6s, 4 parts (writing)" in big
    fastq = next(line for line in lines if line.startswith("  reads.fastq ["))
    assert "2.0 MiB of 2.0 MiB uploaded, 8.0 MiB written, -/s, ETA 0s, 1 part (closed)" in fastq


def test_uploads_that_ended_show_their_read_set_or_error() -> None:
    stats = {"uploads": {"completed": 1, "aborted": 1, "in_flight": {}, "total": {}, "recent": [
        {"files": ["a_1.fastq.gz", "a_2.fastq.gz"], "read_set_id": "1234567890", "status": "ACTIVE",
         "error": None, "uploaded_bytes": 3 * MIB, "seconds": 1.5, "ended": "12:00:01"},
        {"files": ["t.bam"], "read_set_id": None, "status": "FAILED", "error": "part 1 of SOURCE1 failed",
         "uploaded_bytes": 0, "seconds": 0.2, "ended": "12:00:02"},
    ]}}  # fmt: skip
    lines = render(stats).splitlines()
    assert "uploads: 1 completed, 1 aborted" in lines
    index = lines.index("ended lately:")
    assert lines[index + 1 : index + 3] == [
        "  12:00:01 a_1.fastq.gz, a_2.fastq.gz -> read set 1234567890 ACTIVE (3.0 MiB in 1.5s)",
        "  12:00:02 t.bam -> FAILED, nothing kept: part 1 of SOURCE1 failed (0.0 MiB in 0.2s)",
    ]


def test_an_old_document_without_totals_still_renders() -> None:
    lines = render({"uploads": {"in_flight": {"x.bam": 3 * MIB}}}).splitlines()
    assert any(line.startswith("  x.bam [") and "3.0 MiB written" in line for line in lines)
