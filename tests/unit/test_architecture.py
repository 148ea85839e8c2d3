"""Layering enforced mechanically. The layers are import-linter contracts in pyproject.toml
([tool.importlinter]): the core is pure, protobuf stops at scheduler/api, server and sim are
independent, agents stay off the scheduler's shell, only the composition root (the CLI) wires
both sides and the dev package, ray only in the agent's runners, miner-group actors and the dev
cluster, no import cycles. Each contract runs here as `lint-imports` would run it by hand; the
graph it checks counts every import (lazy, TYPE_CHECKING, relative, `from pkg import module`).
Also here: modules stay small and say what they own, and ruff is clean."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
CONTRACTS = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def lint_imports(contract_id: str) -> subprocess.CompletedProcess:
    argv = [str(Path(sys.executable).parent / "lint-imports"), "--config", str(PYPROJECT), "--contract", contract_id, "--no-cache", "--no-logo"]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("contract_id", [c["id"] for c in CONTRACTS])
def test_import_contract_is_kept(contract_id):
    result = lint_imports(contract_id)
    assert result.returncode == 0, f"import-linter contract {contract_id!r} broken:\n{result.stdout}{result.stderr}"


def test_every_layer_rule_is_under_contract():
    # Deleting or renaming a contract must be a visible decision, not a quiet one.
    assert {c["id"] for c in CONTRACTS} == {
        "scheduler-layers",
        "core-is-pure",
        "protobuf-stops-at-api",
        "agents-off-the-scheduler-shell",
        "only-the-composition-root-imports-agents",
        "production-never-imports-dev",
        "ray-at-the-edges",
        "no-cycles",
    }


HIDE_THE_DEV_PACKAGE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "powerplane_dev":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
from scheduler.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_install_without_the_dev_package_says_what_the_demo_needs():
    # The image ships scheduler and agents only: `powerplane demo` there is a plain message, not a traceback.
    result = subprocess.run([sys.executable, "-c", HIDE_THE_DEV_PACKAGE, "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "powerplane demo: needs a checkout of the repository (./scripts/demo.sh); this install has no powerplane_dev",
    )


def modules(*parts: str) -> list[Path]:
    return sorted(p for p in ROOT.joinpath(*parts).rglob("*.py") if "api/v1" not in p.as_posix())


@pytest.mark.parametrize("path", modules("scheduler") + modules("agents") + modules("powerplane_dev"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_modules_are_small_and_say_what_they_own(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 600
    assert ast.get_docstring(ast.parse(text)), f"{path} needs a docstring"


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
