"""`powerplane simulate` end to end: on one day of the ERCOT trace (the full one where
../shared/data is, else the sample shipped in the package) and on small files of its
own, writing summary.json, timeseries.csv and power.png. No network, no Ray:
everything runs in-process."""

from __future__ import annotations

import csv
import json
import sys

from scheduler.cli.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def outputs_are_complete(out, sites: int, ticks: int) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "mining_revenue_usd",
        "ai_revenue_usd",
        "power_cost_usd",
        "profit_usd",
        "energy_curtailed_mwh",
        "cap_violations",
        "preemptions",
        "slo_misses",
        "jobs",
    ):
        assert key in summary
    with (out / "timeseries.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sites * ticks
    assert {"time", "site", "cap_w", "price", "ai_w", "mining_w", "overhead_w", "committed_w", "measured_w", "hashprice"} <= set(rows[0])
    png = (out / "power.png").read_bytes()
    assert len(png) > 10_000 and png.startswith(PNG_MAGIC)
    return summary


def test_one_day_of_the_real_trace(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["simulate", "--days", "1", "--out", str(out), "--quiet"]) == 0
    summary = outputs_are_complete(out, sites=2, ticks=1440)
    assert summary["cap_violations"] == 0
    assert summary["mining_revenue_usd"] > 0 and summary["ai_revenue_usd"] > 0 and summary["jobs"]["done"] > 0
    assert summary["window"] == {"start": "2024-06-01T00:00:00", "end": "2024-06-02T00:00:00", "days": 1.0, "tick_s": 60.0, "ticks": 1440}
    printed = capsys.readouterr()
    assert "profit" in printed.out and "cap violations" in printed.out
    assert all(line.startswith("powerplane simulate: using the sample data") for line in printed.err.splitlines())  # no other complaint


def test_own_files_with_a_cap_cut_and_an_emergency(tmp_path, capsys):
    prices = tmp_path / "prices.csv"
    prices.write_text("time,N1\n" + "".join(f"2024-01-01T{h:02d}:00:00,{20 if h != 3 else 900}\n" for h in range(8)))
    sites = tmp_path / "sites.yaml"
    sites.write_text("sites:\n  - {site_id: x, region: r, market_node: N1, cap_mw: 5, overhead: 1.05, gpus: 256, fleets: [{model: A2, count: 1200}]}\n")
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "time_s,kind,gpus,duration_s,priority,slowdown_tolerance_pct,allowed_regions,value_usd_per_gpu_hour\n"
        "0,training,128,14400,0,25,r,1.7\n"
        "600,inference,64,3600,10,0,,2.35\n"
        "1200,training,64,1800,0,0,,1.7\n"
    )
    events = tmp_path / "events.csv"
    events.write_text("kind,site,cap_mw,start,end\ncap_limit,x,0.22,+1h,+2h\nemergency,x,,+4h,+4h30m\n")
    out = tmp_path / "out"
    argv = ["simulate", "--prices", str(prices), "--sites", str(sites), "--arrivals", str(jobs), "--events", str(events)]
    assert main([*argv, "--hashprice", "40", "--days", "0.25", "--tick-s", "30", "--out", str(out)]) == 0
    summary = outputs_are_complete(out, sites=1, ticks=720)
    assert summary["cap_violations"] == 0
    assert summary["jobs"]["done"] == 3 and summary["preemptions"] >= 1  # the emergency preempted training; it resumed
    steps = summary["sites"]["x"]["ladder_steps"]
    assert steps["curtail mining"] >= 1 and steps["power-cap training"] >= 1
    assert summary["inputs"]["forecast"] is None  # a plain price file has no day-ahead column
    captured = capsys.readouterr()
    assert "simulating 100.0%" in captured.err  # the progress line


def test_without_matplotlib_it_names_the_extra_before_simulating(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    out = tmp_path / "out"
    assert main(["simulate", "--prices", str(tmp_path / "absent.csv"), "--days", "0.01", "--out", str(out), "--quiet"]) == 2
    assert "pip install 'powerplane[sim]'" in capsys.readouterr().err
    assert not out.exists()
