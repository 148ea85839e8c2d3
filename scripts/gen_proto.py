"""Regenerate the Python code for proto/powerplane/v1/*.proto into scheduler/api/v1/.

    python scripts/gen_proto.py          # write the generated modules
    python scripts/gen_proto.py --check  # exit 1 if the checked-in code drifted

protoc writes absolute imports (`from powerplane.v1 import types_pb2`) that would need
a top-level `powerplane` package; the one post-processing step below turns them into
package-relative imports, which is what protoletariat does (not used: it pins protobuf < 6).
"""

from __future__ import annotations

import argparse
import filecmp
import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_DIR = PROTO_ROOT / "powerplane" / "v1"
OUT_DIR = ROOT / "scheduler" / "api" / "v1"
HEADER = '"""Generated from proto/powerplane/v1 by scripts/gen_proto.py. Do not edit."""\n'
ABSOLUTE_IMPORT = re.compile(r"^from powerplane\.v1 import (\w+_pb2)", re.MULTILINE)


def generate(into: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_DIR.glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as raw:
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={raw}", f"--pyi_out={raw}", f"--grpc_python_out={raw}", *protos]
        if protoc.main(args) != 0:
            sys.exit("protoc failed")
        into.mkdir(parents=True, exist_ok=True)
        (into / "__init__.py").write_text(HEADER)
        for path in sorted((Path(raw) / "powerplane" / "v1").iterdir()):
            text = ABSOLUTE_IMPORT.sub(r"from . import \1", path.read_text())
            (into / path.name).write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if scheduler/api/v1 differs from a fresh generation")
    args = parser.parse_args()
    if not args.check:
        generate(OUT_DIR)
        print(f"generated {OUT_DIR.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "v1"
        generate(fresh)
        fresh_names = {p.name for p in fresh.iterdir()}
        have_names = {p.name for p in OUT_DIR.iterdir() if p.is_file()} if OUT_DIR.exists() else set()
        drifted = sorted(fresh_names ^ have_names)
        drifted += [n for n in sorted(fresh_names & have_names) if not filecmp.cmp(fresh / n, OUT_DIR / n, shallow=False)]
    if drifted:
        print("generated protobuf code is stale; run: python scripts/gen_proto.py", file=sys.stderr)
        print("differs: " + ", ".join(drifted), file=sys.stderr)
        return 1
    print("generated protobuf code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
