"""The simulator's input files: every bad file is refused with its name and the line
or field at fault, and the command exits 2 with one line, not a traceback. Also the
small pure pieces: times and the workload (the slowdown of a power-capped run:
test_gpu_speed.py)."""

from __future__ import annotations

import pytest

from scheduler.cli.main import main
from scheduler.core.jobs import JobKind
from scheduler.sim import workload
from scheduler.sim.files import InputError, parse_time
from scheduler.sim.scenario import load_arrivals, load_events, load_sites
from scheduler.sim.traces import load_hashprice, load_prices

SITE = """sites:
  - site_id: a
    region: us
    market_node: HB_SOUTH
    cap_mw: 10
    cooling: hydro
    gpus: 64
    fleets:
      - {model: S21, count: 100}
"""
ARRIVALS_HEADER = "time_s,kind,gpus,duration_s,priority,slowdown_tolerance_pct,allowed_regions,value_usd_per_gpu_hour\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_sites_file_reads_into_core_types(tmp_path):
    (site,) = load_sites(write(tmp_path, "sites.yaml", SITE))
    assert site.site_id == "a" and site.region == "us" and site.market_node == "HB_SOUTH"
    assert site.power.cap_w == 10e6 and site.power.overhead == 1.04 and site.power.gpus == 64
    assert site.power.fleets[0].model.name == "Antminer S21" and site.power.fleets[0].count == 100


def test_an_unknown_miner_model_names_file_line_and_field(tmp_path):
    path = write(tmp_path, "sites.yaml", SITE.replace("model: S21", "model: S9"))
    with pytest.raises(InputError) as err:
        load_sites(path)
    assert str(err.value) == f"{path}:9: sites[0].fleets[0].model: unknown miner model 'S9' (known: A2, S19XP, S21)"


def test_bad_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "sites.yaml", SITE.replace("cap_mw: 10", "cap_mw: [10"))
    with pytest.raises(InputError, match=rf"^{path}:\d+: bad YAML"):
        load_sites(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (("cap_mw: 10", "cap_mw: lots"), r":5: sites\[0\].cap_mw: expected a number, got 'lots'"),
        (("cooling: hydro", "cooling: oil"), r":6: sites\[0\].cooling: cooling must be air or hydro"),
        (("    region: us\n", ""), None),
        (("  - site_id: a\n", "  - name: a\n"), r"sites\[0\].site_id: missing"),
        (("cap_mw: 10", "cap_mw: 0.001"), r"sites\[0\].cap_mw: idle GPUs and paused miners alone draw"),
    ],
)
def test_bad_site_fields_are_named(tmp_path, change, message):
    path = write(tmp_path, "sites.yaml", SITE.replace(*change))
    if message is None:  # region is optional
        assert load_sites(path)[0].region == "default"
        return
    with pytest.raises(InputError, match=message):
        load_sites(path)


def test_arrivals_missing_a_column_or_with_a_bad_value(tmp_path):
    path = write(tmp_path, "jobs.csv", "time_s,kind,gpus\n0,training,8\n")
    with pytest.raises(InputError, match=r"jobs.csv:1: missing column\(s\) duration_s, priority"):
        load_arrivals(path)
    path = write(tmp_path, "jobs.csv", ARRIVALS_HEADER + "0,training,8,3600,0,25,us;eu,2.0\n60,serving,8,600,0,0,,2.0\n")
    with pytest.raises(InputError, match=r"jobs.csv:3: kind: kind must be training or inference, got 'serving'"):
        load_arrivals(path)
    path = write(tmp_path, "jobs.csv", ARRIVALS_HEADER + "0,training,8.5,3600,0,25,,2.0\n")
    with pytest.raises(InputError, match=r"jobs.csv:2: gpus: expected a whole number"):
        load_arrivals(path)


def test_arrivals_read(tmp_path):
    path = write(tmp_path, "jobs.csv", ARRIVALS_HEADER + "60,inference,8,600,5,0,,2.35\n0,training,16,3600,0,25,us;eu,1.7\n")
    first, second = load_arrivals(path)
    assert first.kind == JobKind.TRAINING and first.allowed_regions == ("us", "eu") and first.slowdown_tolerance_pct == 25
    assert second.time_s == 60 and second.priority == 5 and second.value_usd_per_gpu_hour == 2.35


def test_events_yaml_and_csv(tmp_path):
    sites = load_sites(write(tmp_path, "sites.yaml", SITE))
    path = write(
        tmp_path,
        "events.yaml",
        "events:\n  - {kind: cap_limit, site: a, cap_mw: 5, start: +1h, end: +2h}\n  - {kind: emergency, site: a, start: 7200, end: +3h}\n",
    )
    cut, emergency = load_events(path, 1000.0, sites)
    assert (cut.start, cut.end, cut.cap_w) == (4600.0, 8200.0, 5e6)
    assert (emergency.start, emergency.end) == (8200.0, 11800.0)
    path = write(tmp_path, "events.yaml", "events:\n  - {kind: cap_limit, site: b, cap_mw: 5, start: +1h, end: +2h}\n")
    with pytest.raises(InputError, match=r"events.yaml:2: events\[0\].site: unknown site 'b'"):
        load_events(path, 0.0, sites)
    path = write(tmp_path, "events.csv", "kind,site,cap_mw,start,end\ncap_limit,a,5,+2h,+1h\n")
    with pytest.raises(InputError, match=r"events.csv:2: end: end must be after start"):
        load_events(path, 0.0, sites)


def test_price_and_hashprice_files(tmp_path):
    path = write(tmp_path, "p.csv", "time,HB_SOUTH\n2024-06-01T00:00:00,20\n2024-06-01T00:15:00,x\n")
    with pytest.raises(InputError, match=r"p.csv:3: HB_SOUTH: expected a number, got 'x'"):
        load_prices(path)
    path = write(tmp_path, "p.csv", "time,HB_SOUTH\n2024-06-01T00:00:00,20\n2024-06-01T00:15:00,30\n")
    trace = load_prices(path)
    t0 = parse_time("2024-06-01T00:00:00")
    assert trace.interval_s == 900 and trace.at("HB_SOUTH", t0 + 899) == 20 and trace.at("HB_SOUTH", t0 + 900) == 30
    assert trace.settled_before("HB_SOUTH", t0 + 899) is None and trace.settled_before("HB_SOUTH", t0 + 900) == 20
    with pytest.raises(InputError, match=r"h.csv:1: missing column\(s\) usd_per_ph_day"):
        load_hashprice(str(write(tmp_path, "h.csv", "time,price\n")))
    assert load_hashprice("38.2").at(0) == 38.2


def test_the_command_exits_2_with_one_line(tmp_path, capsys):
    bad = write(tmp_path, "sites.yaml", SITE.replace("model: S21", "model: S9"))
    prices = write(tmp_path, "p.csv", "time,HB_SOUTH\n2024-06-01T00:00:00,20\n2024-06-01T00:15:00,30\n")
    assert main(["simulate", "--sites", str(bad), "--prices", str(prices), "--events", "none", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"powerplane simulate: {bad}:9: sites[0].fleets[0].model: unknown miner model 'S9' (known: A2, S19XP, S21)"
    assert main(["simulate", "--prices", str(tmp_path / "nope.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope.csv: no such file (--prices)" in err and "--data-dir" in err and "POWERPLANE_DATA_DIR" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_times():
    assert parse_time("2024-06-01T00:00:00") == 1717200000.0
    assert parse_time("+1d2h30m", start=100.0) == 100.0 + 86400 + 2 * 3600 + 1800
    assert parse_time(60, start=100.0) == 160.0
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_the_generated_workload_follows_the_azure_shape(tmp_path):
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"2023-11-16 18:{m:02d}:00.0000000,1000,{100 if m < 15 else 300}" for m in range(60)]
    shape = workload.inference_shape([write(tmp_path, "azure.csv", "\n".join(rows) + "\n")], 900.0)
    assert len(shape) == 4 and shape[0] < shape[1] == shape[2] == shape[3]
    minutes, work = workload.demand_shape([tmp_path / "azure.csv"])
    assert len(minutes) == 60 and sum(minutes) == pytest.approx(60.0) and minutes[0] < minutes[30]
    assert work == pytest.approx((15 * (0.1 + 0.1) + 45 * (0.1 + 0.3)) / 60)  # GPU-seconds per request
    jobs = workload.generate([tmp_path / "azure.csv"], 1024, 1024, 7200.0, seed=3, inference_share=0.5)
    services = [a for a in jobs if a.kind == JobKind.INFERENCE]
    assert services and all(a.service.demand.shape == minutes for a in services)
    assert all(a.gpus <= 1024 for a in jobs)
    assert jobs == workload.generate([tmp_path / "azure.csv"], 1024, 1024, 7200.0, seed=3, inference_share=0.5)