"""``omicsfs demo`` end to end: its printed commands are run verbatim, as a user pastes them."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from omicsfs.daemon.mounttable import mount_table
from tests.localservice import env_without_aws
from tests.mounting import omicsfs
from tests.procs import pids_with, wait_gone


class Demo:
    """``omicsfs demo`` running; ``output`` is its stdout up to the prompt, ``commands`` the ones
    it prints to try. Waits on the prompt line, never on time."""

    def __init__(self, mountpoint: Path, data_dir: Path) -> None:
        argv = [sys.executable, "-m", "omicsfs", "demo", str(mountpoint), "--data-dir", str(data_dir)]
        env = {**env_without_aws(), "AWS_PROFILE": "no-such-profile"}  # must not matter
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.errors: list[str] = []
        threading.Thread(target=self.errors.extend, args=(self.process.stderr,), daemon=True).start()
        self.lines: list[str] = []
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if "Press Ctrl-C" in line:
                break
        else:
            raise AssertionError("demo ended early:\n" + self.output + "".join(self.errors))
        start = self.lines.index("Try:") + 1
        self.commands = self.lines[start : self.lines.index("", start)]

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; returns the exit status and the rest of stdout."""
        self.process.send_signal(signal.SIGINT)
        rest, _ = self.process.communicate(timeout=60)
        return self.process.returncode, rest


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=cwd
    )


def test_demo_mounts_sample_data_its_commands_work_and_a_second_run_reuses_it(tmp_path: Path) -> None:
    mountpoint, data_dir, elsewhere = tmp_path / "omics", tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()  # the commands are pasted in another folder: their paths must be absolute

    demo = Demo(mountpoint, data_dir)
    try:
        assert "loading it into the local HealthOmics service" in demo.output
        assert mount_table()[str(mountpoint)] == "fuse.omicsfs"
        assert "NA12878-aligned.bam" in demo.output
        assert "demo-genome.fasta" in demo.output
        (service,) = pids_with("serve", str(data_dir / "service"))
        region, cram, xattrs = demo.commands
        assert region.startswith("samtools view")
        assert "omicsfs env" in cram
        assert "-T" not in cram  # the reference comes from the mount's by-md5 view
        assert xattrs.startswith("getfattr -d")
        # The local service's endpoint is printed (README's archive recipe needs it), and answers.
        (endpoint_line,) = [line for line in demo.lines if line.startswith("The local HealthOmics service: ")]
        url = endpoint_line.split()[4]
        stats = omicsfs("admin", "--endpoint-url", url, "stats", env=env_without_aws())
        assert stats.returncode == 0, stats.stderr
        assert "ListReadSets" in stats.stdout

        count = shell(region, elsewhere)
        assert count.returncode == 0, count.stderr
        expected = subprocess.run(
            ["samtools", "view", "-c", str(data_dir / "sample/sample.bam"), "chr1:10000-20000"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert int(count.stdout) == int(expected.stdout) > 0

        reads = shell(cram, elsewhere)
        assert reads.returncode == 0, reads.stderr
        records = reads.stdout.splitlines()
        assert len(records) == 10
        assert all(record.startswith("read") and len(record.split("\t")) >= 11 for record in records)

        attributes = shell(xattrs, elsewhere)
        assert attributes.returncode == 0, attributes.stderr
        assert 'user.omics.fileType="BAM"' in attributes.stdout
        assert 'user.omics.status="ACTIVE"' in attributes.stdout
    finally:
        code, rest = demo.interrupt()
    assert code == 0, "".join(demo.errors)
    assert f"unmounted {mountpoint}" in rest
    assert str(mountpoint) not in mount_table()
    assert wait_gone(service)

    again = Demo(mountpoint, data_dir)
    try:
        assert f"reusing the sample data loaded earlier into {data_dir}" in again.output
        assert "generating" not in again.output
        assert "loading" not in again.output
        assert sorted(os.listdir(mountpoint / "sequence-stores")) == ["by-id", "demo-cohort"]
        assert len(os.listdir(mountpoint / "sequence-stores/by-id")) == 1  # one store, not two
        assert shell(again.commands[0], elsewhere).stdout == count.stdout
    finally:
        code, _ = again.interrupt()
    assert code == 0, "".join(again.errors)
    assert str(mountpoint) not in mount_table()


def test_demo_refuses_a_non_empty_mount_point_in_one_line(tmp_path: Path) -> None:
    mountpoint = tmp_path / "omics"
    mountpoint.mkdir()
    (mountpoint / "keep").write_text("mine")
    argv = [sys.executable, "-m", "omicsfs", "demo", str(mountpoint), "--data-dir", str(tmp_path / "data")]
    result = subprocess.run(argv, capture_output=True, text=True, env=env_without_aws(), timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        f"omicsfs demo: mount point {mountpoint} is not empty (use an empty folder, or -o nonempty)\n"
    )
    assert (mountpoint / "keep").read_text() == "mine"


def test_demo_clears_a_stale_mount_left_by_a_killed_daemon(tmp_path: Path, local_data: Path) -> None:
    mountpoint = tmp_path / "omics"
    mountpoint.mkdir()
    mounted = omicsfs("mount", "--local", str(local_data), str(mountpoint), env=env_without_aws())
    assert mounted.returncode == 0, mounted.stderr
    (daemon,) = pids_with(str(mountpoint), "--notify-fd")
    subprocess.run(["kill", "-KILL", str(daemon)], check=True)
    assert wait_gone(daemon)
    with pytest.raises(OSError) as caught:
        os.listdir(mountpoint)
    assert caught.value.errno == errno.ENOTCONN  # stale: "Transport endpoint is not connected"

    demo = Demo(mountpoint, tmp_path / "data")
    try:
        assert (mountpoint / "sequence-stores/demo-cohort/NA12878-aligned.bam").stat().st_size > 0
    finally:
        code, _ = demo.interrupt()
    assert code == 0, "".join(demo.errors)
    assert str(mountpoint) not in mount_table()
