"""The Zeus (NSDI '23) power-limit measurements: zeus_*_power_limit_vs_epoch_time.csv in the data folder (data.py)
read into workloads, and the training speed curve the simulator runs capped training at.

Each file has one row per (dataset, network, batch_size, optimizer, power_limit) with
`time_per_epoch` (s) and `average_power` (W); a workload is one such combination on
one GPU (the file). The curve itself is built in scheduler/core/gpu_speed.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from scheduler.core.gpu_speed import DEFAULT_GRID, ZEUS_SPEED_CURVE, Measurement, SpeedCurve, curve_from_measurements
from scheduler.sim.data import ZEUS as ZEUS_GLOB
from scheduler.sim.data import find_all
from scheduler.sim.files import InputError, number, read_csv

KEY_COLUMNS = ("dataset", "network", "batch_size", "optimizer")
COLUMNS = (*KEY_COLUMNS, "power_limit", "time_per_epoch", "average_power")


def load_workloads(path: Path) -> list[list[Measurement]]:
    """One file's workloads, each its measurements; InputError naming file and line."""
    _, rows = read_csv(path, required=COLUMNS)
    workloads: dict[tuple[str, ...], list[Measurement]] = {}
    for line, row in rows:
        key = tuple(row[c].strip() for c in KEY_COLUMNS)
        measurement = Measurement(
            number(path, line, "power_limit", row["power_limit"], minimum=1e-9),
            number(path, line, "time_per_epoch", row["time_per_epoch"], minimum=1e-9),
            number(path, line, "average_power", row["average_power"], minimum=1e-9),
        )
        workloads.setdefault(key, []).append(measurement)
    if not workloads:
        raise InputError(path, "no rows")
    return list(workloads.values())


def zeus_files(data_dir: Path) -> list[Path]:
    return find_all(data_dir, ZEUS_GLOB)


def load_speed_curve(paths: Iterable[Path], axis: str = "power", grid=DEFAULT_GRID) -> SpeedCurve:
    """The median speed curve over every workload in `paths`."""
    workloads = [w for path in paths for w in load_workloads(path)]
    if not workloads:
        raise InputError("zeus data", "no measurement files given")
    return curve_from_measurements(workloads, grid, axis)


def speed_curve_from(data_dir: Path) -> tuple[SpeedCurve, str]:
    """The curve from the Zeus files in `data_dir`, else the built-in one; and where it came from."""
    paths = zeus_files(data_dir)
    if not paths:
        return ZEUS_SPEED_CURVE, "built-in (scheduler/core/gpu_speed.py)"
    return load_speed_curve(paths), ", ".join(str(p) for p in paths)
