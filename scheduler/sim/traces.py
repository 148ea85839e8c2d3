"""Price and hashprice traces: step functions of time, looked up by bisection.

A price trace is a CSV with a time column (`interval_start`, `time` or `timestamp`,
else the first column) and one price column per market node (USD/MWh); each row's
price holds from its time until the next row's. The shared ERCOT file has the
columns `dam_usd_per_mwh` (day-ahead) and `rtm_usd_per_mwh` (real-time) of one node,
HB_SOUTH: read as a real-time trace it offers `rtm_usd_per_mwh`, as a forecast
`dam_usd_per_mwh`, and either answers for any node name (`node_column`).

What dispatch sees is what a real scheduler could know: the real-time price of the
last interval that has *ended* (settled), and the day-ahead price of the interval in
progress; energy is paid at the real-time price of the interval it is drawn in.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from scheduler.sim.files import InputError, number, parse_time, read_csv

TIME_COLUMNS = ("interval_start", "time", "timestamp", "TIMESTAMP")
REAL_TIME_COLUMN, DAY_AHEAD_COLUMN = "rtm_usd_per_mwh", "dam_usd_per_mwh"
NON_PRICE_COLUMNS = {"temperature_c"}


@dataclass(frozen=True)
class PriceTrace:
    path: str
    times: tuple[float, ...]  # interval starts, ascending
    columns: dict[str, tuple[float, ...]]  # node (column) -> price per interval
    interval_s: float

    @property
    def start(self) -> float:
        return self.times[0]

    @property
    def end(self) -> float:
        return self.times[-1] + self.interval_s

    def node_column(self, node: str, preferred: str = "") -> str:
        """The column that prices `node`: its own, else `preferred`, else the only one."""
        if node in self.columns:
            return node
        if preferred in self.columns:
            return preferred
        if len(self.columns) == 1:
            return next(iter(self.columns))
        raise KeyError(f"no price column for market node {node!r} in {self.path} (columns: {', '.join(self.columns)})")

    def index_at(self, t: float) -> int:
        return max(0, min(len(self.times) - 1, bisect.bisect_right(self.times, t) - 1))

    def at(self, column: str, t: float) -> float:
        """The price of the interval containing `t` (the first/last outside the trace)."""
        return self.columns[column][self.index_at(t)]

    def settled_before(self, column: str, t: float) -> float | None:
        """The price of the last interval that ended at or before `t`; None before the first ends."""
        i = bisect.bisect_right(self.times, t - self.interval_s) - 1
        return self.columns[column][min(i, len(self.times) - 1)] if i >= 0 else None

    def next_change(self, t: float) -> float:
        """The next interval boundary after `t` (inf past the trace)."""
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else float("inf")


def _read_prices(path: Path) -> tuple[tuple[float, ...], dict[str, tuple[float, ...]], float]:
    header, rows = read_csv(path)
    time_col = next((c for c in TIME_COLUMNS if c in header), header[0])
    price_cols = [c for c in header if c != time_col and c not in NON_PRICE_COLUMNS]
    if not price_cols:
        raise InputError(path, f"no price column besides the time column {time_col!r}", 1)
    times: list[float] = []
    values: dict[str, list[float]] = {c: [] for c in price_cols}
    for line, row in rows:
        try:
            t = parse_time(row[time_col])
        except ValueError as err:
            raise InputError(path, str(err), line, time_col) from None
        if times and t <= times[-1]:
            raise InputError(path, "times must increase from row to row", line, time_col)
        times.append(t)
        for c in price_cols:
            values[c].append(number(path, line, c, row.get(c)))
    if not times:
        raise InputError(path, "no rows")
    steps = sorted(b - a for a, b in zip(times, times[1:]))
    interval = steps[len(steps) // 2] if steps else 3600.0
    return tuple(times), {c: tuple(v) for c, v in values.items()}, interval


def load_prices(path: Path, forecast: bool = False) -> PriceTrace:
    """A price trace; from a file in the ERCOT layout, its real-time (or day-ahead) column."""
    return load_prices_and_forecast(path, forecast)[0]


def load_prices_and_forecast(path: Path, forecast_only: bool = False) -> tuple[PriceTrace, PriceTrace | None]:
    """The real-time trace of a file and, in the ERCOT layout, its day-ahead trace too
    (`forecast_only`: the day-ahead trace first)."""
    times, columns, interval = _read_prices(path)
    if REAL_TIME_COLUMN in columns and DAY_AHEAD_COLUMN in columns:
        rt = PriceTrace(str(path), times, {REAL_TIME_COLUMN: columns[REAL_TIME_COLUMN]}, interval)
        da = PriceTrace(str(path), times, {DAY_AHEAD_COLUMN: columns[DAY_AHEAD_COLUMN]}, interval)
        return (da, rt) if forecast_only else (rt, da)
    return PriceTrace(str(path), times, columns, interval), None


@dataclass(frozen=True)
class Hashprice:
    """Hashprice (USD per PH/s per day) as a step function; a constant when one point."""

    times: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def constant(cls, usd_per_ph_day: float) -> Hashprice:
        return cls((float("-inf"),), (usd_per_ph_day,))

    def at(self, t: float) -> float:
        return self.values[max(0, bisect.bisect_right(self.times, t) - 1)]

    def next_change(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else float("inf")


def load_hashprice(spec: str) -> Hashprice:
    """A number (constant USD/PH/day) or a CSV file with columns time,usd_per_ph_day."""
    try:
        value = float(spec)
    except ValueError:
        pass
    else:
        if not value >= 0 or value == float("inf"):
            raise InputError("--hashprice", f"must be a finite number >= 0, got {spec!r}")
        return Hashprice.constant(value)
    path = Path(spec)
    _, rows = read_csv(path, required=("time", "usd_per_ph_day"))
    times: list[float] = []
    values: list[float] = []
    for line, row in rows:
        try:
            t = parse_time(row["time"])
        except ValueError as err:
            raise InputError(path, str(err), line, "time") from None
        if times and t <= times[-1]:
            raise InputError(path, "times must increase from row to row", line, "time")
        times.append(t)
        values.append(number(path, line, "usd_per_ph_day", row["usd_per_ph_day"], minimum=0))
    if not times:
        raise InputError(path, "no rows")
    return Hashprice(tuple(times), tuple(values))
