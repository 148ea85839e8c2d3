"""power.png: per site, AI, mining and cooling overhead stacked under the cap line
(the enforced cap; dotted: the cap dispatch planned under), the real-time price on a
second axis. matplotlib with the Agg backend (no display needed), imported only here and
only when a plot is drawn: it is the `sim` extra (`pip install 'powerplane[sim]'`), not
a dependency of the scheduler or the agents.

It reads timeseries.csv back (the run streamed it out), one pass, keeping per site at
most MAX_POINTS points: when a site has more ticks, consecutive ticks are merged
(powers and price averaged, caps at their lowest, a violation if any tick had one), so
memory stays flat in the days simulated."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from scheduler.sim.engine import Simulator
from scheduler.sim.files import parse_time

MAX_POINTS = 20_000  # per site
MEAN = ("ai_w", "mining_w", "overhead_w", "price")
LOWEST = ("cap_w", "planning_cap_w")

PRICE_TICKS = (-50, 0, 25, 50, 100, 250, 500, 1000, 2500, 5000)
INSTALL_HINT = "the simulator's plot needs matplotlib: pip install 'powerplane[sim]'"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed (it is the `sim` extra)."""


def require_matplotlib():
    """matplotlib, set to the Agg backend; PlotUnavailable naming the extra when it is missing."""
    try:
        import matplotlib
    except ImportError as err:
        raise PlotUnavailable(INSTALL_HINT) from err
    matplotlib.use("Agg")
    return matplotlib


class _Point:
    __slots__ = ("time", "ai_w", "mining_w", "overhead_w", "price", "cap_w", "planning_cap_w", "violation", "n")


def read_points(timeseries: Path, ticks: int) -> dict[str, list[_Point]]:
    """Per site, the points to draw from a timeseries.csv of `ticks` ticks per site."""
    merge = max(1, -(-ticks // MAX_POINTS))
    out: dict[str, list[_Point]] = {}
    with Path(timeseries).open(newline="") as handle:
        for row in csv.DictReader(handle):
            points = out.setdefault(row["site"], [])
            if not points or points[-1].n >= merge:
                p = _Point()
                p.time, p.n, p.violation = parse_time(row["time"]), 0, 0
                for k in MEAN:
                    setattr(p, k, 0.0)
                for k in LOWEST:
                    setattr(p, k, float("inf"))
                points.append(p)
            p = points[-1]
            p.n += 1
            for k in MEAN:
                setattr(p, k, getattr(p, k) + (float(row[k]) - getattr(p, k)) / p.n)
            for k in LOWEST:
                setattr(p, k, min(getattr(p, k), float(row[k])))
            p.violation = max(p.violation, int(row["violation"]))
    return out


def plot_power(sim: Simulator, path: Path, timeseries: Path) -> None:
    require_matplotlib()
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker

    views = list(sim.sites.values())
    points = read_points(timeseries, sim.tick_count)
    fig, axes = plt.subplots(len(views), 1, figsize=(14, 3.6 * len(views)), sharex=True, squeeze=False)
    for ax, view in zip(axes[:, 0], views):
        rows = points.get(view.spec.site_id, [])
        times = [dt.datetime.fromtimestamp(r.time, dt.UTC).replace(tzinfo=None) for r in rows]
        mw = {k: [getattr(r, k) / 1e6 for r in rows] for k in ("ai_w", "mining_w", "overhead_w", "cap_w", "planning_cap_w")}
        ax.stackplot(
            times,
            mw["ai_w"],
            mw["mining_w"],
            mw["overhead_w"],
            labels=["AI", "mining", "cooling/overhead"],
            colors=["#4c72b0", "#dd8452", "#a5a5a5"],
            step="post",
            alpha=0.85,
        )
        ax.step(times, mw["cap_w"], where="post", color="black", linewidth=1.2, label="cap (enforced)")
        ax.step(times, mw["planning_cap_w"], where="post", color="black", linewidth=0.8, linestyle=":", label="cap (planned)")
        bad = [t for t, r in zip(times, rows) if r.violation]
        if bad:
            ax.plot(bad, [max(mw["cap_w"])] * len(bad), "rx", label="cap violation")
        ax.set_ylabel("MW")
        ax.set_ylim(0, max(mw["cap_w"] + [1e-3]) * 1.08)
        ax.set_title(f"{view.spec.site_id} ({view.spec.region}, {view.spec.power.cap_w / 1e6:g} MW interconnect)")
        price_ax = ax.twinx()
        price_ax.step(times, [r.price for r in rows], where="post", color="#2ca02c", linewidth=0.7, alpha=0.8, label="real-time price")
        price_ax.set_ylabel("USD/MWh", color="#2ca02c")
        price_ax.set_yscale("symlog", linthresh=100)
        price_ax.set_yticks([t for t in PRICE_TICKS if t <= max(100.0, max(r.price for r in rows))])
        price_ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    more, more_labels = price_ax.get_legend_handles_labels()
    fig.legend(handles + more, labels + more_labels, loc="upper center", fontsize=8, ncol=8, frameon=False)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
