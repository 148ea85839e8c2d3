"""A newcomer's first run, on a fresh clone without ../shared/data: the one data
resolver (scheduler/sim/data.py) falls back on the sample shipped in the package, which
`powerplane simulate`, the demo's chat demand and the Zeus tests run on; a missing file
names the options that choose another; the sample is small, attributed, packaged and a
true slice of the full data; the example scheduler config loads and the README's
commands name what it defines; the demo's first sites table waits for real readings."""

from __future__ import annotations

import csv
import json
import re
import tomllib
from fnmatch import fnmatch

import pytest

from powerplane_dev import demo
from scheduler.api.v1 import operator_pb2
from scheduler.cli.main import main
from scheduler.sim import data as datasets
from scheduler.sim.workload import inference_shape
from scheduler.sim.zeus import speed_curve_from

REPO = datasets.REPO
SAMPLE = datasets.SAMPLE_DIR


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """No $POWERPLANE_DATA_DIR and no ../shared/data beside the repository."""
    monkeypatch.delenv(datasets.ENV, raising=False)
    monkeypatch.setattr(datasets, "SHARED_DIR", tmp_path / "no-shared" / "data")
    return tmp_path


def test_the_resolver_takes_the_variable_then_shared_data_then_the_sample(tmp_path, monkeypatch):
    shared = tmp_path / "shared" / "data"
    monkeypatch.setattr(datasets, "SHARED_DIR", shared)
    monkeypatch.delenv(datasets.ENV, raising=False)
    assert datasets.data_dir() == SAMPLE
    shared.mkdir(parents=True)
    assert datasets.data_dir() == shared
    monkeypatch.setenv(datasets.ENV, str(tmp_path / "chosen"))
    assert datasets.data_dir() == tmp_path / "chosen"  # as given, even if it is not there: a missing file says so


def test_simulate_on_a_fresh_clone_runs_on_the_sample(fresh_clone, capsys):
    out = fresh_clone / "out"
    assert main(["simulate", "--days", "1", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    inputs = summary["inputs"]
    assert datasets.is_sample(inputs["prices"]) and datasets.is_sample(inputs["forecast"])
    assert "zeus_a40" in inputs["speed_curve"] and str(SAMPLE) in inputs["speed_curve"]
    assert summary["window"]["start"] == "2024-06-01T00:00:00" and summary["cap_violations"] == 0
    assert summary["ai_revenue_usd"] > 0 and summary["mining_revenue_usd"] > 0  # inference from the sample's Azure slice
    err = capsys.readouterr().err
    assert "using the sample data shipped in the package" in err and "--data-dir" in err and "$POWERPLANE_DATA_DIR" in err


def test_the_default_week_and_the_second_are_in_the_sample(fresh_clone, capsys):
    for start in ("2024-06-01", "2024-06-08"):
        assert main(["simulate", "--start", start, "--days", "0.05", "--events", "none", "--out", str(fresh_clone / start), "--quiet"]) == 0
    assert main(["simulate", "--start", "2024-08-17", "--out", str(fresh_clone / "spike"), "--quiet"]) == 2
    assert "the sample's two weeks; choose the data folder with --data-dir or $POWERPLANE_DATA_DIR" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["empty data folder", "missing --prices"])
def test_a_missing_price_file_names_the_options_that_choose_another(tmp_path, monkeypatch, capsys, how):
    monkeypatch.setenv(datasets.ENV, str(tmp_path / "empty"))
    argv = ["simulate", "--out", str(tmp_path / "out"), "--quiet"]
    if how == "missing --prices":
        argv += ["--prices", str(tmp_path / "absent.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" not in err
    for name in ("--prices", "--data-dir", "$POWERPLANE_DATA_DIR"):
        assert name in err, err
    assert not (tmp_path / "out").exists()


def test_the_sample_is_small_attributed_and_packaged():
    files = sorted(p.name for p in SAMPLE.iterdir())
    assert files == [
        "SOURCES.md",
        "azure_llm_inference_code_2023-11-16.csv",
        "azure_llm_inference_conv_2023-11-16.csv",
        "ercot_hb_south_15min_2024-06-01_2024-06-14.csv",
        "zeus_a40_power_limit_vs_epoch_time.csv",
        "zeus_v100_power_limit_vs_epoch_time.csv",
    ]
    assert all((SAMPLE / name).stat().st_size < 500_000 for name in files)
    sources = (SAMPLE / "SOURCES.md").read_text()
    for needle in (*files[1:], "MIT", "CC BY 4.0", "Apache-2.0", "Microsoft Azure", "Thibaud Cambronne", "ml-energy/zeus"):
        assert needle in sources, needle
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["scheduler.sim"]
    assert all(any(fnmatch(f"sample_data/{name}", pattern) for pattern in package_data) for name in files)


def test_the_sample_holds_two_whole_weeks_half_an_hour_of_azure_and_the_zeus_files():
    ercot = datasets.find(SAMPLE, datasets.ERCOT)
    with ercot.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 14 * 96 and rows[0]["interval_start"] == "2024-06-01T00:00:00" and rows[-1]["interval_start"] == "2024-06-14T23:45:00"
    shape = inference_shape(datasets.find_all(SAMPLE, datasets.AZURE), 900.0)
    assert len(shape) == 2 and min(shape) > 0  # two whole 15-minute blocks of real requests
    _, source = speed_curve_from(SAMPLE)
    assert "zeus_a40" in source and "zeus_v100" in source


@pytest.mark.skipif(not datasets.SHARED_DIR.is_dir(), reason="the full data (../shared/data) is not here to compare with")
def test_the_sample_is_a_true_slice_of_the_full_data():
    full = datasets.SHARED_DIR
    for sample in sorted(SAMPLE.glob("*.csv")):
        lines = sample.read_text().splitlines()
        original = datasets.find(full, datasets.ERCOT) if sample.name.startswith("ercot") else full / sample.name
        assert original.read_text().splitlines()[: len(lines)] == lines, sample.name  # the first rows, unchanged
        if sample.name.startswith("zeus"):
            assert sample.read_bytes() == original.read_bytes()


def test_the_demo_replays_the_shipped_azure_slice(fresh_clone):
    arrivals = demo._chat_demand()
    assert len(arrivals) == sum(int(s * rps) for s, rps in demo.DEMAND_PHASES)
    with datasets.find(SAMPLE, datasets.AZURE_CONVERSATION).open() as handle:
        rows = list(csv.DictReader(handle))[: len(arrivals)]
    assert [(a.prompt_tokens, a.max_tokens) for a in arrivals] == [(int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in rows]
    assert all(b.at_s >= a.at_s for a, b in zip(arrivals, arrivals[1:]))


# ---------------------------------------------------------------- the README and its example config
def test_the_example_scheduler_config_loads_and_the_readme_uses_what_it_defines():
    from scheduler.server.config import load_config

    config = load_config(REPO / "examples" / "scheduler.yaml")
    assert config.regions == ["us", "eu"] and config.listen == "127.0.0.1:50051"
    assert config.metrics_listen and f"curl -s {config.metrics_listen}/metrics" in (REPO / "README.md").read_text()
    assert {s.site_id: s.region for s in demo.SITES} == {"us-tx-1": "us", "eu-no-1": "eu"}
    assert set(config.sites) == {s.site_id for s in demo.SITES} and set(config.tenants) == {"acme", "globex"} and set(config.operators) == {"ops"}
    assert len(config.token_owners()) == 5
    readme = (REPO / "README.md").read_text()
    assert "powerplane scheduler --config examples/scheduler.yaml" in readme
    assert f"echo {config.sites['us-tx-1']} > site.token" in readme and f"POWERPLANE_TOKEN={config.tenants['acme']}" in readme
    sites = set(re.findall(r"--site ([a-z0-9.-]+)", readme))
    assert sites and sites <= set(config.sites), sites
    assert "../shared" not in readme.replace("`../shared/data` beside the repository", "")


# ---------------------------------------------------------------- the demo's first sites table
class _Ops:
    def __init__(self, *readings):
        self.readings = list(readings)

    def sites(self):
        measured = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        power = operator_pb2.SitePowerStatus(cap_w=950_000, measured_w=measured)
        return operator_pb2.ListSitesResponse(sites=[operator_pb2.Site(site_id="us-tx-1", power=power), operator_pb2.Site(site_id="eu-no-1")])


def test_the_demo_shows_its_sites_once_the_meter_reads_under_the_cap(capsys):
    sites = demo._sites_once_metered(_Ops(0.0, 1_075_000.0, 940_000.0), demo.time.monotonic() + 10)  # none yet, unread miners at rated, read
    assert sites[0].power.measured_w == 940_000.0 and capsys.readouterr().out == ""


def test_the_demo_says_what_the_figure_means_when_readings_do_not_come(capsys):
    sites = demo._sites_once_metered(_Ops(1_075_000.0), demo.time.monotonic() + 0.6)
    assert sites[0].power.measured_w == 1_075_000.0
    assert "us-tx-1" in (out := capsys.readouterr().out) and "not read yet at their rated power" in out
