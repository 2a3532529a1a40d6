"""The units in systemd/ pass ``systemd-analyze verify`` (as scripts/verify-units.sh runs it in
CI), and the check is real: a unit with a typo or a missing binary fails it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from omicsfs.daemon.mounttable import mount_table
from tests.localservice import env_without_aws

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")


def verify(units: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "OMICSFS_BIN": str(Path(sys.executable).parent / "omicsfs")}
    return subprocess.run(
        ["bash", str(ROOT / "scripts/verify-units.sh"), str(units)], capture_output=True, text=True, env=env
    )


@needs_analyze
def test_the_units_verify() -> None:
    result = verify(UNITS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "verify-units: omicsfs-serve.service omicsfs@.service ok"


@needs_analyze
@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("Restart=on-failure", "Restart=sometimes", "Failed to parse service restart specifier"),
        ("KillMode=mixed", "KilMode=mixed", "Unknown key 'KilMode'"),
        ("ExecStop=-/usr/local/bin/omicsfs", "ExecStop=/usr/local/bin/nothere", "nothere is not executable"),
    ],
)
def test_a_broken_unit_fails(tmp_path: Path, old: str, new: str, complaint: str) -> None:
    for unit in UNITS.glob("*.service"):
        shutil.copy(unit, tmp_path / unit.name)
    template = tmp_path / "omicsfs@.service"
    assert old in template.read_text()
    template.write_text(template.read_text().replace(old, new))
    result = verify(tmp_path)
    assert result.returncode == 1
    assert complaint in result.stderr


def test_the_mount_unit_runs_omicsfs_in_the_foreground_from_its_env_file() -> None:
    unit = (UNITS / "omicsfs@.service").read_text()
    assert "EnvironmentFile=/etc/omicsfs/%i.env" in unit
    assert "ExecStart=/usr/local/bin/omicsfs mount ${MOUNTPOINT} --foreground $OMICSFS_OPTIONS" in unit
    for key in ("MOUNTPOINT=", "OMICSFS_OPTIONS="):
        assert any(line.startswith(key) for line in (UNITS / "example.env").read_text().splitlines())
    # Any of these would hide the mount in a private mount namespace.
    for option in ("PrivateTmp=", "ProtectSystem=", "ProtectHome=", "PrivateDevices=", "PrivateMounts="):
        assert not any(line.startswith(option) for line in unit.splitlines())


def unit_command(unit: str, key: str, env: dict[str, str]) -> list[str]:
    """An Exec line as systemd expands it: ${VAR} is one word, $VAR splits on spaces."""
    line = next(line for line in unit.splitlines() if line.startswith(key + "="))
    words = []
    for word in line.split("=", 1)[1].lstrip("-").split():
        if word.startswith("${"):
            words.append(env[word[2:-1]])
        elif word.startswith("$"):
            words.extend(env[word[1:]].split())
        else:
            words.append(word.replace("/usr/local/bin/omicsfs", str(Path(sys.executable).parent / "omicsfs")))
    return words


def test_the_units_exec_lines_mount_and_unmount(local_data: Path, tmp_path: Path) -> None:
    """ExecStart and ExecStop, expanded as systemd does, with sd_notify: READY=1 comes once the
    folder is mounted, ExecStop unmounts and the main process then exits 0."""
    unit = (UNITS / "omicsfs@.service").read_text()
    assert "Type=notify" in unit
    point = tmp_path / "mnt"
    point.mkdir()
    env = {"MOUNTPOINT": str(point), "OMICSFS_OPTIONS": f"--local {local_data} --log-level INFO"}
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    run_env = {**env_without_aws(), "NOTIFY_SOCKET": str(tmp_path / "notify")}
    main = subprocess.Popen(
        unit_command(unit, "ExecStart", env), env=run_env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert notify.recv(100) == b"READY=1"
        assert mount_table()[str(point)] == "fuse.omicsfs"
        assert subprocess.run(unit_command(unit, "ExecStop", env), env=run_env).returncode == 0
        _, err = main.communicate(timeout=60)
        assert main.returncode == 0, err
        assert str(point) not in mount_table()
    finally:
        notify.close()
        if main.poll() is None:
            main.kill()
        if str(point) in mount_table():
            subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False)
