"""``omicsfs env``'s lines for mount points htslib's path syntax treats specially (omicsfs/cli/env.py)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from omicsfs.cli.env import EnvError, env_lines


def _exported(lines: list[str]) -> dict[str, str]:
    """What a POSIX shell sets from the lines (the real ``sh``, so quoting is checked too)."""
    script = "\n".join(lines) + '\nprintf "%s\\n%s\\n" "$REF_PATH" "$REF_CACHE"'
    ref_path, ref_cache = subprocess.run(["sh", "-c", script], check=True, capture_output=True,
                                         text=True).stdout.splitlines()  # fmt: skip
    return {"REF_PATH": ref_path, "REF_CACHE": ref_cache}


def test_both_variables_name_the_by_md5_pattern() -> None:
    assert _exported(env_lines("/mnt/omics/")) == {
        "REF_PATH": "/mnt/omics/reference-stores/by-md5/%2s/%2s/%s",
        "REF_CACHE": "/mnt/omics/reference-stores/by-md5/%2s/%2s/%s",
    }


def test_spaces_and_quotes_survive_the_shell_and_colons_are_doubled_in_ref_path_only() -> None:
    exported = _exported(env_lines("/mnt/it's a:mount"))
    assert exported["REF_PATH"] == "/mnt/it's a::mount/reference-stores/by-md5/%2s/%2s/%s"
    assert exported["REF_CACHE"] == "/mnt/it's a:mount/reference-stores/by-md5/%2s/%2s/%s"
    assert shlex.split(env_lines("/mnt/x y")[0]) == [
        "export",
        "REF_PATH=/mnt/x y/reference-stores/by-md5/%2s/%2s/%s",
    ]


def test_a_percent_sign_cannot_be_named() -> None:
    with pytest.raises(EnvError, match="'%'"):
        env_lines("/mnt/100%s")
