"""Mounting: checks before the mount, the daemon's life, and unmounting.

``omicsfs mount`` without ``--foreground`` runs the checks in the calling process, so each failure
is one clear line and exit status 1, then starts the daemon as a child (a fresh interpreter, not a
fork: boto3 and trio do not survive forks) and returns once the child reports the mount is live.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyfuse3
import trio

from omicsfs.backend.client import has_credentials, make_client, make_session
from omicsfs.backend.errors import AccessDenied, BackendError, TransportFailure, classify
from omicsfs.backend.omics import OmicsBackend
from omicsfs.config import MountConfig
from omicsfs.daemon.memory import map_large_blocks_individually
from omicsfs.daemon.sdnotify import notify
from omicsfs.fs.catalog import Catalog
from omicsfs.fs.filesystem import FileSystem
from omicsfs.fs.metastore import MetadataStore
from omicsfs.fs.read.blockcache import BlockCache
from omicsfs.fs.read.disktier import DiskTier
from omicsfs.fs.stats import Stats
from omicsfs.fs.write.manager import WriteManager
from omicsfs.fs.write.recovery import abort_orphans
from omicsfs.fuse_ops import OmicsOperations

log = logging.getLogger(__name__)

FSTYPE = "fuse.omicsfs"


class MountError(Exception):
    """A reason the mount cannot start, worded for the user (printed as one line)."""


@dataclass(frozen=True)
class Target:
    """Where and how to reach HealthOmics."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


# -- checks ---------------------------------------------------------------------------------------


def mount_table() -> dict[str, str]:
    """Mount point -> filesystem type, from /proc/self/mountinfo."""
    table: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return table
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            point = fields[4].encode().decode("unicode_escape")
            table[point] = right.split()[0]
    return table


def check_mountpoint(mountpoint: Path, *, nonempty: bool = False) -> None:
    """Missing, not a folder, already mounted, stale or not empty: each a clear MountError.

    A stale omicsfs mount (its daemon died; every access says "Transport endpoint is not
    connected") is cleared with a lazy unmount and the mount goes ahead. It is probed with a
    listing, not a stat: the kernel may answer a stat of a dead mount from its attribute cache.
    """
    point = str(mountpoint)
    fstype = mount_table().get(point)
    if fstype is not None:
        try:
            os.listdir(point)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise MountError(f"mount point {point}: {exc.strerror}") from None
            if fstype != FSTYPE:
                raise MountError(
                    f"{point} is a dead FUSE mount ({fstype}); clear it with: fusermount3 -u -z {point}"
                ) from None
            log.warning("%s is a stale omicsfs mount (its daemon died); unmounting it first", point)
            lazy_unmount(point)
        else:
            if fstype == FSTYPE:
                raise MountError(f"{point} is already an omicsfs mount (unmount it: omicsfs unmount {point})")
    try:
        os.stat(point)
    except FileNotFoundError:
        raise MountError(f"mount point {point} does not exist (create it with: mkdir -p {point})") from None
    except OSError as exc:
        raise MountError(f"mount point {point}: {exc.strerror}") from None
    if not os.path.isdir(point):
        raise MountError(f"mount point {point} is not a folder")
    if not nonempty and os.listdir(point):
        raise MountError(f"mount point {point} is not empty (use an empty folder, or -o nonempty)")


def check_fuse(allow_other: bool, fuse_conf: Path = Path("/etc/fuse.conf")) -> None:
    if not os.path.exists("/dev/fuse"):
        raise MountError("FUSE is not available: /dev/fuse is missing (load the fuse module: modprobe fuse)")
    if os.getuid() != 0 and shutil.which("fusermount3") is None:
        raise MountError("FUSE is not available: fusermount3 is missing (install the fuse3 package)")
    if allow_other and os.getuid() != 0 and not _user_allow_other(fuse_conf):
        raise MountError(
            f"--allow-other needs 'user_allow_other' in {fuse_conf} when not mounting as root"
            " (add that line, or mount without --allow-other)"
        )


def _user_allow_other(fuse_conf: Path) -> bool:
    try:
        lines = fuse_conf.read_text().splitlines()
    except OSError:
        return False
    return any(line.split("#", 1)[0].strip() == "user_allow_other" for line in lines)


_BAD_CREDENTIALS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "NoCredentials"}
)


def check_service(target: Target) -> None:
    """Credentials present and the endpoint answering, before anything is mounted."""
    session = make_session(region=target.region, profile=target.profile)
    if not has_credentials(session):
        raise MountError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " run 'aws configure', or attach an instance role)"
        )
    if session.region_name is None and target.endpoint_url is None:
        raise MountError("no AWS region configured (use --region or set AWS_REGION)")
    client = make_client(session, endpoint_url=target.endpoint_url)
    try:
        client.list_sequence_stores(maxResults=1)
    except Exception as exc:
        error = classify("ListSequenceStores", exc)
        where = target.endpoint_url or f"HealthOmics in {session.region_name}"
        if isinstance(error, TransportFailure):
            raise MountError(f"cannot reach {where}: {error.message}") from None
        if isinstance(error, AccessDenied) and error.code in _BAD_CREDENTIALS:
            raise MountError(f"{where} rejected the credentials: {error.message}") from None
        if isinstance(error, AccessDenied):
            log.warning("listing sequence stores is not allowed (%s); mounting anyway", error.message)
            return
        raise MountError(f"{where} failed: {error}") from None


def lazy_unmount(point: str) -> None:
    for command in (["fusermount3", "-u", "-z", point], ["umount", "-l", point]):
        if shutil.which(command[0]) is None:
            continue
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0 and mount_table().get(point) is None:
            return
        log.warning("%s: %s", " ".join(command[:-1]), result.stderr.strip() or "still mounted")


def unmount(point: str) -> None:
    """Unmounts cleanly; raises MountError with the tool's own message when it cannot."""
    if mount_table().get(os.path.abspath(point)) is None:
        raise MountError(f"{point} is not mounted")
    last = ""
    for command in (["fusermount3", "-u", point], ["umount", point]):
        if shutil.which(command[0]) is None:
            continue
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            return
        last = result.stderr.strip()
    raise MountError(f"cannot unmount {point}: {last or 'no fusermount3 or umount'}")


# -- the daemon -----------------------------------------------------------------------------------


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
    pieces, and kernel readahead is what turns them into large FUSE reads (fuse-anchors.md A8).
    Needs root; best effort."""
    try:
        device = os.stat(mountpoint).st_dev
        path = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
        path.write_text("1024")
    except OSError as exc:
        log.debug("could not raise kernel readahead on %s: %s", mountpoint, exc)


async def serve(
    config: MountConfig,
    target: Target,
    mountpoint: str,
    options: set[str],
    on_ready: Callable[[], None] = lambda: None,
    stats: Stats | None = None,
) -> None:
    stats = stats or Stats()
    session = make_session(region=target.region, profile=target.profile)
    limits = config.limits
    client = make_client(
        session,
        endpoint_url=target.endpoint_url,
        pool_connections=limits.data_streams + limits.control_threads,
    )
    backend = OmicsBackend(client, limits, stats)
    metastore = MetadataStore(config.metadata_dir)
    catalog = Catalog(
        backend,
        metastore,
        listing_ttl=config.listing_ttl,
        sequence_store_ids=config.sequence_store_ids,
        reference_store_ids=config.reference_store_ids,
    )
    disk = None
    if config.cache.disk_dir is not None:
        disk = DiskTier(config.cache.disk_dir, config.cache.disk_bytes, config.cache.block_size)
        await trio.to_thread.run_sync(disk.scan)
    cache = BlockCache(backend, config.cache, stats, disk)
    writes = None
    if config.writes.enabled:
        writes = WriteManager(
            backend, config.writes, stats, mountpoint,
            load_candidates=lambda: fs.writes.reference_candidates(),
            on_finished=lambda group, gone: fs.writes.finished(group, gone),
        )  # fmt: skip
    fs = FileSystem(catalog, cache, config, stats, invalidate=_invalidate, writes=writes)
    operations = OmicsOperations(fs, stats)
    worst = fs.budget.total_bytes + config.cache.memory_bytes
    log.info(
        "mounting %s: memory cache %d MiB, read-ahead budget %d MiB (%d streams), worst case %d MiB",
        mountpoint, config.cache.memory_bytes >> 20, fs.budget.total_bytes >> 20,
        config.read_ahead.max_streams, worst >> 20,
    )  # fmt: skip
    pyfuse3.init(operations, mountpoint, options)
    try:
        async with trio.open_nursery() as nursery:
            cache.attach(nursery)
            if writes is not None:
                writes.attach(nursery)
                nursery.start_soon(_clean_up_orphans, catalog, writes)
            await nursery.start(_signals, catalog)  # handlers are in place before we say ready
            threading.Thread(target=_raise_readahead, args=(mountpoint,), daemon=True).start()
            on_ready()
            await pyfuse3.main()
            if writes is not None:
                await writes.shutdown()
            nursery.cancel_scope.cancel()
    finally:
        pyfuse3.close(unmount=True)
        metastore.close()
        log.info("unmounted %s", mountpoint)


async def _clean_up_orphans(catalog: Catalog, writes: WriteManager) -> None:
    """Aborts uploads a killed daemon left at this mount point (write/recovery.py)."""
    try:
        stores = [store.id for store in await catalog.sequence_stores()]
    except BackendError as error:
        log.warning("could not list sequence stores to clean up old uploads: %s", error)
        return
    await abort_orphans(catalog.backend, stores, writes.owner, writes.session)


def _invalidate(parent: int, name: str, ino: int) -> None:
    try:
        pyfuse3.invalidate_entry_async(
            pyfuse3.InodeT(parent), pyfuse3.FileNameT(os.fsencode(name)), deleted=pyfuse3.InodeT(ino),
            ignore_enoent=True,
        )  # fmt: skip
    except Exception:  # the kernel may already have dropped it
        log.debug("invalidating %s failed", name, exc_info=True)


async def _signals(catalog: Catalog, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2) as signals:
        task_status.started()
        configured = logging.getLogger().level
        async for signum in signals:
            if signum == signal.SIGUSR2:  # Mountpoint's runtime verbosity toggle
                root = logging.getLogger()
                root.setLevel(configured if root.level == logging.DEBUG else logging.DEBUG)
                log.warning("SIGUSR2: log level is now %s", logging.getLevelName(root.level))
                continue
            if signum == signal.SIGHUP:
                log.info("SIGHUP: listings will be fetched again on next access")
                catalog.expire_listings()
                continue
            log.info("signal %d: unmounting", signum)
            pyfuse3.terminate()
            return


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
        trio.run(serve, config, target, mountpoint, options, ready)
    except RuntimeError as exc:  # pyfuse3.init: fuse_session_mount failed
        raise MountError(f"mounting {mountpoint} failed: {exc}") from None
    return 0


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
