"""An /etc/fstab line for a local data dir (``local:DATA_DIR``), mounted with mount(8)."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

from omicsfs.daemon.mounttable import mount_table
from omicsfs.sample.data import SampleFiles
from tests.localservice import env_without_aws
from tests.mounthelper import helper_installed
from tests.procs import children, pids_with, wait_gone


def test_an_fstab_line_with_a_local_source_mounts_and_umounts(
    local_data: Path, sample: SampleFiles, tmp_path: Path
) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    fstab = tmp_path / "fstab"  # the README's line, in a table of its own (mount -T)
    fstab.write_text(f"local:{local_data}  {point}  fuse.omicsfs  ro,allow_other,_netdev,nofail  0  0\n")
    with helper_installed():
        result = subprocess.run(
            ["mount", "-T", str(fstab), str(point)],
            capture_output=True, text=True, env=env_without_aws(), cwd=tmp_path, timeout=120,
        )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        assert mount_table()[str(point)] == "fuse.omicsfs"
        (daemon,) = pids_with(str(point), "--notify-fd")
        (service,) = [pid for pid in children(daemon) if pid in pids_with("serve")]
        fastq = point / "sequence-stores/demo-cohort/NA12878-reads_1.fastq.gz"
        assert gzip.decompress(fastq.read_bytes()) == gzip.decompress(sample.fastq1.read_bytes())
        assert subprocess.run(["umount", str(point)], capture_output=True).returncode == 0
        assert wait_gone(daemon)
        assert wait_gone(service)
        assert str(point) not in mount_table()
    finally:
        if str(point) in mount_table():
            subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False)
