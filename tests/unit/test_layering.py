"""The import contracts (pyproject.toml, checked by ``lint-imports`` in scripts/lint) cover
every top-level module: one added later is placed in the layering, or this fails."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import hookline

ROOT = Path(__file__).resolve().parents[2]


def test_every_top_level_module_is_above_or_below_the_front_ends() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {c["name"]: c for c in config["contracts"]}
    top = next(c for c in contracts.values() if c["type"] == "layers")
    above = {m.strip() for layer in top["layers"] for m in layer.split("|")}
    below = next(
        set(c["source_modules"])
        for c in contracts.values()
        if c["type"] == "forbidden" and set(c["forbidden_modules"]) == above
    )
    modules = {
        f"hookline.{m.name}"
        for m in pkgutil.iter_modules(hookline.__path__)
        if m.name != "__main__"
    }
    assert modules - above - below == set()
    assert above & below == set()
