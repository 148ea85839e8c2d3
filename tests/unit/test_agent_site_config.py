"""The agent's site config: the documented format, defaults, wire form, and one-line
errors naming the file and the field."""

import argparse

import pytest
import yaml

from agents import wire
from agents.main import site_power_from
from agents.site_config import SiteConfigError, load_site_config
from powerplane_dev.cluster import FleetSpec, SitePowerSpec
from scheduler.core.power import MINER_MODELS

GOOD = {
    "interconnect_cap_mw": 5.0,
    "cooling": "hydro",
    "gpu_load_w": 1200,
    "gpu_idle_w": 150,
    "market_node": "HB_WEST",
    "fleets": [
        {"fleet_id": "s21-a", "model": "S21", "count": 400},
        {"fleet_id": "xp-old", "model": "S19XP", "count": 200, "ramp_down_s": 3, "ramp_up_s": 2, "standby_w": 30},
    ],
}


def write(tmp_path, data, name="site.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_documented_format_is_read_and_goes_on_the_wire(tmp_path):
    config = load_site_config(write(tmp_path, GOOD))
    power = wire.site_power_to_proto(config)
    assert power.interconnect_cap_w == 5e6 and power.cooling == "hydro" and power.overhead == pytest.approx(1.04)
    assert (power.gpu_load_w, power.gpu_idle_w, power.market_node) == (1200, 150, "HB_WEST")
    s21, xp = wire.fleets_to_proto(config)
    assert (s21.fleet_id, s21.model, s21.count) == ("s21-a", "S21", 400)
    assert (s21.rated_w, s21.ths, s21.min_w, s21.standby_w) == (3500, 200, 2400, 25)
    assert (s21.ramp_down_s, s21.ramp_up_s, s21.can_pause, s21.takes_power_limit) == (5, 10, True, True)
    assert (xp.model, xp.rated_w, xp.standby_w, xp.ramp_down_s, xp.ramp_up_s) == ("S19XP", 3010, 30, 3, 2)
    fleet = config.fleet_models()[1]
    assert fleet.standby_w == 200 * 30 and fleet.max_w == 200 * 3010 and fleet.model.ramp_down_s == 3
    assert MINER_MODELS["S19XP"].standby_w == 25  # overrides never touch the shared models


def test_without_a_file_the_site_has_no_fleets_and_no_cap():
    config = load_site_config(None)
    assert config.fleets == [] and config.interconnect_cap_w == 0
    power = wire.site_power_to_proto(config)
    assert (power.cooling, power.overhead, power.gpu_load_w, power.gpu_idle_w) == ("air", pytest.approx(1.10), 1000, 150)


def test_an_explicit_overhead_wins_over_the_cooling(tmp_path):
    config = load_site_config(write(tmp_path, {"interconnect_cap_mw": 1, "cooling": "air", "overhead": 1.2}))
    assert wire.site_power_to_proto(config).overhead == 1.2 and wire.site_power_to_proto(config).cooling == "air"


@pytest.mark.parametrize(
    "change,message",
    [
        ({"fleets": [{"fleet_id": "a", "model": "S9", "count": 1}]}, "fleets.0.model: unknown miner model 'S9'; expected one of A2, S19XP, S21"),
        ({"fleets": [{"fleet_id": "a", "model": "S21", "count": 0}]}, "fleets.0.count: Input should be greater than or equal to 1"),
        ({"fleets": [{"fleet_id": "a", "model": "S21", "count": 1, "ramp_up_s": 0}]}, "fleets.0.ramp_up_s: Input should be greater than 0"),
        ({"fleets": [{"fleet_id": "a", "model": "S21", "count": 1, "standby_w": 4000}]}, "fleets.0: standby_w must be below the model's rated power"),
        ({"fleets": [{"fleet_id": "a", "model": "S21", "count": 1, "colour": "red"}]}, "fleets.0.colour: Extra inputs are not permitted"),
        ({"fleets": [{"fleet_id": "a", "model": "S21", "count": 1}, {"fleet_id": "a", "model": "A2", "count": 1}]}, "fleet ids must be unique: a"),
        ({"cooling": "oil"}, "cooling: Input should be 'air' or 'hydro'"),
        ({"overhead": 0.9}, "overhead: Input should be greater than or equal to 1"),
        ({"gpu_idle_w": 2000}, "gpu_idle_w must be below gpu_load_w"),
        ({"interconnect_cap_mw": -1}, "interconnect_cap_mw: Input should be greater than 0"),
        ({"interconnect_cap_mw": None}, "a site with fleets needs interconnect_cap_mw"),
        ({"miner_poll_s": 0.05}, "miner_poll_s: Input should be greater than or equal to 0.2"),
    ],
)
def test_bad_fields_are_named_in_one_line(tmp_path, change, message):
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(SiteConfigError) as err:
        load_site_config(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


@pytest.mark.parametrize(
    "content,message",
    [("fleets: [unclosed", "not valid YAML at line"), ("- just\n- a list\n", "expected a mapping of fields, got list")],
)
def test_unreadable_files_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "site.yaml"
    path.write_text(content)
    with pytest.raises(SiteConfigError, match=message):
        load_site_config(path)
    with pytest.raises(SiteConfigError, match="cannot read"):
        load_site_config(tmp_path / "missing.yaml")


def test_the_agent_exits_with_one_line_on_a_bad_file(tmp_path):
    path = write(tmp_path, {"cooling": "oil"})
    with pytest.raises(SystemExit) as exit_:
        site_power_from(argparse.Namespace(site_config=path))
    assert str(exit_.value) == f"powerplane agent: bad site config {path}: cooling: Input should be 'air' or 'hydro'"


def test_the_dev_cluster_power_spec_is_a_valid_site_config(tmp_path):
    spec = SitePowerSpec(interconnect_cap_mw=0.05, cooling="hydro", market_node="HB_WEST", fleets=(FleetSpec("s21", "S21", 10, ramp_down_s=2, ramp_up_s=3),))
    config = load_site_config(write(tmp_path, spec.site_config()))
    assert config.interconnect_cap_w == 5e4 and config.effective_overhead == pytest.approx(1.04)
    assert config.fleets[0].fleet().model.ramp_up_s == 3 and config.fleets[0].fleet().model.standby_w == 25


def test_the_agent_reads_real_miners_as_often_as_miner_poll_s_says(tmp_path):
    from agents.miners.driver import site_fleet_driver

    fleet = {"fleet_id": "s21-real", "model": "S21", "count": 2, "miners": ["10.0.1.1-2"]}
    config = load_site_config(write(tmp_path, {**GOOD, "miner_poll_s": 5, "fleets": [fleet]}))
    assert site_fleet_driver(config).poll_s == 5.0
    assert site_fleet_driver(load_site_config(write(tmp_path, {**GOOD, "fleets": [fleet]}, "default.yaml"))).poll_s == 1.0
