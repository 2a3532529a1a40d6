"""A service of its own holding the sample plus every reference the by-md5 and matching tests
need (htslib-test's, soft-masked, CRLF, one whose lines do not fit its .fai, a superset of the
sample's), and CRAMs made against them uploaded as read sets; mounts on it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from omicsfs.sample.data import SampleFiles
from omicsfs.sample.load import LoadedSample, load_sample
from tests.localservice import RunningService
from tests.mounting import Mounted
from tests.references.data import HTSLIB_TEST, Made, make_all
from tests.service.helpers import import_reference, upload_file


@dataclass(frozen=True)
class Loaded:
    sample: LoadedSample
    references: dict[str, str]  # name -> ARN
    read_sets: dict[str, str]  # name -> ID, in the sample's sequence store


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory, sample: SampleFiles) -> Made:
    if not HTSLIB_TEST.is_dir():
        pytest.fail("Debian's htslib-test package is missing: run scripts/setup.sh")
    return make_all(tmp_path_factory.mktemp("references-data"), sample.reference)


@pytest.fixture(scope="session")
def refs_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = RunningService(tmp_path_factory.mktemp("references-service"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def refs_loaded(refs_service: RunningService, sample: SampleFiles, made: Made) -> Loaded:
    omics = refs_service.client()
    loaded = load_sample(omics, refs_service.s3_root, sample, refs_service.drain, part_size=65536)
    references = {"demo-genome": loaded.reference_arn}
    for name, fasta in (
        ("ce-htslib", HTSLIB_TEST / "ce.fa"), ("auxf", HTSLIB_TEST / "auxf.fa"),
        ("xx-htslib", HTSLIB_TEST / "xx.fa"),
        ("masked", made.masked), ("crlf", made.crlf), ("tabbed", made.tabbed), ("superset", made.superset),
    ):  # fmt: skip
        references[name] = import_reference(refs_service, fasta, name)
    store = loaded.sequence_store_id
    read_sets = {
        name: upload_file(
            omics, store, {"SOURCE1": cram.path}, "CRAM", name=name, referenceArn=references[name]
        )
        for name, cram in (("masked", made.masked_cram), ("crlf", made.crlf_cram))
    }
    refs_service.drain()
    return Loaded(loaded, references, read_sets)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("references-cache")


@pytest.fixture(scope="module")
def mnt(
    tmp_path_factory: pytest.TempPathFactory,
    refs_service: RunningService,
    refs_loaded: Loaded,
    cache_dir: Path,
) -> Iterator[Mounted]:
    mounted = Mounted(tmp_path_factory.mktemp("refs-mnt"), refs_service.url, "--cache-dir", str(cache_dir))
    yield mounted
    assert mounted.stop() == 0


def omicsfs_env(mountpoint: Path) -> dict[str, str]:
    """The variables ``eval "$(omicsfs env MOUNTPOINT)"`` sets, from the real command."""
    printed = subprocess.run([sys.executable, "-m", "omicsfs", "env", str(mountpoint)], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
    values = {}
    for line in printed.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0]
    return values


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without any REF_PATH/REF_CACHE of the caller's, HOME in a folder of the
    test's (htslib's default cache would be HOME/.cache/hts-ref)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REF_PATH", "REF_CACHE", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


#: Mounts an empty tmpfs over each of the first N arguments, then runs the rest.
_HIDE_THEN_RUN = 'n=$1; shift; while [ "$n" -gt 0 ]; do mount -t tmpfs none "$1" || exit 99; ' \
                 'shift; n=$((n - 1)); done; exec "$@"'  # fmt: skip


def offline(args: list[str], env: dict[str, str], hidden: list[Path]) -> subprocess.CompletedProcess[str]:
    """Runs a command (as root) in a network namespace of its own, where only a loopback that is
    down exists, and a mount namespace in which the ``hidden`` folders are empty: a fallback to
    the internet, or to a local FASTA named by an @SQ UR tag, fails instead of going unnoticed.
    The omicsfs mount stays visible."""
    command = ["unshare", "--net", "--mount", "sh", "-c", _HIDE_THEN_RUN, "sh", str(len(hidden)),
               *map(str, hidden), *args]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


Offline = Callable[[list[str], dict[str, str]], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def run_offline(sample: SampleFiles, made: Made) -> Offline:
    """``offline`` with every folder hidden that holds a FASTA the test CRAMs could be decoded
    against without the mount."""
    hidden = [sample.reference.parent, made.fasta_folder, HTSLIB_TEST]
    return lambda args, env: offline(args, env, hidden)


def wait_for_lines(mounted: Mounted, *texts: str, count: int, timeout: float = 60.0) -> list[str]:
    """The daemon's log lines holding every one of ``texts``, once there are ``count`` of them
    (its stderr is read by a thread, so a line can trail the request that logged it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in list(mounted.lines) if all(text in line for text in texts)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} log lines with {texts}, not {count}:\n{mounted.log}")
        time.sleep(0.02)


def samtools(*args: str | Path) -> str:
    return subprocess.run(["samtools", *map(str, args)], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def omics(refs_service: RunningService) -> Any:
    return refs_service.client()
