"""Starting the daemon detached: ``omicsfs mount`` returns once the folder is mounted.

The daemon is a fresh interpreter, not a fork (boto3 and trio do not survive forks). It reports
through a pipe: ``ok`` once mounted, or the one-line reason it could not mount, which the caller
prints before exiting non-zero.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from omicsfs.daemon.checks import MountError


def start_daemon(argv: list[str], log_file: str | None) -> None:
    """Starts ``omicsfs mount --foreground`` as a detached child; returns when it is mounted."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    stderr: Any = subprocess.DEVNULL
    if log_file:
        stderr = open(log_file, "ab")  # noqa: SIM115 - handed to the child, closed below
    child = subprocess.Popen(
        [sys.executable, "-m", "omicsfs", *argv, "--foreground", "--notify-fd", str(write_end),
         *([] if log_file else ["--syslog"])],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        pass_fds=(write_end,), start_new_session=True,
    )  # fmt: skip
    os.close(write_end)
    if log_file:
        stderr.close()
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read()
    if message.startswith(b"ok"):
        return
    code = child.wait()
    text = message.decode(errors="replace").strip().removeprefix("omicsfs mount: ")  # the caller adds it
    raise MountError(text or f"the omicsfs daemon exited with status {code} before mounting")
