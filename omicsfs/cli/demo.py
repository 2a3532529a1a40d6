"""``omicsfs demo``: sample data in a local service, mounted, with commands to try.

The first run generates real sample data (sampledata.py: a small genome, reads aligned into an
indexed BAM and a CRAM, paired FASTQ, a uBAM) and loads it through the public API (sampleload.py:
import jobs and multipart uploads) into a local service in the data dir. A marker file written
only after the load finished is what later runs trust: they reuse the data as it is, and a run
that finds service state without the marker (an interrupted first load) starts the load over
rather than adding a second copy. Then the demo mounts in this process, prints the tree and
three commands (absolute paths, so they work pasted anywhere), and stays until Ctrl-C/SIGTERM,
which unmount cleanly; the service is stopped last.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import shlex
import shutil
import signal
import stat
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING

import trio

from omicsfs.backend.client import make_client, make_session
from omicsfs.cli.options import LOG_LEVELS
from omicsfs.config import MountConfig
from omicsfs.daemon.checks import Target, check_fuse, check_mountpoint
from omicsfs.daemon.errors import MountError
from omicsfs.daemon.ownedservice import LOCAL_REGION, OwnedService, ServiceStartError, use_local_credentials
from omicsfs.daemon.run import fuse_options, run_filesystem
from omicsfs.sample.data import make_sample
from omicsfs.sample.load import LoadedSample, load_sample

if TYPE_CHECKING:
    from types_boto3_omics.client import OmicsClient

log = logging.getLogger(__name__)

MARKER = "loaded.json"
STORE_NAME = "demo-cohort"
#: Folders the tree names without listing them: they hold the same files again under other names
#: (by-md5/ the references' contigs, and listing it would compute their MD5s).
ALIASES = ("by-id", "by-sample", "by-subject", ".jobs", "by-md5")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="sample data in a local service, mounted; Ctrl-C stops")
    demo.add_argument("mountpoint", type=Path, nargs="?", default=Path("omics"), help="default ./omics")
    demo.add_argument("--data-dir", type=Path, help="default ~/.local/share/omicsfs/demo")
    demo.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS, type=str.upper)


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "omicsfs" / "demo"


def run_demo(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data_dir = (args.data_dir or default_data_dir()).resolve()
    mountpoint = args.mountpoint.resolve()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop while loading is a clean stop
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(data_dir):
            with contextlib.suppress(FileExistsError):  # also a dead mount point (stat fails)
                mountpoint.mkdir(parents=True)
            check_fuse(allow_other=False)
            check_mountpoint(mountpoint)
            loaded = _marker(data_dir)
            use_local_credentials()
            with (
                open(data_dir / "service.log", "a") as service_log,  # htslib's notes stay out of the way
                OwnedService(data_dir / "service", processing_delay=0.05, stderr=service_log) as service,
            ):
                if loaded is None:
                    loaded = _load(service.url, data_dir)
                else:
                    _check_loaded(service.url, data_dir, loaded)
                    _say(f"reusing the sample data loaded earlier into {data_dir}")
                _mount(service.url, service.s3_url, mountpoint)
            if service.died is not None:
                raise MountError(f"the local service exited with status {service.died}")
    except (MountError, ServiceStartError) as exc:
        print(f"omicsfs demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("omicsfs demo: interrupted", file=sys.stderr)
        return 130
    _say(f"unmounted {mountpoint}; the data stays in {data_dir} for the next run")
    return 0


def _say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One demo per data dir: two services on one SQLite state would step on each other."""
    with open(data_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MountError(f"another omicsfs demo is using {data_dir}") from None
        yield


def _marker(data_dir: Path) -> LoadedSample | None:
    """The loaded sample, or None after clearing whatever an interrupted load left behind."""
    try:
        return LoadedSample(**json.loads((data_dir / MARKER).read_text()))
    except FileNotFoundError:
        pass
    if (data_dir / "service").exists():
        log.warning("an earlier load into %s did not finish; starting it over", data_dir)
        shutil.rmtree(data_dir / "service")
    return None


def _client(url: str) -> OmicsClient:
    return make_client(make_session(region=LOCAL_REGION), endpoint_url=url)


def _load(url: str, data_dir: Path) -> LoadedSample:
    sample_dir = data_dir / "sample"
    _say(f"generating sample data (reference, BAM, CRAM, FASTQ, uBAM) in {sample_dir} ...")
    files = make_sample(sample_dir, pairs=2000)
    _say("loading it into the local HealthOmics service (import jobs and multipart uploads) ...")

    def drain() -> None:
        request = urllib.request.Request(f"{url}/_omicsfs/drain", method="POST")
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()

    loaded = load_sample(_client(url), data_dir / "service" / "s3", files, drain, store_name=STORE_NAME)
    partial = data_dir / (MARKER + ".tmp")
    partial.write_text(json.dumps(asdict(loaded), indent=2))
    partial.replace(data_dir / MARKER)
    log.info("loaded: %s", loaded)
    return loaded


def _check_loaded(url: str, data_dir: Path, loaded: LoadedSample) -> None:
    stores = _client(url).list_sequence_stores(maxResults=100)["sequenceStores"]
    if loaded.sequence_store_id not in {store["id"] for store in stores}:
        raise MountError(
            f"{data_dir} says the sample is loaded, but its store is gone; start over with: rm -r {data_dir}"
        )


def _mount(url: str, s3_url: str, mountpoint: Path) -> None:
    config = MountConfig(uid=os.getuid(), gid=os.getgid())  # every other setting at its default
    target = Target(endpoint_url=url, region=LOCAL_REGION, s3_endpoint_url=s3_url)

    def ready() -> None:  # listing the mount needs the FUSE loop running: not from this thread
        threading.Thread(target=_announce, args=(mountpoint, url, sys.stdout), daemon=True).start()

    try:
        trio.run(run_filesystem, config, target, str(mountpoint), fuse_options(True, False, []), ready)
    except RuntimeError as exc:  # pyfuse3.init: fuse_session_mount failed
        raise MountError(f"mounting {mountpoint} failed: {exc}") from None


def _announce(mountpoint: Path, url: str, out: IO[str]) -> None:
    """The tree, the local service's endpoint (for ``omicsfs admin`` and the AWS CLI, e.g. to
    archive a read set as README's recipe does) and the commands to try."""
    try:
        lines = [
            f"mounted at {mountpoint}:", "", tree(mountpoint), "",
            f"The local HealthOmics service: {url}  (omicsfs admin --endpoint-url {url} stats)", "",
            "Try:", *commands(mountpoint),
        ]  # fmt: skip
    except (OSError, LookupError) as exc:
        log.error("the mount at %s does not look as expected: %s", mountpoint, exc)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    out.write("\n".join(lines) + "\n\nThe mount is read-only. Press Ctrl-C to unmount and stop.\n")
    out.flush()


def tree(root: Path) -> str:
    """Folders and files with sizes; alias folders (by-id/, ...) are named, not expanded."""
    lines = [f"{root.name}/"]

    def walk(folder: Path, indent: str) -> None:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        aliases = [entry.name + "/" for entry in entries if entry.name in ALIASES]
        for entry in entries:
            if entry.name in ALIASES:
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                lines.append(f"{indent}{entry.name}/")
                walk(Path(entry.path), indent + "  ")
            else:
                lines.append(f"{indent}{entry.name:<32} {_size(info.st_size):>9}")
        if aliases:
            lines.append(f"{indent}{'  '.join(aliases)}")

    walk(root, "  ")
    return "\n".join(lines)


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    raise AssertionError


def omicsfs_command() -> str:
    """How to run this omicsfs from a pasted command: the script beside this interpreter (a venv's
    ``omicsfs`` need not be on PATH), else the one on PATH, else ``python -m omicsfs``."""
    beside = Path(sys.executable).parent / "omicsfs"
    if beside.exists():
        return shlex.quote(str(beside))
    on_path = shutil.which("omicsfs")
    return shlex.quote(on_path) if on_path else f"{shlex.quote(sys.executable)} -m omicsfs"


def commands(root: Path) -> list[str]:
    """A region query through the BAM index, a CRAM decoded with its reference found on the mount
    (``omicsfs env``: REF_PATH at the by-md5 view, no -T, no network), and the read set's metadata
    as extended attributes; paths absolute and shell-quoted."""
    store = root / "sequence-stores" / STORE_NAME
    names = sorted(os.listdir(store))
    bam = store / next(name for name in names if name.endswith(".bam") and f"{name}.bai" in names)
    cram = store / next(name for name in names if name.endswith(".cram"))
    q = shlex.quote
    return [
        f"samtools view -c {q(str(bam))} chr1:10000-20000",
        f'eval "$({omicsfs_command()} env {q(str(root))})"; samtools view {q(str(cram))} | head',
        f"getfattr -d {q(str(bam))}",
    ]
