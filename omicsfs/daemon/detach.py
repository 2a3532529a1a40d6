"""Starting the daemon detached: ``omicsfs mount`` returns once the folder is mounted.

The daemon is a fresh interpreter, not a fork (boto3 and trio do not survive forks). It reports
through a pipe: one line, ``ok`` once mounted, or the one-line reason it could not mount, which
the caller prints before exiting non-zero.

The caller reads that one line, not the pipe to its end, and also watches the daemon itself
(a pidfd): a process the daemon starts may hold a copy of the pipe for as long as the mount
lives. libfuse's ``auto_unmount`` does exactly that: it leaves a ``fusermount3`` process behind
to unmount the folder when the daemon dies. Waiting for the pipe's end hung ``omicsfs mount -o
auto_unmount`` forever; now the daemon also closes its end before mounting (notify_fd is made
non-inheritable in cli/mount.py) and the caller stops waiting as soon as the daemon has exited.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys

from omicsfs.daemon.errors import MountError
from omicsfs.daemon.logs import LogDestination, open_log_file


def start_daemon(argv: list[str], destination: LogDestination) -> None:
    """Starts ``omicsfs mount --foreground`` as a detached child; returns when it is mounted."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    log_fd = open_log_file(destination.path) if destination.path is not None else None
    logging_args = ["--log-file", str(destination.path)] if destination.path is not None else ["--syslog"]
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "omicsfs", *argv, "--foreground", "--notify-fd", str(write_end),
             *logging_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log_fd if log_fd is not None else subprocess.DEVNULL,
            pass_fds=(write_end,), start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(write_end)
        if log_fd is not None:
            os.close(log_fd)
    try:
        message = _first_line(read_end, child)
    finally:
        os.close(read_end)
    if message.startswith(b"ok"):
        return
    code = child.wait()
    text = message.decode(errors="replace").strip().removeprefix("omicsfs mount: ")  # the caller adds it
    raise MountError(text or f"the omicsfs daemon exited with status {code} before mounting")


def _first_line(pipe: int, child: subprocess.Popen[bytes]) -> bytes:
    """The daemon's report: its first line, or whatever it wrote before it exited."""
    received = b""
    pidfd = os.pidfd_open(child.pid)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pipe, selectors.EVENT_READ)
            selector.register(pidfd, selectors.EVENT_READ)
            while b"\n" not in received:
                ready = {key.fd for key, _ in selector.select()}
                if pipe in ready:
                    chunk = os.read(pipe, 4096)
                    if not chunk:
                        break
                    received += chunk
                elif pidfd in ready:  # exited: take what it wrote, without waiting for others
                    os.set_blocking(pipe, False)
                    with contextlib.suppress(BlockingIOError):
                        received += os.read(pipe, 4096)
                    break
    finally:
        os.close(pidfd)
    return received.partition(b"\n")[0]
