"""The README's Python blocks run as written, in a fresh interpreter beside the demo database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- not-run: [^>]*-->\s*)?```(\w+)\n(.*?)```", re.DOTALL)


def blocks(language: str) -> list[tuple[int, str]]:
    """The README's fenced blocks in ``language`` (line number, text), except those marked not-run."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, m.group(3))
        for m in BLOCK.finditer(text)
        if m.group(2) == language and not m.group(1)
    ]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """A folder with the demo county loaded into var/geogrid.sqlite, as `geogrid demo` leaves it."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "boundaries").symlink_to(ROOT / "boundaries")
    geogrid = Path(sys.executable).with_name("geogrid")
    subprocess.run([str(geogrid), "demo"], cwd=folder, check=True, capture_output=True, timeout=300)
    return folder


@pytest.mark.parametrize(
    ("line", "code"), blocks("python"), ids=lambda v: str(v) if isinstance(v, int) else ""
)
def test_python_block_runs_as_written(demo_folder, line, code):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=demo_folder, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"README.md line {line}:\n{done.stderr[-3000:]}"


def test_the_readme_has_python_blocks():
    assert len(blocks("python")) >= 3
