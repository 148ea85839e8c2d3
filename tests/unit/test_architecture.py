"""Layering enforced mechanically: the core is pure, protobuf stops at scheduler/api,
ray only in the agent's runners (Ray Jobs, Ray Serve) and miner-group actors (and the dev cluster), modules stay small."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = {
    "grpc",
    "ray",
    "sqlite3",
    "asyncio",
    "time",
    "socket",
    "subprocess",
    "threading",
    "google",
    "scheduler.api",
    "scheduler.server",
    "scheduler.store",
}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(*parts: str) -> list[Path]:
    return sorted(p for p in ROOT.joinpath(*parts).rglob("*.py") if "api/v1" not in p.as_posix())


def touches(names: set[str], forbidden: set[str]) -> set[str]:
    return {n for n in names for f in forbidden if n == f or n.startswith(f + ".")}


@pytest.mark.parametrize("path", modules("scheduler", "core"), ids=lambda p: p.name)
def test_core_is_pure(path):
    assert not touches(imports_of(path), FORBIDDEN_IN_CORE)


def test_only_the_runner_and_dev_cluster_import_ray():
    users = {p.relative_to(ROOT).as_posix() for p in modules("scheduler") + modules("agents") if touches(imports_of(p), {"ray"})}
    assert users == {"agents/ray_runner.py", "agents/serve_runner.py", "agents/miners/ray_groups.py", "scheduler/devcluster.py"}


def test_protobuf_types_stay_at_the_edges():
    # The core never sees protobuf; the store neither.
    for path in modules("scheduler", "core") + modules("scheduler", "store"):
        assert not touches(imports_of(path), {"scheduler.api", "google.protobuf"}), path


@pytest.mark.parametrize("path", modules("scheduler") + modules("agents"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_modules_are_small_and_say_what_they_own(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 600
    assert ast.get_docstring(ast.parse(text)), f"{path} needs a docstring"


def test_lint_is_clean():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
