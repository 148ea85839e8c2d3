"""How fast training runs when its GPUs are power-capped: the relative-speed curve.

A `SpeedCurve` maps a GPU power fraction (what the ledger calls `power_fraction`: the
power a run's GPUs draw, relative to what they draw uncapped) to relative speed
(uncapped epoch time / capped epoch time, 1.0 at full power). It is piecewise linear
between its points, 1.0 from fraction 1 up, and below its first point proportional to
the fraction (work per joule no better than at the first point: the honest guess
where nothing was measured).

`curve_from_measurements` builds one from measured runs (Zeus, NSDI '23: epoch time
and average power at each GPU power limit, scheduler/sim/sample_data/zeus_*; loaded by
scheduler/sim/zeus.py). Per workload (dataset, network, batch size, optimizer, GPU):
speed at each limit = epoch time at the highest limit / epoch time at that limit, at
x = average power / average power at the highest limit (or limit / highest limit,
`axis="limit"`), both clipped to 1 and made monotone (power never falls as the limit
rises, speed never rises as it falls: measurement noise removed). The curve is the
median over all workloads at each grid fraction. `ZEUS_SPEED_CURVE` is that curve
for both Zeus GPUs (A40 and V100, 121 workloads) on the default grid; a unit test
checks it against the data.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_GRID = tuple(round(0.30 + 0.05 * i, 2) for i in range(15))  # 0.30, 0.35, ... 1.00
MIN_SPEED = 1e-3  # a run always progresses a little (never divides by zero)


@dataclass(frozen=True)
class Measurement:
    """One measured epoch of one workload at one power limit."""

    limit_w: float
    epoch_s: float
    average_w: float


@dataclass(frozen=True)
class SpeedCurve:
    points: tuple[tuple[float, float], ...]  # (power fraction, relative speed), ascending

    def __post_init__(self):
        xs = [x for x, _ in self.points]
        ys = [y for _, y in self.points]
        if not self.points or any(b <= a for a, b in zip(xs, xs[1:])):
            raise ValueError("a speed curve needs points with strictly increasing fractions")
        if xs[0] <= 0 or xs[-1] != 1.0 or ys[-1] != 1.0:
            raise ValueError("a speed curve must end at (1.0, 1.0) and start above fraction 0")
        if any(b < a for a, b in zip(ys, ys[1:])) or ys[0] <= 0:
            raise ValueError("a speed curve's speeds must be positive and never fall as the fraction rises")

    def speed(self, fraction: float) -> float:
        """Relative speed at a power fraction: 1.0 at 1 and above."""
        if fraction >= 1.0:
            return 1.0
        x0, y0 = self.points[0]
        if fraction <= x0:
            return max(MIN_SPEED, y0 * fraction / x0)
        i = bisect.bisect_right([x for x, _ in self.points], fraction)
        (xa, ya), (xb, yb) = self.points[i - 1], self.points[i]
        return ya + (yb - ya) * (fraction - xa) / (xb - xa)

    def slowdown_pct(self, fraction: float) -> float:
        """How much longer training takes at a power fraction, in percent."""
        return (1.0 / self.speed(fraction) - 1.0) * 100.0

    def fraction_for_slowdown(self, tolerance_pct: float) -> float:
        """The lowest power fraction whose slowdown stays within `tolerance_pct`."""
        if tolerance_pct <= 0:
            return 1.0
        needed = 1.0 / (1.0 + tolerance_pct / 100.0)
        x0, y0 = self.points[0]
        if needed <= y0:
            return x0 * needed / y0
        for (xa, ya), (xb, yb) in zip(self.points, self.points[1:]):
            if ya < needed <= yb:
                return xa + (xb - xa) * (needed - ya) / (yb - ya)
        return 1.0


def workload_points(measurements: Sequence[Measurement], axis: str = "power") -> list[tuple[float, float]]:
    """(x, relative speed) of one workload, ascending in the limit, monotone, ending at (1, 1)."""
    if axis not in ("power", "limit"):
        raise ValueError(f"axis must be 'power' or 'limit', not {axis!r}")
    ordered = sorted(measurements, key=lambda m: m.limit_w)
    top = ordered[-1]
    if top.epoch_s <= 0 or top.average_w <= 0 or top.limit_w <= 0:
        raise ValueError("the uncapped measurement needs a positive epoch time, power and limit")
    xs = [min(1.0, (m.average_w / top.average_w) if axis == "power" else (m.limit_w / top.limit_w)) for m in ordered]
    ys = [min(1.0, top.epoch_s / m.epoch_s) if m.epoch_s > 0 else 0.0 for m in ordered]
    for i in range(1, len(xs)):  # power never falls as the limit rises
        xs[i] = max(xs[i], xs[i - 1])
    for i in range(len(ys) - 2, -1, -1):  # speed never rises as the limit falls
        ys[i] = min(ys[i], ys[i + 1])
    return list(zip(xs, ys))


def speed_at(points: Sequence[tuple[float, float]], x: float) -> float:
    """One workload's speed at `x`: linear between its points (the fastest at a repeated
    x), proportional to x below its lowest point, its top speed above its highest."""
    x0, y0 = points[0]
    if x < x0:
        return y0 * x / x0 if x0 > 0 else 0.0
    below = [(px, py) for px, py in points if px <= x]
    above = [(px, py) for px, py in points if px > x]
    xa, ya = max(below, key=lambda p: (p[0], p[1]))
    if not above:
        return ya
    xb, yb = min(above, key=lambda p: (p[0], -p[1]))
    return ya + (yb - ya) * (x - xa) / (xb - xa)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def curve_from_measurements(
    workloads: Iterable[Sequence[Measurement]], grid: Sequence[float] = DEFAULT_GRID, axis: str = "power", decimals: int = 3
) -> SpeedCurve:
    """The median relative speed over `workloads` at each grid fraction (rounded), as a curve."""
    curves = [workload_points(w, axis) for w in workloads if w]
    if not curves:
        raise ValueError("no measurements to build a speed curve from")
    grid = sorted(set(grid) | {1.0})
    speeds = [round(max(MIN_SPEED, median([speed_at(c, x) for c in curves])), decimals) for x in grid]
    speeds[-1] = 1.0
    for i in range(len(speeds) - 2, -1, -1):  # rounding must not break monotonicity
        speeds[i] = min(speeds[i], speeds[i + 1])
    return SpeedCurve(tuple(zip(grid, speeds)))


# Derived from scheduler/sim/sample_data/zeus_{a40,v100}_power_limit_vs_epoch_time.csv (whole copies of the Zeus files) by
# curve_from_measurements (axis "power", DEFAULT_GRID); tests/unit/test_gpu_speed.py
# recomputes it from the files.
ZEUS_SPEED_CURVE = SpeedCurve(
    (
        (0.30, 0.300),
        (0.35, 0.350),
        (0.40, 0.400),
        (0.45, 0.454),
        (0.50, 0.510),
        (0.55, 0.587),
        (0.60, 0.699),
        (0.65, 0.781),
        (0.70, 0.860),
        (0.75, 0.907),
        (0.80, 0.933),
        (0.85, 0.955),
        (0.90, 0.971),
        (0.95, 0.985),
        (1.00, 1.000),
    )
)
