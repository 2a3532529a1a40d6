"""The installed distribution's metadata, as pip builds it from pyproject.toml."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_license_is_an_spdx_expression() -> None:
    """A license table (``{ text = ... }``) made setuptools print a deprecation warning at every
    install; the SPDX string becomes ``License-Expression`` (PEP 639, setuptools >= 77)."""
    project = tomllib.loads(PYPROJECT.read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]
    assert importlib.metadata.metadata("omicsfs")["License-Expression"] == "Apache-2.0"
