"""The offline optimum of bench/economics.py: one linear program over the whole trace,
solved by scipy's HiGHS, with perfect foresight of every price.

Variables per interval t and fleet f (IT watts above the paused floor, in MW here to keep
the numbers well scaled): level x, power started s and stopped d (x[t] - x[t-1] = s - d,
x[-1] = 0), the min-on slack r the cap may take back; per interval: a (the program's
available MW at the meter) and c (MW an event curtails). Constraints:
  sum_f x[t]                          <= headroom[t]                      (the cap)
  sum_f s[t]                          <= resume per interval              (resume rate)
  sum_{t-U+1..t} s[f] - x[t, f] - r[t, f] <= 0,  sum_f r[t] <= given back[t] (min on time)
  x[t, f] + sum_{t-D+1..t} d[f]       <= rated[f]                         (min off time)
  a[t] <= overhead x sum_f x[t] (no event), a[t] <= c[t] (event); a, c <= commitment
  c[t] <= overhead x (sum_f x[base] - sum_f x[t])   during an event started after base
given back[t] = the headroom's highest in the min-on window minus its value at t (>= 0).
Objective: hashing revenue - power at the real-time price x overhead - hashing lost to
warm-up on s + program capacity and energy payments - the 4CP charge on the peaks' mean.
Min on/off times in this clustered form are the LP relaxation of per-miner binaries (a
fleet is thousands of miners), exact up to whole-miner rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from scheduler.core.mining_outlook import MiningLimits, Program


@dataclass(frozen=True)
class Problem:
    rtm: np.ndarray  # USD/MWh per interval
    headroom_w: np.ndarray  # IT watts above the floor the cap leaves mining
    rated_w: np.ndarray  # per fleet, above floor
    revenue: np.ndarray  # per fleet, USD per MWh above floor
    overhead: float
    interval_h: float
    limits: MiningLimits
    warmup_h: float
    program: Program
    event: np.ndarray  # bool per interval
    event_base: np.ndarray  # the interval before the event (-1: none)
    peaks: list[int]  # the 4CP intervals
    cp4_usd_per_mw: float  # per MW of mean meter load at the peaks
    reference_peak_mw: float  # always-on's mean meter load at the peaks (the 4CP savings' zero)


class _Rows:
    """A sparse constraint matrix built row by row."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.b: list[np.ndarray] = []
        self.count = 0

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float, bound: np.ndarray, nrows: int) -> None:
        self.r.append(np.asarray(rows) + self.count)
        self.c.append(np.asarray(cols))
        self.v.append(np.broadcast_to(np.asarray(vals, dtype=float), np.shape(rows)).copy())
        self.b.append(np.broadcast_to(np.asarray(bound, dtype=float), (nrows,)).copy())
        self.count += nrows

    def matrix(self, ncols: int) -> tuple[sparse.csr_matrix, np.ndarray]:
        a = sparse.csr_matrix((np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))), shape=(self.count, ncols))
        return a, np.concatenate(self.b)


def lp_optimum(p: Problem) -> np.ndarray:
    """Levels above floor (intervals, fleets) in watts."""
    n, k = len(p.rtm), len(p.rated_w)
    nk = n * k
    X, S, D, R = 0, nk, 2 * nk, 3 * nk  # noqa: N806 - offsets of the variable blocks
    A, C = 4 * nk, 4 * nk + n  # noqa: N806
    ncols = 4 * nk + 2 * n
    t_of = np.repeat(np.arange(n), k)
    f_of = np.tile(np.arange(k), n)
    idx = np.arange(nk)
    h = p.interval_h
    committed = p.program.committed_w / 1e6
    cost = np.zeros(ncols)
    cost[X : X + nk] = -(p.revenue[f_of] - p.rtm[t_of] * p.overhead) * h
    cost[S : S + nk] = p.revenue[f_of] * p.warmup_h
    cost[A : A + n] = -p.program.capacity_usd_per_mw_h * h
    cost[C : C + n] = -p.program.energy_usd_per_mwh * h
    for t in p.peaks:  # 4CP: the charge follows the peaks' mean meter load
        cost[X + t * k : X + t * k + k] += p.cp4_usd_per_mw * p.overhead / len(p.peaks)

    eq = _Rows()  # x[t] - x[t-1] - s + d = 0
    prev = idx - k
    has_prev = prev >= 0
    eq.add(
        np.concatenate([idx, idx[has_prev], idx, idx]),
        np.concatenate([X + idx, X + prev[has_prev], S + idx, D + idx]),
        np.concatenate([np.ones(nk), -np.ones(int(has_prev.sum())), -np.ones(nk), np.ones(nk)]),
        0.0,
        nk,
    )
    ub = _Rows()
    ub.add(t_of, X + idx, 1.0, p.headroom_w / 1e6, n)  # the cap
    if np.isfinite(p.limits.resume_w_per_step):
        ub.add(t_of, S + idx, 1.0, p.limits.resume_w_per_step / 1e6, n)
    given_back = np.zeros(n)
    for lag in range(1, p.limits.min_on_steps):
        earlier = np.concatenate([np.full(lag, -np.inf), p.headroom_w[:-lag]])
        given_back = np.maximum(given_back, earlier - p.headroom_w)
    _window(ub, idx, S, R, X, p.limits.min_on_steps, k, nk, -1.0, 0.0)  # starts in the window - x - r <= 0
    ub.add(t_of, R + idx, 1.0, given_back / 1e6, n)
    _window(ub, idx, D, None, X, p.limits.min_off_steps, k, nk, 1.0, np.tile(p.rated_w / 1e6, n))  # x + stops in the window <= rated
    # The program: available (no event) <= overhead x mining; during an event available <= curtailed
    # and curtailed <= overhead x (mining before the event - mining now).
    rows_t = np.arange(n)
    quiet = ~p.event
    ub.add(
        np.concatenate([np.arange(int(quiet.sum())), np.repeat(np.arange(int(quiet.sum())), k)]),
        np.concatenate([A + rows_t[quiet], X + (np.repeat(rows_t[quiet], k) * k + np.tile(np.arange(k), int(quiet.sum())))]),
        np.concatenate([np.ones(int(quiet.sum())), np.full(int(quiet.sum()) * k, -p.overhead)]),
        0.0,
        int(quiet.sum()),
    )
    ev = rows_t[p.event]
    m = len(ev)
    if m:
        ub.add(np.concatenate([np.arange(m), np.arange(m)]), np.concatenate([A + ev, C + ev]), np.concatenate([np.ones(m), -np.ones(m)]), 0.0, m)
        base = p.event_base[ev]
        r_k = np.repeat(np.arange(m), k)
        f_k = np.tile(np.arange(k), m)
        ub.add(
            np.concatenate([np.arange(m), r_k, r_k]),
            np.concatenate([C + ev, X + np.repeat(base, k) * k + f_k, X + np.repeat(ev, k) * k + f_k]),
            np.concatenate([np.ones(m), np.full(m * k, -p.overhead), np.full(m * k, p.overhead)]),
            0.0,
            m,
        )
    bounds = np.zeros((ncols, 2))
    bounds[X : X + nk, 1] = np.tile(p.rated_w / 1e6, n)
    bounds[S : S + nk, 1] = np.inf
    bounds[D : D + nk, 1] = np.inf
    bounds[R : R + nk, 1] = np.inf
    bounds[A : A + n, 1] = committed
    bounds[C : C + n, 1] = np.where(p.event, committed, 0.0)
    a_ub, b_ub = ub.matrix(ncols)
    a_eq, b_eq = eq.matrix(ncols)
    result = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if result.status != 0:
        raise SystemExit(f"LP failed: {result.message}")
    return result.x[X : X + nk].reshape(n, k) * 1e6


def _window(rows: _Rows, idx: np.ndarray, block: int, slack: int | None, level: int, steps: int, k: int, nk: int, level_sign: float, bound) -> None:
    """One row per (t, f): the sum of `block` over the last `steps` intervals + level_sign x
    level (- slack when given) <= bound. Nothing when steps <= 1 (no constraint)."""
    if steps <= 1:
        return
    r_parts, c_parts, v_parts = [idx, idx], [level + idx], [np.full(nk, level_sign)]
    c_parts.insert(0, block + idx)
    v_parts.insert(0, np.ones(nk))
    for lag in range(1, steps):
        ok = idx - lag * k >= 0
        r_parts.append(idx[ok])
        c_parts.append(block + idx[ok] - lag * k)
        v_parts.append(np.ones(int(ok.sum())))
    if slack is not None:
        r_parts.append(idx)
        c_parts.append(slack + idx)
        v_parts.append(-np.ones(nk))
    rows.add(np.concatenate(r_parts), np.concatenate(c_parts), np.concatenate(v_parts), bound, nk)
