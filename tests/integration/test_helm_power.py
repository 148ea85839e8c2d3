"""Power settings through the chart: scheduler.power in scheduler.yaml (loaded
with the scheduler's load_config) and each site's `power:` block as the
agent's --site-config file (read with agents/site_config.py), plus the power
blocks the chart must refuse, naming the field, as the agent would.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from tests.integration.helm_support import (
    CHART,
    MULTISITE_POWER,
    MULTISITE_VALUES,
    NAMESPACE,
    SITE_CONFIG_PATH,
    VARIANTS,
    agent_deployments,
    arg_value,
    component,
    load_rendered_config,
    mounted_configmap_file,
    only_container,
    render,
    run_helm,
    site_values,
    template,
    volume_at,
    volumes,
    write_values,
)

# Per variant: site id -> the site config its agent must be given (sites not
# listed get none).
EXPECTED_SITE_POWER = {
    "default": {},
    "multisite": MULTISITE_POWER,
    "production": MULTISITE_POWER,  # values-production.yaml leaves power alone
    "tls-inline": {
        "EU_West.2": {
            "interconnect_cap_mw": 5,
            "cooling": "hydro",
            "market_node": "DE-LU",
            "fleets": [{"fleet_id": "xp-old", "model": "S19XP", "count": 200, "ramp_down_s": 3, "ramp_up_s": 3, "standby_w": 30}],
        }
    },
}


def _scheduler_power(hashprice, interval, lead, margin, hysteresis, min_on, min_off, resume=(10, 30)) -> dict:
    return {
        "hashprice_usd_per_ph_day": hashprice,
        "power_interval_s": interval,
        "cap_lead_s": lead,
        "mining": {
            "margin_usd_per_mwh": margin, "hysteresis_usd_per_mwh": hysteresis, "min_on_s": min_on, "min_off_s": min_off,
            "resume_mw_per_min": resume[0], "resume_step_s": resume[1],
            "policy": "breakeven", "warmup_s": 300, "peak_strike_usd_per_mwh": 70, "peak_before_day_ahead_h": 1, "peak_after_day_ahead_h": 1.5, "peak_start_h": 18.5, "peak_end_h": 20.5,
            "timezone": "America/Chicago",
        },
    }


# Per variant: the power settings scheduler.yaml must hold.
EXPECTED_SCHEDULER_POWER = {
    "default": _scheduler_power(45, 1.0, 10, 0, 2, 300, 300),
    "multisite": _scheduler_power(48.5, 1.0, 30, 5, 2, 600, 600),
    "production": _scheduler_power(48.5, 1.0, 30, 5, 2, 600, 600),
    "tls-inline": _scheduler_power(45, 1.0, 20, -5, 2, 300, 300),
}


def _power_settings(config) -> dict:
    return {
        "hashprice_usd_per_ph_day": config.hashprice_usd_per_ph_day,
        "power_interval_s": config.power_interval_s,
        "cap_lead_s": config.cap_lead_s,
        "mining": config.mining.model_dump(),
    }


def test_chart_power_defaults_are_the_schedulers():
    """values.yaml's scheduler.power defaults are SchedulerConfig's own defaults."""
    from scheduler.server.config import SchedulerConfig

    assert _power_settings(SchedulerConfig()) == EXPECTED_SCHEDULER_POWER["default"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_power_settings_load_in_the_real_scheduler(variant, tmp_path):
    loaded = load_rendered_config(render(variant), tmp_path)
    assert _power_settings(loaded) == EXPECTED_SCHEDULER_POWER[variant]


def test_fractional_and_zero_power_settings_render_exactly(tmp_path):
    power = {
        "hashpriceUsdPerPhDay": 47.3,
        "intervalSeconds": 0.5,
        "capLeadSeconds": 12.5,
        "mining": {"marginUsdPerMwh": -2.5, "hysteresisUsdPerMwh": 0.25, "minOnSeconds": 0, "minOffSeconds": 90, "resumeMwPerMin": 0, "resumeStepSeconds": 7.5},
    }
    result = template(values=(write_values(tmp_path, {"scheduler": {"power": power}}),))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (tmp_path / "load").mkdir()
    loaded = load_rendered_config(docs, tmp_path / "load")
    assert _power_settings(loaded) == _scheduler_power(47.3, 0.5, 12.5, -2.5, 0.25, 0, 90, (0, 7.5))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_agent_site_configs(variant, tmp_path):
    """A site with `power:` gets --site-config pointing at its own mounted
    ConfigMap key, whose text the agent's real loader reads back as the values
    given; a site without it gets nothing new."""
    from agents.site_config import load_site_config, parse_site_config
    from scheduler.cli.main import _parser

    docs = render(variant)
    expected = EXPECTED_SITE_POWER[variant]
    agents = agent_deployments(docs)
    assert set(expected) <= set(agents)
    assert len(component(docs, "ConfigMap", "agent")) == len(expected)
    for site, dep in agents.items():
        c = only_container(dep)
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        if site not in expected:
            assert "--site-config" not in c["args"]
            assert "checksum/site-config" not in annotations
            assert not [v for v in volumes(dep).values() if "configMap" in v]
            continue
        path = arg_value(c["args"], "--site-config")
        assert path == SITE_CONFIG_PATH
        assert _parser().parse_args(c["args"]).site_config == Path(path)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        text = mounted_configmap_file(docs, dep, path)
        # The ConfigMap is this site's own (named like its Deployment).
        assert volume_at(dep, os.path.dirname(path))["configMap"]["name"] == dep["metadata"]["name"]
        assert yaml.safe_load(text) == expected[site]
        # The pod rolls when the file changes: the checksum is of the file's text.
        assert annotations["checksum/site-config"] == hashlib.sha256(text.rstrip("\n").encode()).hexdigest()

        file = tmp_path / f"{site}.yaml"
        file.write_text(text)
        loaded = load_site_config(file)
        assert loaded.model_dump() == parse_site_config(expected[site]).model_dump()  # the fields (a loaded config also knows its folder)
        want = expected[site]
        assert loaded.interconnect_cap_w == want["interconnect_cap_mw"] * 1e6
        assert loaded.cooling.value == want["cooling"]
        assert loaded.market_node == want["market_node"]
        assert [(f.fleet_id, f.model, f.count) for f in loaded.fleets] == [(f["fleet_id"], f["model"], f["count"]) for f in want["fleets"]]
        for fleet, given in zip(loaded.fleets, want["fleets"]):
            for field in ("ramp_down_s", "ramp_up_s", "standby_w"):
                assert getattr(fleet, field) == given.get(field)


def test_multisite_power_profiles():
    """The example file's sites: Texas on air with two fleets, Norway on hydro, Ohio unmanaged."""
    from agents.site_config import parse_site_config

    tx = parse_site_config(MULTISITE_POWER["us-tx-1"])
    assert tx.interconnect_cap_mw == 100 and tx.effective_overhead == pytest.approx(1.10)
    assert {f.model for f in tx.fleets} == {"S21", "S19XP"}
    no = parse_site_config(MULTISITE_POWER["eu-no-1"])
    assert no.effective_overhead == pytest.approx(1.04)
    for config in (tx, no):  # the fleets at full power fit under the cap
        mining_w = sum(fleet.model.rated_w * fleet.count for fleet in config.fleet_models())
        assert mining_w * config.effective_overhead < config.interconnect_cap_w
    assert "us-oh-1" not in MULTISITE_POWER


def test_site_config_checksum_rolls_only_that_agent():
    before = agent_deployments(render("multisite"))
    result = template(values=(MULTISITE_VALUES,), sets=("sites[0].power.interconnect_cap_mw=90",))
    assert result.returncode == 0, result.stderr
    after = agent_deployments([d for d in yaml.safe_load_all(result.stdout) if d])

    def annotations(deps, site):
        return deps[site]["spec"]["template"]["metadata"]["annotations"]

    assert annotations(after, "us-tx-1")["checksum/site-config"] != annotations(before, "us-tx-1")["checksum/site-config"]
    assert annotations(after, "us-tx-1")["checksum/token"] == annotations(before, "us-tx-1")["checksum/token"]
    for site in ("us-oh-1", "eu-no-1"):
        assert annotations(after, site) == annotations(before, site)


def test_schema_power_block_matches_the_agent():
    """The schema's power block has the agent's fields, miner models and cooling kinds."""
    from agents.site_config import _FLEET_ID, FleetConfig, SiteConfig
    from scheduler.core.power import MINER_MODELS, Cooling

    schema = json.loads((CHART / "values.schema.json").read_text())
    power = schema["properties"]["sites"]["items"]["properties"]["power"]
    fleet = power["properties"]["fleets"]["items"]
    assert set(power["properties"]) == set(SiteConfig.model_fields)
    assert set(fleet["properties"]) == set(FleetConfig.model_fields)
    assert power["additionalProperties"] is False and fleet["additionalProperties"] is False
    assert set(fleet["required"]) == {name for name, field in FleetConfig.model_fields.items() if field.is_required()}
    assert sorted(fleet["properties"]["model"]["enum"]) == sorted(MINER_MODELS)
    assert sorted(power["properties"]["cooling"]["enum"]) == sorted(c.value for c in Cooling)
    assert fleet["properties"]["fleet_id"]["pattern"] == _FLEET_ID


def _fleet(**fields) -> dict:
    return {"fleet_id": "f1", "model": "S21", "count": 10, **fields}


GOOD_POWER_BLOCKS = {
    "gpu-only": {"gpu_load_w": 1200.5, "gpu_idle_w": 999},
    "no-fleets-no-cap": {"market_node": "HB_NORTH", "fleets": []},
    "overhead-bounds": {"interconnect_cap_mw": 5.5, "overhead": 1, "fleets": [_fleet(count=1)]},
    "overhead-max": {"interconnect_cap_mw": 0.5, "overhead": 3, "cooling": "hydro"},
    "overrides": {"interconnect_cap_mw": 5, "fleets": [_fleet(ramp_down_s=0.5, ramp_up_s=30, standby_w=0)]},
    "meter-and-frequency-response": {
        "interconnect_cap_mw": 5,
        "fleets": [_fleet()],
        "meter": {
            "host": "10.0.0.5", "port": 502, "unit_id": 3, "disagree_margin": 0.1,
            "power": {"address": 100, "type": "int32", "word_order": "little", "scale": 1000, "table": "input"},
            "frequency": {"address": 110},
        },
        "frequency_response": {"trip_hz": 59.7, "reset_hz": 59.9, "hold_s": 600, "fleets": ["f1"]},
    },
    **{
        f"standby-just-below-{model}": {"interconnect_cap_mw": 5, "fleets": [_fleet(model=model, standby_w=rated - 0.5)]}
        for model, rated in (("S19XP", 3010), ("S21", 3500), ("A2", 3730))
    },
}


@pytest.mark.parametrize("name", sorted(GOOD_POWER_BLOCKS))
def test_good_power_blocks_render_and_load(name, tmp_path):
    from agents.site_config import load_site_config, parse_site_config

    power = GOOD_POWER_BLOCKS[name]
    parse_site_config(power)  # the agent takes it ...
    result = template(values=(write_values(tmp_path, site_values(power)),))
    assert result.returncode == 0, f"{name}: {result.stderr}"  # ... and so does the chart
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    dep = agent_deployments(docs)["us-1"]
    text = mounted_configmap_file(docs, dep, arg_value(only_container(dep)["args"], "--site-config"))
    (tmp_path / "site.yaml").write_text(text)
    assert load_site_config(tmp_path / "site.yaml").model_dump() == parse_site_config(power).model_dump()


def test_standby_limits_are_the_models_rated_power():
    """The chart's rated-power table (standby_w check) is MINER_MODELS': for
    every model, the good blocks put standby_w just below rated power and the
    bad ones at it."""
    from scheduler.core.power import MINER_MODELS

    tested = {name.removeprefix("standby-just-below-") for name in GOOD_POWER_BLOCKS if name.startswith("standby-just-below-")}
    assert tested == set(MINER_MODELS)
    at_rated = {name: power for name, power, _ in BAD_POWER_BLOCKS if name.startswith("standby-at-rated-")}
    assert {name.removeprefix("standby-at-rated-") for name in at_rated} == set(MINER_MODELS)
    for model, spec in MINER_MODELS.items():
        assert GOOD_POWER_BLOCKS[f"standby-just-below-{model}"]["fleets"][0]["standby_w"] == spec.rated_w - 0.5
        assert at_rated[f"standby-at-rated-{model}"]["fleets"][0]["standby_w"] == spec.rated_w


BAD_POWER_BLOCKS = [
    # (name, power block, what the error must say)
    ("unknown-model", {"interconnect_cap_mw": 5, "fleets": [_fleet(model="S19")]}, "sites.0.power.fleets.0.model must be one of the following"),
    ("negative-count", {"interconnect_cap_mw": 5, "fleets": [_fleet(count=-3)]}, "sites.0.power.fleets.0.count: Must be greater than or equal to 1"),
    ("zero-count", {"interconnect_cap_mw": 5, "fleets": [_fleet(count=0)]}, "sites.0.power.fleets.0.count: Must be greater than or equal to 1"),
    ("fractional-count", {"interconnect_cap_mw": 5, "fleets": [_fleet(count=2.5)]}, "sites.0.power.fleets.0.count: Invalid type. Expected: integer"),
    ("missing-fleet-id", {"interconnect_cap_mw": 5, "fleets": [{"model": "S21", "count": 1}]}, "sites.0.power.fleets.0: fleet_id is required"),
    ("missing-model", {"interconnect_cap_mw": 5, "fleets": [{"fleet_id": "a", "count": 1}]}, "sites.0.power.fleets.0: model is required"),
    ("missing-count", {"interconnect_cap_mw": 5, "fleets": [{"fleet_id": "a", "model": "A2"}]}, "sites.0.power.fleets.0: count is required"),
    ("bad-fleet-id", {"interconnect_cap_mw": 5, "fleets": [_fleet(fleet_id="-x")]}, "sites.0.power.fleets.0.fleet_id: Does not match pattern"),
    ("unknown-fleet-field", {"interconnect_cap_mw": 5, "fleets": [_fleet(hashrate=1)]}, "Additional property hashrate is not allowed"),
    ("zero-ramp", {"interconnect_cap_mw": 5, "fleets": [_fleet(ramp_down_s=0)]}, "sites.0.power.fleets.0.ramp_down_s: Must be greater than 0"),
    ("negative-standby", {"interconnect_cap_mw": 5, "fleets": [_fleet(standby_w=-1)]}, "sites.0.power.fleets.0.standby_w: Must be greater than or equal to 0"),
    *(
        (
            f"standby-at-rated-{model}",
            {"interconnect_cap_mw": 5, "fleets": [_fleet(model=model, standby_w=rated)]},
            "sites.0.power.fleets.0.standby_w: must be below",
        )
        for model, rated in (("S19XP", 3010), ("S21", 3500), ("A2", 3730))
    ),
    ("unknown-cooling", {"cooling": "water"}, "sites.0.power.cooling must be one of the following"),
    ("zero-cap", {"interconnect_cap_mw": 0}, "sites.0.power.interconnect_cap_mw: Must be greater than 0"),
    ("overhead-too-high", {"overhead": 3.5}, "sites.0.power.overhead: Must be less than or equal to 3"),
    ("overhead-below-one", {"overhead": 0.9}, "sites.0.power.overhead: Must be greater than or equal to 1"),
    ("zero-load", {"gpu_load_w": 0}, "sites.0.power.gpu_load_w: Must be greater than 0"),
    ("idle-at-default-load", {"gpu_idle_w": 1000}, "sites.0.power.gpu_idle_w: must be below gpu_load_w"),
    ("idle-above-load", {"gpu_load_w": 500, "gpu_idle_w": 600}, "sites.0.power.gpu_idle_w: must be below gpu_load_w"),
    ("numeric-market-node", {"market_node": 4}, "sites.0.power.market_node: Invalid type. Expected: string"),
    ("unknown-field", {"interconnect_cap": 5}, "Additional property interconnect_cap is not allowed"),
    ("fleets-without-cap", {"fleets": [_fleet()]}, "sites.0.power.interconnect_cap_mw: is required when the site has fleets"),
    (
        "duplicate-fleet-ids",
        {"interconnect_cap_mw": 5, "fleets": [_fleet(), _fleet(model="A2")]},
        'sites.0.power.fleets.1.fleet_id: fleet id "f1" is listed twice',
    ),
    ("fleets-not-a-list", {"interconnect_cap_mw": 5, "fleets": {"fleet_id": "a"}}, "sites.0.power.fleets: Invalid type. Expected: array"),
]


@pytest.mark.parametrize(("name", "power", "message"), BAD_POWER_BLOCKS, ids=[b[0] for b in BAD_POWER_BLOCKS])
def test_bad_power_block_is_refused(name, power, message, tmp_path):
    """What the agent would refuse at start-up, the chart refuses at install,
    naming the field."""
    from agents.site_config import SiteConfigError, parse_site_config

    with pytest.raises(SiteConfigError):
        parse_site_config(power)
    values = write_values(tmp_path, site_values(power))
    result = template(values=(values,))
    assert result.returncode != 0, f"{name}: helm template must refuse {power}"
    assert message in result.stderr, result.stderr
    assert result.stdout.strip() == ""
    # helm lint names the problem too. Schema errors fail it; the chart's own
    # checks (`fail` in _helpers.tpl) only log "[INFO] Fail: ..." there, as
    # helm lint runs templates in lint mode (helm 3.18); install refuses them.
    lint = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--values", str(values))
    output = lint.stdout + lint.stderr
    assert message in output, output
    assert lint.returncode != 0 or "[INFO] Fail: " in output, f"{name}: helm lint must report {power}: {output}"


@pytest.mark.parametrize(
    ("power", "config", "message"),
    [
        ({"hashpriceUsdPerPhDay": -1}, {"hashprice_usd_per_ph_day": -1}, "scheduler.power.hashpriceUsdPerPhDay: Must be greater than or equal to 0"),
        ({"intervalSeconds": 0}, {"power_interval_s": 0}, "scheduler.power.intervalSeconds: Must be greater than 0"),
        ({"capLeadSeconds": -5}, {"cap_lead_s": -5}, "scheduler.power.capLeadSeconds: Must be greater than or equal to 0"),
        (
            {"mining": {"hysteresisUsdPerMwh": -1}},
            {"mining": {"hysteresis_usd_per_mwh": -1}},
            "scheduler.power.mining.hysteresisUsdPerMwh: Must be greater than or equal to 0",
        ),
        ({"mining": {"minOnSeconds": -1}}, {"mining": {"min_on_s": -1}}, "scheduler.power.mining.minOnSeconds: Must be greater than or equal to 0"),
        ({"mining": {"minOffSeconds": -1}}, {"mining": {"min_off_s": -1}}, "scheduler.power.mining.minOffSeconds: Must be greater than or equal to 0"),
        ({"mining": {"min_off_s": 5}}, None, "Additional property min_off_s is not allowed"),
        ({"hashprice": 40}, None, "Additional property hashprice is not allowed"),
    ],
)
def test_bad_scheduler_power_settings_are_refused(power, config, message, tmp_path):
    """The schema's limits on scheduler.power are the scheduler's own."""
    from pydantic import ValidationError

    from scheduler.server.config import SchedulerConfig

    if config is not None:
        with pytest.raises(ValidationError):
            SchedulerConfig.model_validate(config)
    result = template(values=(write_values(tmp_path, {"scheduler": {"power": power}}),))
    assert result.returncode != 0, f"helm template must refuse scheduler.power {power}"
    assert message in result.stderr, result.stderr
