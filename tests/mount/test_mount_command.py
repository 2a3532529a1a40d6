"""``omicsfs mount`` as a user runs it (a real subprocess against the local service): one line
and exit 1 for every failure, ``-o auto_unmount``, store IDs or names, the pre-mount probe's
retries, where a detached daemon logs, a private ``--cache-dir``, and the CLI conventions."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from omicsfs.cli.main import version
from omicsfs.daemon.checks import CONNECT_ATTEMPTS
from omicsfs.daemon.logs import syslog_available
from omicsfs.daemon.mounttable import mount_table
from omicsfs.sample.load import LoadedSample
from tests.localservice import RunningService
from tests.mount.builders import fastq_gz
from tests.mounthelper import helper_installed
from tests.mounting import Mounted, aws_env, omicsfs
from tests.procs import cmdline, pids_with, wait_gone
from tests.service.helpers import upload_file


def _one_line_failure(result: subprocess.CompletedProcess[str], expected: str) -> str:
    """The whole of stderr is one ``omicsfs mount:`` line holding ``expected``; exit 1."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("omicsfs mount: "), result.stderr
    assert expected in lines[0], result.stderr
    assert result.stdout == ""
    return lines[0]


@contextlib.contextmanager
def _unmounted_afterwards(point: Path) -> Iterator[None]:
    try:
        yield
    finally:
        if str(point) in mount_table():
            subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False)


def test_mount_failures_are_one_line_without_tracebacks_or_botocore_chatter(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    url = loaded_service.url
    point = tmp_path / "mnt"
    point.mkdir()
    port = url.rsplit(":", 1)[1]
    cases = [
        (["--endpoint-url", url, "--profile", "nosuch"], "AWS profile 'nosuch' is not in ~/.aws/config"),
        (["--endpoint-url", f"127.0.0.1:{port}"], f"did you mean http://127.0.0.1:{port}?"),
        (["--endpoint-url", "ftp://127.0.0.1:21"], "is not an http:// or https:// URL"),
        (["--endpoint-url", url, "-o", "bogus"], "fuse: unknown option(s): `-o bogus'"),
        (["--endpoint-url", url, "--sequence-store", "nosuch"], "'nosuch': no sequence store has that"),
        (["--endpoint-url", url, "--reference-store", "nosuch"], "(the stores: references ("),
    ]
    for extra, expected in cases:
        result = omicsfs("mount", str(point), *extra)
        line = _one_line_failure(result, expected)
        assert "Traceback" not in result.stderr
        assert "Found credentials" not in result.stderr
        assert str(point) not in mount_table(), line
    # A mount that works prints one line on stdout, and nothing from botocore on stderr.
    result = omicsfs("mount", str(point), "--endpoint-url", url, "--log-file", str(tmp_path / "log"))
    with _unmounted_afterwards(point):
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert result.stdout == f"omicsfs: mounted {point}; the daemon logs to {tmp_path / 'log'}\n"
        assert omicsfs("unmount", str(point)).returncode == 0
    assert "AWS credentials from env" in (tmp_path / "log").read_text()


class ClosingServer:
    """Accepts connections and closes them at once, counting them: an endpoint that never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.sock.accept()
                self.accepted += 1
                connection.close()

    def close(self) -> None:
        self.sock.close()


def test_an_endpoint_that_cannot_be_reached_fails_after_two_tries_not_the_whole_backoff(
    tmp_path: Path,
) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    server = ClosingServer()
    try:
        result = omicsfs("mount", str(point), "--endpoint-url", server.url)
        _one_line_failure(result, f"cannot reach {server.url}")
        # --retries (10) covers throttling and 5xx; a connection that fails is tried twice.
        assert server.accepted == CONNECT_ATTEMPTS == 2
    finally:
        server.close()
    refused = omicsfs("mount", str(point), "--endpoint-url", server.url)  # now nothing listens
    _one_line_failure(refused, f"cannot reach {server.url}")


@pytest.mark.parametrize(("kind", "spec"), [("throttle", "throttle@ListSequenceStores=1/2"),
                                            ("error", "error@ListSequenceStores=1/2")])  # fmt: skip
def test_the_pre_mount_probe_retries_throttling_and_5xx(tmp_path: Path, kind: str, spec: str) -> None:
    service = RunningService(tmp_path / "data")
    try:
        service.client().create_sequence_store(name="probed")
        service.set_faults(spec)
        service.client().list_sequence_stores()  # call 1 of the rule passes: the mount's probe is call 2
        point = tmp_path / "mnt"
        point.mkdir()
        result = omicsfs("mount", str(point), "--endpoint-url", service.url, "--retry-delay", "0.01",
                         "--log-file", str(tmp_path / "log"))  # fmt: skip
        with _unmounted_afterwards(point):
            assert result.returncode == 0, result.stderr
            injected = service.admin("GET", "stats")["faults"]["injected"]
            assert sum(count for name, count in injected.items() if kind in name) >= 1, injected
            assert os.listdir(point / "sequence-stores") == ["by-id", "probed"]
            assert omicsfs("unmount", str(point)).returncode == 0
    finally:
        service.stop()


def test_auto_unmount_returns_and_unmounts_when_the_daemon_is_killed(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    log = tmp_path / "log"
    args = ["mount", str(point), "--endpoint-url", loaded_service.url, "-o", "auto_unmount",
            "--log-file", str(log)]  # fmt: skip
    result = omicsfs(*args)  # hung for good before: the helper libfuse leaves behind held the pipe
    with _unmounted_afterwards(point):
        assert result.returncode == 0, result.stderr
        assert "demo-cohort" in os.listdir(point / "sequence-stores")
        (daemon,) = pids_with(str(point), "--notify-fd")
        (helper,) = pids_with("fusermount3", str(point))
        assert "auto_unmount" in ",".join(cmdline(helper))
        os.kill(daemon, signal.SIGKILL)
        assert wait_gone(daemon)
        assert wait_gone(helper)  # it unmounts the folder, then exits
        assert str(point) not in mount_table()
        # --auto-unmount is the same; a clean unmount of such a mount ends the helper too.
        again = omicsfs("mount", str(point), "--endpoint-url", loaded_service.url, "--auto-unmount",
                        "--log-file", str(log))  # fmt: skip
        assert again.returncode == 0, again.stderr
        (helper,) = pids_with("fusermount3", str(point))
        assert omicsfs("unmount", str(point)).returncode == 0
        assert wait_gone(helper)
        assert str(point) not in mount_table()


def test_store_filters_take_ids_or_names_and_refuse_unknown_or_ambiguous_ones(tmp_path: Path) -> None:
    service = RunningService(tmp_path / "data")
    try:
        omics = service.client()
        alpha = omics.create_sequence_store(name="alpha")["id"]
        twins = sorted(omics.create_sequence_store(name="twin")["id"] for _ in range(2))
        omics.create_sequence_store(name="other")
        refs = omics.create_reference_store(name="refs")["id"]
        upload_file(omics, alpha, {"SOURCE1": fastq_gz(5)}, "FASTQ", name="reads")
        service.drain()
        point = tmp_path / "mnt"
        point.mkdir()
        ambiguous = omicsfs("mount", str(point), "--endpoint-url", service.url, "--sequence-store", "twin")
        names = f"twin ({twins[0]}), twin ({twins[1]})"
        _one_line_failure(ambiguous, f"--sequence-store 'twin' names 2 sequence stores: {names}; give one ID")
        unknown = omicsfs("mount", str(point), "--endpoint-url", service.url, "--sequence-store", "beta")
        line = _one_line_failure(unknown, "--sequence-store 'beta': no sequence store has that ID or name")
        assert f"alpha ({alpha})" in line
        assert str(point) not in mount_table()

        mounted = Mounted(
            point, service.url, "--sequence-store", "alpha", "--sequence-store", twins[1],
            "--sequence-store", alpha, "--reference-store", "refs",
        )  # fmt: skip
        try:
            stores = mounted.path / "sequence-stores"
            # Only the chosen stores are listed, so the one twin keeps its plain name.
            assert sorted(os.listdir(stores)) == ["alpha", "by-id", "twin"]
            assert sorted(os.listdir(stores / "alpha")) == sorted(
                [".jobs", "by-id", "by-sample", "by-subject", "reads.fastq.gz"]
            )
            assert sorted(os.listdir(stores / "by-id")) == sorted([alpha, twins[1]])
            assert os.listdir(mounted.path / "reference-stores" / "by-id") == [refs]
        finally:
            assert mounted.stop() == 0
    finally:
        service.stop()


@pytest.mark.skipif(syslog_available(), reason="this machine has a syslog at /dev/log")
def test_a_detached_daemon_without_syslog_logs_under_the_xdg_state_dir(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    state = tmp_path / "state"
    result = omicsfs("mount", str(point), "--endpoint-url", loaded_service.url,
                     env=aws_env(XDG_STATE_HOME=str(state)))  # fmt: skip
    with _unmounted_afterwards(point):
        assert result.returncode == 0, result.stderr
        log = state / "omicsfs" / (str(point).strip("/").replace("/", "-") + ".log")
        assert result.stdout == f"omicsfs: mounted {point}; the daemon logs to {log}\n"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
        with pytest.raises(FileNotFoundError):
            (point / "sequence-stores" / "demo-cohort" / "nothing.bam").stat()
        assert omicsfs("unmount", str(point)).returncode == 0
    text = log.read_text()
    assert f"omicsfs is mounted at {point}" in text
    assert f"unmounted {point}" in text
    # Without XDG_STATE_HOME: ~/.local/state/omicsfs/.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in aws_env(HOME=str(home)).items() if k != "XDG_STATE_HOME"}
    result = omicsfs("mount", str(point), "--endpoint-url", loaded_service.url, env=env)
    with _unmounted_afterwards(point):
        assert result.returncode == 0, result.stderr
        assert f"the daemon logs to {home}/.local/state/omicsfs/" in result.stdout
        assert omicsfs("unmount", str(point)).returncode == 0


def _modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_the_cache_dir_and_everything_in_it_are_private(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    os.chmod(cache, 0o755)
    (cache / "metadata.sqlite3").touch(mode=0o644)  # as an older omicsfs left it
    os.chmod(cache / "metadata.sqlite3", 0o644)
    mounted = Mounted(tmp_path / "mnt", loaded_service.url, "--cache-dir", str(cache))
    try:
        data = (mounted.path / "sequence-stores/demo-cohort/NA12878-reads_1.fastq.gz").read_bytes()
        assert data
    finally:
        assert mounted.stop() == 0
    assert "made it 0700" in mounted.log
    modes = _modes(cache)
    assert any(name.startswith("parts/") for name in modes), modes  # the disk tier wrote parts
    assert "metadata.sqlite3" in modes
    for name, mode in modes.items():
        expected = 0o700 if (cache / name).is_dir() else 0o600
        assert mode == expected, (name, oct(mode))

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    (shared / "someone-elses.txt").write_text("keep")
    point = tmp_path / "mnt2"
    point.mkdir()
    result = omicsfs("mount", str(point), "--endpoint-url", loaded_service.url, "--cache-dir", str(shared))
    _one_line_failure(result, f"--cache-dir {shared} can be read by others (mode 0755)")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # left as it was
    assert sorted(os.listdir(shared)) == ["someone-elses.txt"]
    assert str(point) not in mount_table()


def test_version_short_foreground_debug_and_owners_by_name(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    shown = omicsfs("--version")
    assert shown.returncode == 0
    assert shown.stdout == f"omicsfs {version()}\n"
    nobody = pwd.getpwnam("nobody")
    point = tmp_path / "mnt"
    point.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "omicsfs", "mount", str(point), "--endpoint-url", loaded_service.url,
         "-f", "--debug", "--uid", "nobody", "--gid", str(nobody.pw_gid)],
        stderr=subprocess.PIPE, text=True, env=aws_env(),
    )  # fmt: skip
    assert process.stderr is not None
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "omicsfs is mounted at" in line:
                break
        info = (point / "sequence-stores" / "demo-cohort").stat()
        assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, "".join(lines)
    assert " DEBUG " in "".join(lines) + rest  # --debug is --log-level DEBUG
    assert str(point) not in mount_table()
    unknown = omicsfs("mount", str(point), "--endpoint-url", loaded_service.url, "--uid", "no-such-user")
    assert unknown.returncode == 2
    assert "--uid: no such user: 'no-such-user'" in unknown.stderr


def test_fstab_options_may_be_spelt_with_dashes(
    tmp_path: Path, loaded_service: RunningService, loaded: LoadedSample
) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    options = f"endpoint-url={loaded_service.url},cache-size=64M,listing-ttl=5,sequence-store=demo-cohort,ro"
    with helper_installed():
        result = subprocess.run(
            ["mount", "-t", "fuse.omicsfs", "-o", options, "omicsfs", str(point)],
            capture_output=True, text=True, env=aws_env(), cwd=tmp_path, timeout=120,
        )  # fmt: skip
    with _unmounted_afterwards(point):
        assert result.returncode == 0, result.stderr
        (daemon,) = pids_with(str(point), "--notify-fd")
        argv = cmdline(daemon)
        assert argv[argv.index("--cache-size") + 1] == "64M"
        assert argv[argv.index("--listing-ttl") + 1] == "5"
        assert sorted(os.listdir(point / "sequence-stores")) == ["by-id", "demo-cohort"]
        assert subprocess.run(["umount", str(point)], capture_output=True).returncode == 0
        assert wait_gone(daemon)
