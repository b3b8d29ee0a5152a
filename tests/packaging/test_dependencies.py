"""What pyproject.toml declares: ranges that leave a user's own torch in place, optional extras for the
features few conversions use, and the photographs shipped inside the package."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from odexport.extras import EXTRAS
from odexport.inputs import PHOTOGRAPHS

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(names: list[str]) -> dict[str, Requirement]:
    return {requirement.name.lower(): requirement for requirement in map(Requirement, names)}


RUNTIME = _requirements(PROJECT["project"]["dependencies"])
OPTIONAL = {extra: _requirements(names) for extra, names in PROJECT["project"]["optional-dependencies"].items()}


def _lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(bounds) == 1, f"{requirement} declares no single lower bound"
    return bounds[0]


def test_runtime_dependencies_are_ranges_with_a_lower_bound_never_pins():
    for requirement in RUNTIME.values():
        operators = {spec.operator for spec in requirement.specifier}
        assert not operators & {"==", "===", "~="}, f"{requirement} pins a version"
        _lower_bound(requirement)


def test_the_installed_torch_is_inside_the_declared_range_and_so_are_newer_releases():
    torch = RUNTIME["torch"]
    installed = Version(metadata.version("torch"))
    assert _lower_bound(torch) <= installed
    assert torch.specifier.contains(installed.public)
    # A user's newer minor release, as in the issue, must be accepted.
    assert torch.specifier.contains(f"{installed.major}.{installed.minor + 1}.1")


def test_heavy_optional_features_are_extras_not_requirements():
    assert not {"nncf", "matplotlib", "scikit-image", "scikit-learn"} & set(RUNTIME)
    assert {module: extra.extra for module, extra in EXTRAS.items()} == {"nncf": "int8", "matplotlib": "plot"}
    for module, extra in EXTRAS.items():
        assert module in OPTIONAL[extra.extra], (module, OPTIONAL[extra.extra])


def test_dev_installs_every_extra_and_the_test_tools():
    dev = OPTIONAL["dev"]
    assert set(dev["odexport"].extras) == {extra.extra for extra in EXTRAS.values()}
    assert {"pytest", "hypothesis"} <= set(dev)


def test_runtime_imports_are_declared():
    """Pillow reads images and psutil reads memory/CPUs: neither comes with torch, so both are declared."""
    assert {"pillow", "psutil"} <= set(RUNTIME)
    torch_requires = {Requirement(r).name.lower() for r in metadata.requires("torch") or ()}
    assert "pillow" not in torch_requires


def test_the_sample_photographs_and_their_licences_ship_as_package_data():
    patterns = PROJECT["tool"]["setuptools"]["package-data"]["odexport"]
    shipped = {path.name for pattern in patterns for path in (ROOT / "odexport").glob(pattern)}
    assert {f"{name}.jpg" for name in PHOTOGRAPHS} | {"LICENSE.md"} <= shipped
    licence = (ROOT / "odexport" / "data" / "LICENSE.md").read_text()
    for name in PHOTOGRAPHS:
        row = next(line for line in licence.splitlines() if line.startswith(f"| {name}.jpg"))
        assert "public domain" in row or "CC0" in row, row
        assert (ROOT / "odexport" / "data" / f"{name}.jpg").stat().st_size < 64_000  # small copies
