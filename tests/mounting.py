"""Test helpers: run ``omicsfs mount`` as a real process on a real FUSE mount point.

The mount runs in the foreground as a child process, exactly as systemd runs it; the fixture
waits for its "mounted" log line (not a sleep) and keeps the rest of its log for assertions.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from omicsfs.daemon.mounttable import mount_table
from tests.localservice import aws_env


def md5(path: Path) -> str:
    """MD5 of a file, read in blocks: what went into a mount compared with what came out."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def omicsfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs the omicsfs command line as a user does."""
    return subprocess.run(
        [sys.executable, "-m", "omicsfs", *args],
        capture_output=True,
        text=True,
        env=env or aws_env(),
        timeout=120,
    )


class Mounted:
    """``omicsfs mount --foreground`` on ``mountpoint``; ``path`` is the mount root."""

    def __init__(self, mountpoint: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        with contextlib.suppress(FileExistsError):  # also a dead mount point (stat fails)
            mountpoint.mkdir(parents=True)
        self.path = mountpoint
        args = [
            sys.executable, "-m", "omicsfs", "mount", str(mountpoint), "--endpoint-url", url,
            "--foreground", "--retry-delay", "0.01", "--metadata-tps", "1000", *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env or aws_env())
        assert self.process.stderr is not None
        self.lines: list[str] = []
        for line in self.process.stderr:
            self.lines.append(line)
            if "omicsfs is mounted at" in line:
                break
        else:
            self.process.wait()
            self.process.stderr.close()
            raise RuntimeError("mount failed:\n" + "".join(self.lines))
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
        self.process.stderr.close()  # the daemon has exited, however it ended

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        """Until the daemon has logged ``text`` (polled with a deadline; fails if it never does)."""
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"the daemon never logged {text!r}:\n{self.log}")
            time.sleep(0.02)

    @property
    def mounted(self) -> bool:
        return mount_table().get(str(self.path)) == "fuse.omicsfs"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signals the daemon and returns its exit status; the mount point is free afterwards."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                code = self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        else:
            code = self.process.returncode
        self._drain.join(timeout=10)
        if self.mounted:
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)
        return code
