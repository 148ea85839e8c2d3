"""The image's install recipe, rebuilt without a Docker daemon: the files the
Dockerfile's COPY lines name (read from the Dockerfile, so this follows it) are
copied into a scratch root, built into a wheel and installed with no dependencies
into a fresh venv. The runtime dependencies pyproject declares (and only those, with
their own dependencies, taken from .venv) are made visible to that venv through a
.pth line; the editable install of powerplane in .venv is not (its finder and .pth
are never processed there), so a package or module the COPY lines leave out fails
to import. Then every module of scheduler, agents and powerplane_sdk is imported from
that venv, and the image's ENTRYPOINT answers `scheduler --help` and `agent --help`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("scheduler", "agents", "powerplane_sdk")
# Modules that need an optional extra (torch: `train`, matplotlib: `sim`) at import
# time, with the reason; none today (scheduler/sim/plot.py imports matplotlib lazily).
NEEDS_AN_EXTRA: dict[str, str] = {}

IMPORT_ALL = """
import importlib, json, pkgutil, sys
site, skip, packages = sys.argv[1], set(json.loads(sys.argv[2])), sys.argv[3:]
imported, failed, outside = [], {}, {}
def record(name):
    try:
        module = importlib.import_module(name)
    except BaseException as err:
        failed[name] = repr(err)
        return None
    imported.append(name)
    if not (getattr(module, "__file__", None) or "").startswith(site):
        outside[name] = getattr(module, "__file__", None)
    return module
for package in packages:
    module = record(package)
    if module is None:
        continue
    for info in pkgutil.walk_packages(module.__path__, package + ".", onerror=lambda name: failed.setdefault(name, "walk failed")):
        if info.name not in skip and info.name not in imported:
            record(info.name)
print(json.dumps({"imported": imported, "failed": failed, "outside": outside}))
"""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, comments dropped and continuations joined."""
    result, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        op, _, args = (pending + line).strip().partition(" ")
        result.append((op.upper(), args.strip()))
        pending = ""
    return result


def words(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def build_context(dockerfile: Path, root: Path) -> tuple[Path, list[str], list[str]]:
    """Copy what the COPY lines name into `root` as the image would hold it; returns the
    WORKDIR (under root), the `pip install` targets and the ENTRYPOINT."""
    workdir, targets, entrypoint, copies = "/", [], [], 0
    for op, args in instructions(dockerfile):
        if op == "WORKDIR":
            workdir = posixpath.join(workdir, args)
        elif op in ("COPY", "ADD"):
            parts = words(args)
            flags = [p for p in parts if p.startswith("--")]
            assert not [f for f in flags if f.startswith("--from")], f"{op} {args}: copies from another stage; teach this test"
            *sources, dest = [p for p in parts if not p.startswith("--")]
            target = root / posixpath.join(workdir, dest).lstrip("/")
            for source in sources:
                assert not any(c in source for c in "*?["), f"{op} {args}: wildcards; teach this test"
                path = REPO / source
                assert path.exists(), f"{op} {args}: {source} is not in the repository"
                if path.is_dir():  # Docker copies a directory's contents
                    shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    into = target / path.name if dest.endswith("/") or len(sources) > 1 else target
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, into)
            copies += 1
        elif op == "RUN" and "pip install" in args:
            for command in args.split("&&"):
                tokens = shlex.split(command)
                if tokens[:2] == ["pip", "install"]:
                    targets += [t for t in tokens[2:] if not t.startswith("-")]
        elif op == "ENTRYPOINT":
            entrypoint = words(args)
    assert copies and targets and entrypoint, "the Dockerfile no longer has COPY, RUN pip install and ENTRYPOINT lines"
    return root / workdir.lstrip("/"), targets, entrypoint


def runtime_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """The distributions in .venv that `requirements` (no extras of ours) pull in, transitively."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions()}
    todo = [(Requirement(r), "") for r in requirements]
    seen: set[tuple[str, str]] = set()
    found, missing = {}, []
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name == "powerplane":
            continue  # the project itself: only the copy under test counts
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            dist = installed.get(name)
            if dist is None:
                missing.append(str(req))
                break
            found[name] = dist
            todo += [(Requirement(r), wanted) for r in dist.requires or ()]
    assert not missing, f"runtime dependencies not installed in .venv: {missing}"
    return list(found.values())


def sparse_site(dists: list[importlib.metadata.Distribution], into: Path) -> Path:
    """A folder of links to just these distributions' top-level files and folders."""
    into.mkdir()
    for dist in dists:
        for file in dist.files or ():
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth") or (into / top).exists():
                continue
            (into / top).symlink_to(dist.locate_file(top))
    return into


def expected_modules() -> set[str]:
    """Every module the repository has under PACKAGES (what the image must import)."""
    names = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def run(*argv, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env.update(PYTHONNOUSERSITE="1", PYTHONSAFEPATH="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """(venv, entrypoint) of the image's recipe rebuilt in a scratch folder."""
    scratch = tmp_path_factory.mktemp("image")
    workdir, targets, entrypoint = build_context(REPO / "Dockerfile", scratch / "root")
    assert targets == ["."], f"the Dockerfile installs {targets}; this test builds only its WORKDIR"
    wheels, venv, empty = scratch / "wheels", scratch / "venv", scratch / "cwd"
    empty.mkdir()
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", wheels, workdir, cwd=empty)
    assert built.returncode == 0, built.stderr
    base = getattr(sys, "_base_executable", sys.executable)
    made = run(base, "-m", "venv", venv, cwd=empty)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", *wheels.glob("powerplane-*.whl"), cwd=empty)
    assert installed.returncode == 0, installed.stderr
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=empty).stdout.strip())
    wheel_meta = next(importlib.metadata.distributions(path=[str(site)], name="powerplane"))
    dists = runtime_closure(wheel_meta.requires or [])
    deps = sparse_site(dists, scratch / "runtime-deps")
    assert not {p.name for p in deps.iterdir()} & set(PACKAGES), "a runtime dependency ships one of our packages"
    (site / "zz_runtime_deps.pth").write_text(f"{deps}\n")
    return venv, site, entrypoint, empty


def test_every_module_of_the_image_imports_from_the_installed_copy(image):
    venv, site, _, cwd = image
    skip = sorted(NEEDS_AN_EXTRA)
    result = run(venv / "bin" / "python", "-c", IMPORT_ALL, site, json.dumps(skip), *PACKAGES, cwd=cwd)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, "modules that do not import in the image (a COPY line or a runtime dependency missing?)"
    assert report["outside"] == {}, "modules imported from outside the installed copy"
    assert set(report["imported"]) | set(skip) == expected_modules(), "the image's packages differ from the repository's"


@pytest.mark.parametrize("command", ["scheduler", "agent"])
def test_the_entrypoint_answers_help(image, command):
    venv, _, entrypoint, cwd = image
    result = run(venv / "bin" / entrypoint[0], *entrypoint[1:], command, "--help", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: powerplane " + command)
