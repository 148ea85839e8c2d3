"""Miner addresses in the site config (agents/site_config.py): single addresses, dash
ranges and CIDR blocks, `miners` or `groups`, `count` matching, one-line errors naming
the field; and which FleetDriver a site gets (emulated, real, or both)."""

from __future__ import annotations

import pytest
import yaml

from agents import wire
from agents.miners.driver import CombinedFleets, MinerFleets, site_fleet_driver
from agents.miners.fleet_driver import EmulatedFleets
from agents.site_config import SiteConfigError, expand_addresses, load_site_config, parse_site_config
from agents.site_power import SitePowerControl


def site(*fleets) -> dict:
    return {"interconnect_cap_mw": 5.0, "fleets": list(fleets)}


def test_addresses_expand_from_singles_ranges_and_blocks():
    addresses = expand_addresses(["10.0.1.1-10.0.1.3", "10.0.2.7", "10.0.3.0/29", "10.0.4.250-252", "10.0.5.255-10.0.6.1", "10.0.7.9/32"])
    assert addresses == [
        "10.0.1.1",
        "10.0.1.2",
        "10.0.1.3",
        "10.0.2.7",
        *(f"10.0.3.{i}" for i in range(1, 7)),  # a /29's hosts: network and broadcast left out
        "10.0.4.250",
        "10.0.4.251",
        "10.0.4.252",
        "10.0.5.255",
        "10.0.6.0",
        "10.0.6.1",
        "10.0.7.9",
    ]


def test_a_fleet_with_miners_is_one_group_named_after_it(tmp_path):
    path = tmp_path / "site.yaml"
    data = site({"fleet_id": "s21-real", "model": "S21", "count": 216, "miners": ["10.0.1.1-10.0.1.200", "10.0.2.7", "10.0.3.0/28", "10.0.4.1-10.0.4.1"]})
    path.write_text(yaml.safe_dump(data))
    config = load_site_config(path)
    ((group_id, addresses),) = config.fleets[0].address_groups()
    assert group_id == "s21-real" and len(addresses) == 216 and addresses[0] == "10.0.1.1" and addresses[-1] == "10.0.4.1"
    assert config.has_miner_addresses
    assert wire.fleets_to_proto(config)[0].count == 216  # the wire form is unchanged


def test_a_fleet_with_groups_keeps_them_in_order():
    config = parse_site_config(
        site(
            {
                "fleet_id": "xp",
                "model": "S19XP",
                "count": 5,
                "groups": [{"group_id": "rack-1", "miners": ["10.1.1.1-3"]}, {"group_id": "rack-2", "miners": ["10.1.2.1", "10.1.2.9"]}],
            }
        )
    )
    assert config.fleets[0].address_groups() == [("rack-1", ["10.1.1.1", "10.1.1.2", "10.1.1.3"]), ("rack-2", ["10.1.2.1", "10.1.2.9"])]


def test_fleets_without_addresses_are_unchanged():
    config = parse_site_config(site({"fleet_id": "a", "model": "S21", "count": 400}))
    assert config.fleets[0].address_groups() is None and not config.has_miner_addresses
    assert type(SitePowerControl(config).driver) is EmulatedFleets


def fleet(**extra) -> dict:
    return {"fleet_id": "a", "model": "S21", "count": 3, **extra}


@pytest.mark.parametrize(
    "fleets,message",
    [
        ([fleet(miners=["10.0.0.1-2"])], "fleets.0: count is 3 but the fleet lists 2 miner addresses; they must match"),
        ([fleet(miners=["10.0.0.1-3"], groups=[{"group_id": "r", "miners": ["10.0.1.1-3"]}])], "fleets.0: give either miners or groups, not both"),
        ([fleet(miners=["10.0.0.300", "10.0.0.1-2"])], "fleets.0.miners: entry 0 '10.0.0.300': '10.0.0.300' is not an IPv4 address"),
        ([fleet(miners=["10.0.0.5-10.0.0.3"])], "fleets.0.miners: entry 0 '10.0.0.5-10.0.0.3': range runs backwards"),
        ([fleet(miners=["10.0.0.1-256"])], "fleets.0.miners: entry 0 '10.0.0.1-256': last octet 256 is above 255"),
        ([fleet(miners=["10.0.0.1/29"])], "fleets.0.miners: entry 0 '10.0.0.1/29': not an IPv4 CIDR block"),
        ([fleet(miners=["10.0.0.0/8"])], "fleets.0.miners: entry 0 '10.0.0.0/8': block holds 16777216 addresses, more than 65536"),
        ([fleet(miners=["10.0.0.1-3", "10.0.0.2"])], "fleets.0.miners: entry 1 '10.0.0.2': address 10.0.0.2 is listed twice"),
        ([fleet(miners=[])], "fleets.0.miners: List should have at least 1 item"),
        ([fleet(groups=[])], "fleets.0.groups: List should have at least 1 item"),
        ([fleet(groups=[{"group_id": "r", "miners": ["10.0.0.1-2"]}, {"group_id": "r", "miners": ["10.0.0.3"]}])], "fleets.0: group ids must be unique: r"),
        (
            [fleet(groups=[{"group_id": "r", "miners": ["10.0.0.1-2"]}, {"group_id": "s", "miners": ["10.0.0.2"]}])],
            "fleets.0: address 10.0.0.2 is in more than one group",
        ),
        ([fleet(groups=[{"group_id": "r s", "miners": ["10.0.0.1-3"]}])], "fleets.0.groups.0.group_id: String should match pattern"),
        ([fleet(groups=[{"group_id": "r", "miners": ["10.0.0.1-3"], "rack": 4}])], "fleets.0.groups.0.rack: Extra inputs are not permitted"),
        ([fleet(miners=["10.0.0.1-3"]), {**fleet(miners=["10.0.0.3-5"]), "fleet_id": "b"}], "address 10.0.0.3 is in fleets a and b"),
        (
            [fleet(miners=["10.0.0.1-3"]), {**fleet(groups=[{"group_id": "a", "miners": ["10.0.1.1-3"]}]), "fleet_id": "b"}],
            "group ids must be unique in the site: a",
        ),
    ],
)
def test_bad_miner_fields_are_named_in_one_line(tmp_path, fleets, message):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site(*fleets)))
    with pytest.raises(SiteConfigError) as err:
        load_site_config(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_site_gets_real_emulated_or_combined_drivers():
    real = fleet(miners=["10.0.0.1-3"])
    emulated = {"fleet_id": "e", "model": "S19XP", "count": 10}
    assert type(site_fleet_driver(parse_site_config(site(emulated)))) is EmulatedFleets
    only_real = site_fleet_driver(parse_site_config(site(real)))
    assert type(only_real) is MinerFleets and list(only_real.groups["a"]) == ["a"]
    mixed = SitePowerControl(parse_site_config(site(real, emulated))).driver
    assert type(mixed) is CombinedFleets and set(mixed.fleets) == {"a", "e"}
    readings = mixed.read()
    assert readings["e"] == (250, 250)  # emulated: paused until told otherwise
    assert readings["a"] == (3 * 3_500, 3 * 3_500)  # real, not read yet: every miner may be at rated power
    assert mixed.set_target("e", 5_000) == 5_000 and mixed.set_target("a", 50) == 75  # clamped to its standby
    assert mixed.read()["a"][1] == 75 and mixed.problems() == []
    assert mixed.confirmed_targets() == {"a": 3 * 3_500, "e": 5_000}  # real: not acknowledged yet; emulated: at once


def test_credentials_per_fleet_or_group_inline_or_from_a_file_and_never_shown(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "lux.yaml").write_text(yaml.safe_dump({"username": "admin", "password": "file-pw-42"}))
    rack = {"group_id": "rack-2", "miners": ["10.0.2.1-2"], "username": "ops", "password": "group-pw-7"}
    fleets = [
        {
            "fleet_id": "a",
            "model": "S21",
            "count": 4,
            "username": "root",
            "password": "fleet-pw-1",
            "groups": [{"group_id": "rack-1", "miners": ["10.0.1.1-2"]}, rack],
        },
        {"fleet_id": "b", "model": "S19XP", "count": 2, "miners": ["10.0.3.1-2"], "credentials_file": "secrets/lux.yaml", "takes_power_limit": False},
        {"fleet_id": "c", "model": "S21", "count": 1, "miners": ["10.0.4.1"]},
    ]
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site(*fleets)))
    config = load_site_config(path)
    logins = config.miner_credentials()
    assert {g: (c.username, c.password) for g, c in logins.items()} == {
        "rack-1": ("root", "fleet-pw-1"),  # the fleet's
        "rack-2": ("ops", "group-pw-7"),  # the group's own
        "b": ("admin", "file-pw-42"),  # from the file, relative to the site config
    }
    shown = repr(config) + str(config.model_dump()) + repr(logins)
    assert not any(pw in shown for pw in ("fleet-pw-1", "group-pw-7", "file-pw-42"))
    # A pause-only fleet is curtailed in whole miners by the core.
    (lux,) = [f for f in config.fleet_models() if f.fleet_id == "b"]
    assert lux.model.takes_power_limit is False and lux.whole_miners_w(4000.0) == 3010.0 - 25.0  # one whole miner above standby
    # The driver hands each group its login.
    made = {}

    def factory(group_id, addresses, model, auth=None):
        made[group_id] = auth
        return object()

    site_fleet_driver(config, group_factory=factory)
    assert made == {"rack-1": ("root", "fleet-pw-1"), "rack-2": ("ops", "group-pw-7"), "b": ("admin", "file-pw-42"), "c": None}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"username": "root"}, "give both username and password"),
        ({"username": "root", "password": "x", "credentials_file": "c.yaml"}, "not both"),
        ({"credentials_file": "missing.yaml"}, "credentials_file"),
    ],
)
def test_bad_credentials_stop_the_agent_at_load(tmp_path, extra, message):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site({"fleet_id": "a", "model": "S21", "count": 1, "miners": ["10.0.0.1"], **extra})))
    with pytest.raises(SiteConfigError) as err:
        load_site_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)
