"""Read-only NVML telemetry check for a GPU machine, through agents/nvml.py.

Prints each device's name, UUID, power draw and its current, enforced, default, min
and max power limits, then samples every device's power every `--interval` seconds
for `--seconds` seconds, optionally while running a command (given after `--`), and
prints min / mean / max per device. It never sets anything: NVML is opened
read-only, and the module it talks to refuses every Set function before it reaches
the library.

    .venv/bin/python scripts/gpu_check.py [--seconds 10] [--interval 0.2] [-- python burn.py]
    .venv/bin/python scripts/gpu_check.py --fake 4      # the same, on the fake NVML

Exits 0 after a full report, 1 when NVML cannot start (no driver), 2 on bad arguments.
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.nvml import NVMLError, NvmlGpus, open_nvml  # noqa: E402


class NoSetting:
    """A module proxy that refuses every NVML Set function (and passes the rest)."""

    def __init__(self, module: Any):
        self._module = module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("nvmlDeviceSet") or name.startswith("nvmlSet"):
            raise PermissionError(f"gpu_check is read-only: {name} refused")
        return getattr(self._module, name)


def _field(read, *args) -> Any:
    try:
        return read(*args)
    except NVMLError as err:
        return f"n/a ({err})"


def describe(gpus: NvmlGpus) -> list[dict]:
    rows = []
    for d in gpus.devices:
        rows.append(
            {
                "index": d.index,
                "name": d.name,
                "uuid": d.uuid,
                "power_w": _field(gpus.power_w, d.index),
                "limit_w": _field(gpus.limit_w, d.index),
                "enforced_limit_w": _field(gpus.enforced_limit_w, d.index),
                "default_limit_w": d.default_limit_w,
                "min_limit_w": d.min_limit_w,
                "max_limit_w": d.max_limit_w,
            }
        )
    return rows


def sample(gpus: NvmlGpus, seconds: float, interval: float, command: list[str] | None) -> tuple[dict[int, list[float]], int | None]:
    """Power of every device every `interval` s for `seconds` s (while `command` runs, if given)."""
    samples: dict[int, list[float]] = {d.index: [] for d in gpus.devices}
    process = subprocess.Popen(command) if command else None
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            for d in gpus.devices:
                try:
                    samples[d.index].append(gpus.power_w(d.index))
                except NVMLError:
                    pass
            time.sleep(interval)
    finally:
        code = None
        if process is not None:
            code = process.poll()
            if code is None:
                process.terminate()
                try:
                    code = process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    code = process.wait()
    return samples, code


def _w(value: Any) -> str:
    return f"{value:.1f} W" if isinstance(value, float | int) else str(value)


def main(argv: list[str] | None = None, nvml: Any = None) -> int:
    parser = argparse.ArgumentParser(description="read-only NVML power telemetry check")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to sample (default 10)")
    parser.add_argument("--interval", type=float, default=0.2, help="sampling period in seconds (default 0.2)")
    parser.add_argument("--fake", type=int, default=0, metavar="N", help="use the fake NVML with N devices instead of the real library")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="optional command to run while sampling (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.seconds < 0 or args.interval <= 0:
        parser.error("--seconds must be >= 0 and --interval > 0")
    if nvml is None and args.fake:
        from agents.fake_nvml import FakeNvml

        nvml = FakeNvml.for_site(args.fake, 700.0, 70.0)
    gpus, why = open_nvml(NoSetting(nvml if nvml is not None else __import__("pynvml")), read_only=True)
    if gpus is None:
        print(f"gpu_check: {why}", file=sys.stderr)
        return 1
    try:
        devices = describe(gpus)
        print(f"{gpus.count} GPU(s) through {'the fake NVML' if args.fake else 'NVML'}")
        for row in devices:
            print(
                f"  GPU {row['index']}: {row['name']} {row['uuid']}: draws {_w(row['power_w'])}; limit {_w(row['limit_w'])} "
                f"(enforced {_w(row['enforced_limit_w'])}, default {_w(row['default_limit_w'])}, range {_w(row['min_limit_w'])} .. {_w(row['max_limit_w'])})"
            )
        samples, code = sample(gpus, args.seconds, args.interval, command or None)
    finally:
        gpus.close()
    stats = {}
    for index, values in samples.items():
        if values:
            stats[index] = {"n": len(values), "min_w": min(values), "mean_w": round(statistics.fmean(values), 1), "max_w": max(values)}
            print(
                f"  GPU {index}: {len(values)} samples over {args.seconds:g} s: min {min(values):.1f} W, mean {stats[index]['mean_w']:.1f} W, max {max(values):.1f} W"
            )
    if command:
        print(f"  command {' '.join(command)!r} exited {code}")
    print(json.dumps({"devices": devices, "samples": stats, "command_exit": code}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
