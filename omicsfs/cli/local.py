"""``omicsfs mount --local DATA_DIR MOUNTPOINT``: a local service's data dir, mounted in one step.

The mounting process starts ``omicsfs serve`` on that data dir as its own child on a private
loopback port, points itself at it with dummy credentials, mounts, and stops the service after
unmounting. Detached (the default), the caller only runs the checks and starts the daemon; the
daemon owns the service, so the service lives exactly as long as the mount (see ownedservice.py):
a dead service unmounts the mount with an error and exit status 1, a killed daemon takes its
service with it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from omicsfs.cli.mount import announce_mounted, daemon_argv, extra_fuse_options, report_failure, run_mount
from omicsfs.daemon.checks import check_fuse, check_mountpoint
from omicsfs.daemon.detach import start_daemon
from omicsfs.daemon.errors import MountError
from omicsfs.daemon.logs import choose_destination, configure_logging
from omicsfs.daemon.ownedservice import LOCAL_REGION, OwnedService, ServiceStartError, use_local_credentials

log = logging.getLogger(__name__)


def check_data_dir(data_dir: Path) -> None:
    if not data_dir.is_dir():
        raise MountError(
            f"local data dir {data_dir} does not exist"
            " (make one with: omicsfs serve --data-dir DIR, or omicsfs demo --data-dir DIR)"
        )


def run_mount_command(args: argparse.Namespace, argv: list[str]) -> int:
    """``omicsfs mount``, from the command line or from the mount(8) helper: a local data dir
    served privately with ``--local``, else HealthOmics (or ``--endpoint-url``)."""
    if args.local is not None:
        return run_local_mount(args, argv)
    return run_mount(args, argv)


def run_local_mount(args: argparse.Namespace, argv: list[str]) -> int:
    if args.endpoint_url is not None:
        print("omicsfs mount: --local and --endpoint-url cannot be used together", file=sys.stderr)
        return 2
    data_dir = args.local.resolve()
    try:
        check_data_dir(data_dir)
        if not args.foreground:  # the caller: checks, then the daemon, which owns the service
            configure_logging(args.log_level)
            mountpoint = args.mountpoint.resolve()
            check_fuse(args.allow_other)
            check_mountpoint(mountpoint, nonempty="nonempty" in extra_fuse_options(args))
            destination = choose_destination(args.log_file, str(mountpoint))
            start_daemon(daemon_argv(argv), destination)
            announce_mounted(str(mountpoint), destination)
            return 0
        # A stop asked for before the mount's own handler is in place still stops the service.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        use_local_credentials()  # before the service starts: it must not inherit a real profile either
        service = OwnedService(data_dir)
    except (MountError, ServiceStartError) as exc:
        return report_failure(args, exc)
    args.endpoint_url, args.profile = service.url, None
    args.s3_endpoint_url = service.s3_url
    args.region = args.region or LOCAL_REGION
    try:
        code = run_mount(args, argv)
    except KeyboardInterrupt:
        code = 1
    finally:
        service.stop()
    if service.died is not None:
        print(f"omicsfs mount: the local service exited with status {service.died}; unmounted",
              file=sys.stderr)  # fmt: skip
        return 1
    return code
