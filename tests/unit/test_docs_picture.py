"""The picture at the top of README.md is a well-formed SVG that README links to."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


def test_the_readme_picture_is_an_svg_with_the_read_path() -> None:
    assert "](docs/omicsfs.svg)" in (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    root = ET.parse(ROOT / "docs" / "omicsfs.svg").getroot()
    assert root.tag == f"{SVG}svg"
    text = " ".join("".join(node.itertext()) for node in root.iter(f"{SVG}text"))
    for step in ("Linux kernel", "FUSE", "omicsfs block cache", "GetReadSet", "AWS HealthOmics"):
        assert step in text
    assert "sequence-stores/" in text
