"""``omicsfs install-helper``: links mount(8)'s helper to this installation, and only that."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from omicsfs.cli.fstab import install_helper

SCRIPT = Path(sysconfig.get_path("scripts")) / "mount.fuse.omicsfs"


def test_install_links_the_console_script_and_remove_unlinks(tmp_path: Path) -> None:
    target = tmp_path / "mount.fuse.omicsfs"
    assert install_helper(target) == 0
    assert target.readlink() == SCRIPT
    assert SCRIPT.exists()  # the [project.scripts] entry point is installed
    target.unlink()
    target.symlink_to("/somewhere/else")
    assert install_helper(target) == 0  # a stale link from an older installation is replaced
    assert target.readlink() == SCRIPT
    assert install_helper(target, remove=True) == 0
    assert not target.is_symlink()


def test_a_file_that_is_not_our_link_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mount.fuse.omicsfs"
    target.write_text("#!/bin/sh\n")
    for remove in (False, True):
        assert install_helper(target, remove=remove) == 1
        assert capsys.readouterr().err == (
            f"omicsfs install-helper: {target} exists and is not a link made by omicsfs; left alone\n"
        )
    assert target.read_text() == "#!/bin/sh\n"
