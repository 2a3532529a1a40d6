"""``omicsfs mount`` and ``omicsfs unmount``: from command-line flags to a running mount."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys

from omicsfs.backend.omics import BackendLimits
from omicsfs.backend.retry import RetryPolicy
from omicsfs.config import CacheConfig, MountConfig, ReadAheadConfig, WriteConfig
from omicsfs.daemon.run import (
    MountError,
    Target,
    check_fuse,
    check_mountpoint,
    check_service,
    fuse_options,
    run_foreground,
    start_daemon,
    unmount,
)

log = logging.getLogger(__name__)


def _log_setup(args: argparse.Namespace) -> None:
    handler: logging.Handler
    if args.syslog and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.setFormatter(logging.Formatter("omicsfs[%(process)d]: %(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler], force=True)
    quiet_libraries()


def quiet_libraries() -> None:
    """botocore's DEBUG output holds request bodies (file contents) and signing details: never
    let it through, whatever --log-level says."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(max(logging.getLogger(name).getEffectiveLevel(), logging.INFO))


def config_from_args(args: argparse.Namespace) -> MountConfig:
    cache_dir = args.cache_dir.resolve() if args.cache_dir else None
    memory = args.cache_size
    return MountConfig(
        listing_ttl=args.listing_ttl,
        uid=os.getuid() if args.uid is None else args.uid,
        gid=os.getgid() if args.gid is None else args.gid,
        sequence_store_ids=tuple(args.sequence_store),
        reference_store_ids=tuple(args.reference_store),
        cache=CacheConfig(
            memory_bytes=memory,
            disk_dir=cache_dir / "parts" if cache_dir else None,
            disk_bytes=args.cache_dir_size,
        ),
        read_ahead=ReadAheadConfig(budget_bytes=memory // 2),
        limits=BackendLimits(
            metadata_tps=args.metadata_tps,
            retry=RetryPolicy(attempts=max(1, args.retries), base_delay=args.retry_delay),
        ),
        metadata_dir=cache_dir,
        writes=WriteConfig(
            enabled=args.read_write,
            allow_delete=args.allow_delete,
            part_size=args.part_size,
            parts_in_flight=args.parts_in_flight,
            pair_timeout=args.pair_timeout,
            sample_id=args.sample_id,
            subject_id=args.subject_id,
            reference_arn=args.reference_arn,
            generated_from=args.generated_from,
            description=args.description,
        ),
    )


def run_mount(args: argparse.Namespace, argv: list[str]) -> int:
    _log_setup(args)
    mountpoint = str(args.mountpoint.resolve())
    extra = [option for group in args.fuse_options for option in group.split(",") if option]
    target = Target(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile)
    try:
        if args.listing_ttl <= 0:
            raise MountError(
                "--listing-ttl must be positive (a TTL of 0 would list the store on every access)"
            )
        if args.allow_delete and not args.read_write:
            raise MountError("--allow-delete needs --read-write")
        try:
            config = config_from_args(args)
        except ValueError as exc:
            raise MountError(str(exc)) from None
        if args.cache_dir:
            args.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if args.notify_fd is None:  # the checks run once, in the process the user started
            check_fuse(args.allow_other)
            check_mountpoint(args.mountpoint.resolve(), nonempty="nonempty" in extra)
            check_service(target)
        if not args.foreground:
            start_daemon(daemon_argv(argv), args.log_file)
            return 0
        options = fuse_options(not args.read_write, args.allow_other, extra)
        return run_foreground(config, target, mountpoint, options, args.notify_fd)
    except MountError as exc:
        return report_failure(args, exc)


def report_failure(args: argparse.Namespace, exc: Exception) -> int:
    """One line for the user, also sent up the notify pipe when we are the detached daemon (the
    caller waiting on it prints it and exits non-zero); returns the exit status, 1."""
    if args.notify_fd is not None:
        os.write(args.notify_fd, f"omicsfs mount: {exc}\n".encode())
    print(f"omicsfs mount: {exc}", file=sys.stderr)
    return 1


def daemon_argv(argv: list[str]) -> list[str]:
    """The user's own arguments, with the mount point made absolute (the child runs in /)."""
    result = []
    for item in argv:
        result.append(
            os.path.abspath(item) if item and os.path.isdir(item) and not item.startswith("-") else item
        )
    return result


def run_unmount(args: argparse.Namespace) -> int:
    try:
        unmount(str(args.mountpoint.resolve()))
    except MountError as exc:
        print(f"omicsfs unmount: {exc}", file=sys.stderr)
        return 1
    return 0
