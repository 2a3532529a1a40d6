"""``omicsfs unmount`` of a mount that is busy: ask its daemon to stop, and wait until it has.

``fusermount3 -u`` refuses a mount with open files ("Device or resource busy"), and a ``cp``
writing into a ``--read-write`` mount holds one open. Its daemon then gets SIGTERM, which stops
it in an order that settles every upload and cannot hang (daemon/run.py), and this waits for the
daemon to exit (through a pidfd, not by polling) and the folder to be unmounted. The daemon's
process ID is read from the mount's own ``.omicsfs/stats.json``: whoever can see the mount can
see it, and only who may signal that process can stop it.
"""

from __future__ import annotations

import json
import os
import select
import signal
from pathlib import Path

from omicsfs.daemon.mounttable import FSTYPE, UnmountError, mount_table, unmount

#: How long ``omicsfs unmount`` waits for a signalled daemon: its own bound for settling uploads
#: (run.py, SHUTDOWN_SECONDS) plus the kernel's part.
STOP_WAIT_SECONDS = 90.0


def daemon_pid(point: str) -> int | None:
    """The process ID of the daemon serving ``point``, from its stats document."""
    try:
        document = json.loads((Path(point) / ".omicsfs" / "stats.json").read_text())
        return int(document["daemon"]["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unmount_or_stop(point: str) -> None:
    """Unmounts ``point``; if it is busy and an omicsfs mount, stops its daemon instead."""
    try:
        unmount(point)
        return
    except UnmountError as exc:
        if "busy" not in str(exc).lower() or mount_table().get(point) != FSTYPE:
            raise
        busy = exc
    pid = daemon_pid(point)
    if pid is None:
        raise UnmountError(f"{busy}; and its daemon's process ID could not be read to stop it")
    try:
        process = os.pidfd_open(pid)
    except OSError as exc:
        raise UnmountError(f"{busy}; its daemon (pid {pid}) cannot be found: {exc.strerror}") from None
    try:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as exc:
            raise UnmountError(f"{busy}; its daemon (pid {pid}) cannot be stopped: {exc.strerror}") from None
        ready, _, _ = select.select([process], [], [], STOP_WAIT_SECONDS)
    finally:
        os.close(process)
    if not ready:
        raise UnmountError(f"the daemon of {point} (pid {pid}) did not exit within {STOP_WAIT_SECONDS:.0f}s")
    if mount_table().get(point) is not None:
        raise UnmountError(f"the daemon of {point} exited but the folder is still mounted")
