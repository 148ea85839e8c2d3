"""Money from the grid besides the power bill: demand-response program payments and 4CP
transmission savings, counted from a site's mining load per price interval. The
simulator's report and bench/economics.py both count them here.

- Program (mining_outlook.Program, an ERS-like commitment): each interval outside an
  event pays `capacity_usd_per_mw_h` for the mining load available to curtail (the
  meter load, up to the commitment); an event interval pays capacity only for the
  curtailment it delivers (the drop below the interval before the event, up to the
  commitment) and `energy_usd_per_mwh` for that energy.
- Events: when no deployment record is at hand, `program_events` is the proxy: an event
  runs for `steps` intervals after a settled real-time price of `price` or more (scarcity
  pricing), so it is known when it starts.
- 4CP: next year's transmission charges follow the load in ERCOT's four monthly
  15-minute system peaks of June-September. With no system load at hand, `peak_intervals`
  is the proxy: the interval of highest real-time price in each of those months (ERCOT's
  summer scarcity and its system peaks fall in the same evening hours). The saving is the
  drop of the mean meter load at the peaks below a reference (what the fleets would draw
  otherwise) times the tariff, `usd_per_kw_year` pro rata for the days counted.

Pure: plain sequences in, USD out; no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.core.mining_outlook import Program

PEAK_MONTHS = (6, 7, 8, 9)


@dataclass(frozen=True)
class GridMoney:
    program_usd: float
    cp4_usd: float

    @property
    def total_usd(self) -> float:
        return self.program_usd + self.cp4_usd


def program_events(real_time: Sequence[float], price: float, steps: int) -> list[int]:
    """Per interval, the interval before the event it belongs to (-1: no event): an event runs
    for `steps` intervals after a settled price >= `price`."""
    base = [-1] * len(real_time)
    t = 1
    while t < len(real_time):
        if real_time[t - 1] >= price:
            for u in range(t, min(len(real_time), t + steps)):
                base[u] = t - 1
            t += steps
        else:
            t += 1
    return base


def peak_intervals(real_time: Sequence[float], months: Sequence[int]) -> list[int]:
    """The 4CP proxy: the interval of highest real-time price in each of June-September
    (`months`: each interval's month)."""
    out = []
    for month in PEAK_MONTHS:
        idx = [i for i, m in enumerate(months) if m == month]
        if idx:
            out.append(max(idx, key=lambda i: (real_time[i], -i)))
    return out


def cp4_usd_per_mw(usd_per_kw_year: float, days: float) -> float:
    """USD saved per MW less mean load at the peaks, for `days` of the year."""
    return usd_per_kw_year * 1000.0 * days / 365.0


def program_revenue(meter_mw: Sequence[float], event_base: Sequence[int], program: Program | None, interval_h: float) -> float:
    """Capacity and energy payments over the intervals (`event_base` from program_events)."""
    if program is None:
        return 0.0
    committed = program.committed_w / 1e6
    available = delivered = 0.0
    for mw, base in zip(meter_mw, event_base):
        if base >= 0:
            got = min(max(meter_mw[base] - mw, 0.0), committed)
            delivered += got
            available += got
        else:
            available += min(mw, committed)
    return (available * program.capacity_usd_per_mw_h + delivered * program.energy_usd_per_mwh) * interval_h


def cp4_savings(meter_mw: Sequence[float], peaks: Sequence[int], reference_peak_mw: float, usd_per_mw: float) -> float:
    """The 4CP saving of the load at `peaks` against the reference's mean load there."""
    if not peaks:
        return 0.0
    return (reference_peak_mw - sum(meter_mw[i] for i in peaks) / len(peaks)) * usd_per_mw


def grid_money(
    meter_mw: Sequence[float],
    interval_h: float,
    program: Program | None,
    event_base: Sequence[int],
    peaks: Sequence[int],
    reference_peak_mw: float,
    usd_per_mw: float,
) -> GridMoney:
    """Both parts for one site's mining load at the meter (MW per interval)."""
    return GridMoney(program_revenue(meter_mw, event_base, program, interval_h), cp4_savings(meter_mw, peaks, reference_peak_mw, usd_per_mw))
