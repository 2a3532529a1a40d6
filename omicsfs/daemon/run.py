"""The daemon's life: build the filesystem, mount it, serve until a signal, unmount cleanly.

This is where the parts meet: the boto3 client and backend, the persisted metadata and disk
tier under ``--cache-dir``, the filesystem (omicsfs/fs/), the pyfuse3 adapter (fuse_ops.py) and
the signal handlers. Everything here runs inside the daemon process; the checks that run in the
user's process before it starts are in checks.py.

Stopping (SIGINT, SIGTERM, or ``omicsfs unmount`` of a busy mount, which sends SIGTERM) happens
in an order that cannot hang (SEMANTICS.md, "Unmounting with writers"):
1. the write engine stops while the FUSE loop still answers: no new files, uploads still being
   written are aborted and their writers get EIO at once (also those waiting for a part slot),
   Completes on their way finish, lone ``_1`` mates are completed;
2. the kernel notifications queued by that are sent, then no more are (invalidation.py);
3. the FUSE loop is told to end; it finishes the requests it is handling;
4. the session is closed and unmounted: requests the kernel still queues fail with ENOTCONN.
Steps 1-2 are bounded by ``SHUTDOWN_SECONDS``; what is left then (a service that stopped
answering) is aborted by the next mount of the same folder (fs/write/recovery.py).
A plain ``fusermount3 -u`` succeeds only when nothing is open, so the loop ends first and step 1
then only completes lone mates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pyfuse3
import trio

from omicsfs.backend.client import make_client, make_session
from omicsfs.backend.omics import OmicsBackend
from omicsfs.backend.s3 import S3Backend, make_s3_client
from omicsfs.config import DataPlane, MountConfig
from omicsfs.daemon.checks import Target
from omicsfs.daemon.errors import MountError
from omicsfs.daemon.invalidation import KernelNotifier
from omicsfs.daemon.memory import map_large_blocks_individually
from omicsfs.daemon.mounttable import mounts
from omicsfs.daemon.sdnotify import notify
from omicsfs.daemon.signals import handle_signals
from omicsfs.daemon.stderr import CapturedStderr
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.manifest import ManifestError
from omicsfs.fs.manifestsource import control_sources
from omicsfs.fs.read.disktier import DiskTier
from omicsfs.fs.stats import Stats
from omicsfs.fuse_ops import OmicsOperations

log = logging.getLogger(__name__)


def fuse_options(read_only: bool, allow_other: bool, extra: list[str]) -> set[str]:
    options = {"fsname=omicsfs", "subtype=omicsfs", "default_permissions"}
    if read_only:
        options.add("ro")
    if allow_other:
        options.add("allow_other")
    options.update(option for option in extra if option and option != "nonempty")
    return options


def _raise_readahead(mountpoint: str) -> None:
    """Lets the kernel read ahead 1 MiB on this mount (default 128 KiB): htslib reads in 32 KiB
    pieces, and kernel readahead is what turns them into large FUSE reads (docs/architecture.md,
    "Kernel caching"). Needs root; best effort. Runs once the kernel's INIT is answered: the INIT
    reply caps the readahead at what the kernel offered when mounting (128 KiB), so a value set
    before it would be lowered again. The device comes from the mount table, never from
    a stat of the mount point: that stat is a FUSE request this daemon must answer, and a daemon
    killed while one of its own threads waits for that answer can never exit (the thread waits in
    the kernel, the kernel waits for the process to close /dev/fuse)."""
    # Resolved by cli/mount.py before mounting, as the table holds it (realpath here would lstat
    # the mount point: the same request).
    devices = [entry.device for entry in mounts() if entry.point == mountpoint]
    if not devices:
        log.debug("could not raise kernel readahead on %s: not in the mount table", mountpoint)
        return
    try:
        Path(f"/sys/class/bdi/{devices[-1]}/read_ahead_kb").write_text("1024")
    except OSError as exc:
        log.debug("could not raise kernel readahead on %s: %s", mountpoint, exc)


#: Longest the write engine may take to settle at a stop: the Completes on their way, then one
#: paced Abort per open upload (about one a second; every upload at once, the pacing spreads them).
SHUTDOWN_SECONDS = 60.0
#: Longest the kernel may take to accept the invalidations queued by the stop.
NOTIFY_DRAIN_SECONDS = 10.0


async def _settle_writes(fs: FileSystem) -> None:
    if fs.writes is None:
        return
    with trio.move_on_after(SHUTDOWN_SECONDS) as scope:
        await fs.writes.shutdown()
    if scope.cancelled_caught:
        log.error("uploads did not settle within %.0fs; the next mount at this folder aborts what is "
                  "left", SHUTDOWN_SECONDS)  # fmt: skip


async def _stop_when_asked(stop: trio.Event, fs: FileSystem, notifier: KernelNotifier) -> None:
    """Steps 1-3 of the module docstring, while the FUSE loop still answers requests."""
    await stop.wait()
    writing = fs.writes.manager.files if fs.writes is not None else {}
    log.info("unmounting%s", f": {len(writing)} file(s) still being written are aborted" if writing else "")
    await _settle_writes(fs)
    await notifier.drain(NOTIFY_DRAIN_SECONDS)
    notifier.close()
    pyfuse3.terminate()


async def run_filesystem(
    config: MountConfig,
    target: Target,
    mountpoint: str,
    options: set[str],
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Mounts ``mountpoint`` and serves it until unmounted or signalled."""
    stats = Stats()
    session = make_session(region=target.region, profile=target.profile)
    credentials = session.get_credentials()
    log.info("AWS credentials from %s", credentials.method if credentials is not None else "nowhere")
    limits = config.limits
    client = make_client(
        session,
        endpoint_url=target.endpoint_url,
        pool_connections=limits.data_streams + limits.control_threads,
    )
    try:  # --manifest: listings and metadata from the manifest, data from the service
        backend, metastore = control_sources(config, OmicsBackend(client, limits, stats.backend))
    except ManifestError as exc:
        raise MountError(str(exc)) from None
    s3 = None
    if target.has_s3 and config.data_plane is not DataPlane.PARTS:
        s3_client = make_s3_client(session, endpoint_url=target.s3_endpoint_url, pool_connections=64)
        s3 = S3Backend(s3_client, limits, stats.backend)
    disk = None
    if config.cache.disk_dir is not None:
        grace = config.cache.shared_grace if config.cache.shared else None
        disk = DiskTier(config.cache.disk_dir, config.cache.disk_bytes, config.cache.block_size,
                        shared_grace=grace)  # fmt: skip
        await trio.to_thread.run_sync(disk.scan)
    notifier = KernelNotifier()
    fs = FileSystem(
        config, backend, stats, mountpoint=mountpoint, invalidate=notifier.entry, disk=disk,
        metastore=metastore, invalidate_inode=notifier.inode, s3=s3,
    )  # fmt: skip
    operations = OmicsOperations(fs, stats, after_init=lambda: _raise_readahead(mountpoint))
    budget = config.read_ahead_budget
    log.info(
        "mounting %s: memory cache %d MiB, read-ahead budget %d MiB (%d streams), worst case %d MiB",
        mountpoint, config.cache.memory_bytes >> 20, budget >> 20, config.read_ahead.max_streams,
        (budget + config.cache.memory_bytes) >> 20,
    )  # fmt: skip
    captured = CapturedStderr()
    try:
        with captured:
            pyfuse3.init(operations, mountpoint, options)
    except RuntimeError as exc:  # fuse_session_new or fuse_session_mount failed: libfuse says why
        metastore.close()
        raise MountError(f"mounting {mountpoint} failed: {captured.reason() or exc}") from None
    try:
        async with trio.open_nursery() as nursery:
            fs.tasks.attach(nursery)
            if fs.writes is not None:
                fs.tasks.start(fs.writes.clean_up_orphans)
            stop = trio.Event()
            await nursery.start(handle_signals, fs.catalog, stop.set)  # in place before we say ready
            nursery.start_soon(_stop_when_asked, stop, fs, notifier)
            on_ready()
            await pyfuse3.main()
            # The loop has ended (a stop, or the kernel unmounted): it answers nothing any more,
            # so nothing may wait on the kernel from here on (invalidation.py).
            notifier.close()
            await _settle_writes(fs)
            nursery.cancel_scope.cancel()
    finally:
        notifier.close()
        pyfuse3.close(unmount=True)
        metastore.close()
        log.info("unmounted %s", mountpoint)


def run_foreground(
    config: MountConfig, target: Target, mountpoint: str, options: set[str], notify_fd: int | None = None
) -> int:
    def ready() -> None:
        log.info("omicsfs is mounted at %s", mountpoint)
        notify("READY=1")  # under systemd (Type=notify): the unit is up once the folder is mounted
        if notify_fd is not None:
            os.write(notify_fd, b"ok\n")
            os.close(notify_fd)

    map_large_blocks_individually()
    try:
        trio.run(run_filesystem, config, target, mountpoint, options, ready)
    except RuntimeError as exc:  # pyfuse3.init: fuse_session_mount failed
        raise MountError(f"mounting {mountpoint} failed: {exc}") from None
    return 0
