"""``scripts/setup`` installs only what is missing: ``scripts/serve`` (base) after
``scripts/setup dev`` must not reinstall.

Runs the real script on a copy of the project whose ``.venv/bin/python`` only records
the pip commands it is given.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/pip.log"\n')
    python.chmod(0o755)
    return tmp_path


def setup(project: Path, *extras: str) -> list[str]:
    """Run ``scripts/setup [extras]``; the ``pip install -e`` commands it ran."""
    log = project / "pip.log"
    log.unlink(missing_ok=True)
    subprocess.run(
        [project / "scripts" / "setup", *extras],
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
        timeout=60,
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split("-e ", 1)[1] for line in lines if " -e " in line]


def test_base_after_dev_installs_nothing_and_new_extras_keep_the_old(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    assert setup(project, "dev") == [".[dev]"]
    assert setup(project) == []  # what scripts/serve runs
    assert setup(project, "dev") == []
    assert setup(project, "bench") == [".[bench,dev]"]
    assert setup(project, "dev,bench") == []


def test_a_changed_pyproject_installs_again(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    assert setup(project) == ["."]
    assert setup(project) == []
    with (project / "pyproject.toml").open("a") as file:
        file.write("\n# changed\n")
    assert setup(project) == ["."]
