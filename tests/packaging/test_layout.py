"""Every package folder is installed, inside the odexport namespace only."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_and_nothing_installs_top_level_models_or_cli():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = {"odexport." + ".".join(p.parent.relative_to(ROOT / "odexport").parts)
             for p in (ROOT / "odexport").rglob("__init__.py")}
    found = {name.rstrip(".") for name in found} | {"odexport.cli", "odexport.models"}
    assert found == listed
    assert all(name == "odexport" or name.startswith("odexport.") for name in listed)
    assert mapping["odexport.cli"] == "cli" and mapping["odexport.models"] == "models"
