"""``omicsfs serve`` (the local HealthOmics storage service) and ``omicsfs admin`` (its routes)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path

from omicsfs.cli.options import LOG_LEVELS, default_help, size
from omicsfs.localservice.context import ServiceConfig


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the local HealthOmics storage service")
    serve.add_argument(
        "--data-dir", type=Path, help="state and files (default ~/.local/share/omicsfs/service)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=0, help="port (0 picks a free one; default 0)")
    serve.add_argument("--s3-port", type=int, default=0, help="port of the S3 access endpoint (default 0)")
    serve.add_argument(
        "--part-size",
        type=size,
        help=default_help("partSize of stored files, as AWS", ServiceConfig, "part_size"),
    )
    serve.add_argument("--s3-root", type=Path, help="folder standing in for S3 (default DATA_DIR/s3)")
    serve.add_argument(
        "--processing-delay", type=float,
        help=default_help("seconds before uploads and jobs progress", ServiceConfig, "processing_delay"),
    )  # fmt: skip
    serve.add_argument("--faults", default="", help="fault injection spec, e.g. 'seed=1;throttle=0.2'")
    serve.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, type=str.upper)

    admin = commands.add_parser("admin", help="talk to a running local service's admin routes")
    admin.add_argument("--endpoint-url", required=True, help="the service's URL")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    archive = admin_commands.add_parser("archive", help="move an ACTIVE read set to ARCHIVED")
    archive.add_argument("sequence_store_id")
    archive.add_argument("read_set_id")
    admin_commands.add_parser("stats", help="print request counts per operation")
    faults = admin_commands.add_parser("faults", help="replace the fault injection spec")
    faults.add_argument("spec")
    admin_commands.add_parser("drain", help="wait until background processing and jobs are idle")


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from omicsfs.localservice.faults import Faults, FaultSpecError
    from omicsfs.localservice.server import default_data_dir, serve

    try:
        faults = Faults.parse(args.faults)
    except FaultSpecError as exc:
        print(f"omicsfs serve: --faults: {exc}", file=sys.stderr)
        return 2
    data_dir = (args.data_dir or default_data_dir()).resolve()
    tunables = {"part_size": args.part_size, "processing_delay": args.processing_delay}
    config = ServiceConfig(
        data_dir=data_dir,
        s3_root=(args.s3_root or data_dir / "s3").resolve(),
        **{name: value for name, value in tunables.items() if value is not None},
    )
    try:
        return serve(config, args.host, args.port, faults, args.log_level, s3_port=args.s3_port)
    except OSError as exc:
        ports = f"{args.port} / --s3-port {args.s3_port}"
        print(f"omicsfs serve: cannot listen on {args.host}:{ports}: {exc.strerror}", file=sys.stderr)
        return 1


def run_admin(args: argparse.Namespace) -> int:
    base = args.endpoint_url.rstrip("/") + "/_omicsfs"
    if args.admin_command == "archive":
        request = urllib.request.Request(
            f"{base}/archive/{args.sequence_store_id}/{args.read_set_id}", method="POST"
        )
    elif args.admin_command == "stats":
        request = urllib.request.Request(f"{base}/stats")
    elif args.admin_command == "faults":
        request = urllib.request.Request(f"{base}/faults", data=args.spec.encode(), method="PUT")
    else:
        request = urllib.request.Request(f"{base}/drain", method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            print(json.dumps(json.load(response), indent=2))
        return 0
    except urllib.error.HTTPError as exc:
        print(f"omicsfs admin: {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"omicsfs admin: cannot reach {args.endpoint_url}: {exc.reason}", file=sys.stderr)
        return 1
