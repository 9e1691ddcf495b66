"""environment.yml (conda) and pyproject.toml must name the same dependencies with the same versions."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _normalise(spec: str) -> tuple[str, str]:
    req = Requirement(spec)
    return req.name.lower().replace("_", "-"), str(req.specifier)


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(s) for s in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_normalise(s) for s in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_side = {_normalise(s) for s in pip_section if not s.startswith("-e")}
    assert conda_side == wanted, (
        f"only in environment.yml: {sorted(conda_side - wanted)}; only in pyproject.toml: {sorted(wanted - conda_side)}"
    )
