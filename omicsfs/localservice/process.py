"""Starting ``omicsfs serve`` as a child process and finding its endpoint.

Shared by the tests, the benchmarks, ``omicsfs mount --local`` and ``omicsfs demo``: the child
is started exactly as a user starts it, its first stdout line names the endpoint, and the rest of
stdout is drained so the child can never block on a full pipe.

An *owned* child (``owned=True``) belongs to one parent for its whole life: it runs in its own
session, so a Ctrl-C at the terminal reaches only the parent (which stops the service after it
has unmounted), and the kernel sends it SIGTERM if the parent dies without stopping it, so a
killed mount daemon never leaves a service behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: SIGTERM when the parent goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class ServiceProcess:
    """A running ``omicsfs serve`` child; ``url`` is its HealthOmics endpoint, ``s3_url`` the
    endpoint of its stores' S3 access subset (path-style)."""

    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        part_size: int = 104_857_600,
        processing_delay: float = 0.2,
        log_level: str = "WARNING",
        owned: bool = False,
        stderr: IO[str] | None = None,
    ) -> None:
        args = [
            sys.executable, "-m", "omicsfs", "serve", "--data-dir", str(data_dir), "--port", "0",
            "--part-size", str(part_size), "--processing-delay", str(processing_delay),
            "--log-level", log_level, *extra,
        ]  # fmt: skip
        self.data_dir = data_dir
        parent = os.getpid()
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=owned,
            preexec_fn=(lambda: _die_with_parent(parent)) if owned else None,
        )  # fmt: skip
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if "http://" not in first:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"omicsfs serve did not start: {first!r}")
        self.url = first.split()[-1]
        second = self.process.stdout.readline()
        if "S3 access listening on http://" not in second:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"omicsfs serve printed no S3 endpoint: {second!r}")
        self.s3_url = second.split()[-1]
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signals the child and returns its exit code (0 after a clean shutdown)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()
