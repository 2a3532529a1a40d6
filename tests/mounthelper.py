"""Test helper: ``mount.fuse.omicsfs`` installed where mount(8) looks, for one test at a time.

mount(8) only searches /sbin (and /sbin/fs.d, /sbin/fs), so the helper is installed there with
``omicsfs install-helper`` and removed afterwards. A lock serialises tests of parallel checkouts
on one machine, each of which links the helper to its own installation.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

HELPER = Path("/sbin/mount.fuse.omicsfs")


@contextmanager
def helper_installed() -> Iterator[Path]:
    if os.getuid() != 0:
        pytest.skip("installing a mount(8) helper into /sbin needs root")
    with open("/run/lock/omicsfs-mount-helper-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = os.readlink(HELPER) if HELPER.is_symlink() else None
        run = [sys.executable, "-m", "omicsfs", "install-helper", "--target", str(HELPER)]
        subprocess.run(run, check=True, capture_output=True)
        try:
            yield HELPER
        finally:
            subprocess.run([*run, "--remove"], check=True, capture_output=True)
            if before is not None:  # someone's own install: put it back
                HELPER.symlink_to(before)
