"""CI fails when the generated protobuf code drifts from proto/powerplane/v1."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_the_proto_files():
    result = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_no_top_level_proto_package():
    assert not (ROOT / "proto" / "__init__.py").exists()
    assert not list((ROOT / "proto").rglob("*.py"))
