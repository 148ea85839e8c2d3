"""Config reloads (scheduler/server/reload.py), the pure parts and the swap, on a stand-in
server: which sections a new file changes, the fields only a restart changes (named, values
never quoted; a field no section claims is one of them), the swaps happening all or not at
all, tokens taking effect at once, the version covering the tokens file, dry runs, the
watch (a bad file logged, the running config kept) and price feeds reconfigured in place.
The same over real gRPC: tests/integration/test_config_reload.py."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
import yaml

from scheduler.core import errors
from scheduler.core.power_state import PowerState
from scheduler.core.priority import PreemptionPolicy
from scheduler.server import reload
from scheduler.server.config import SchedulerConfig, load_config, tenancy_policy
from scheduler.server.controller import power_settings
from scheduler.server.interceptor import Authenticator
from scheduler.server.price_feeds import PriceFeeds
from scheduler.server.reload import Reloader, compare, reloadable, swap

A, B = "token-a-0123456789abcdef", "token-b-0123456789abcdef"
OPS = "ops-token-0123456789abcdef"


def base(**more) -> dict:
    return {"listen": "127.0.0.1:0", "database": "pp.db", "regions": ["us"], "tenants": {"acme": A}, "operators": {"ops": OPS}, **more}


def write(path, data: dict):
    path.write_text(yaml.safe_dump(data))
    return path


class FakeFeeds:
    def __init__(self):
        self.feeds = None

    def reconfigure(self, feeds):
        self.feeds = list(feeds)


def stand_in(config: SchedulerConfig):
    """What a Reloader needs of a SchedulerServer: config, controller, auth, price_feeds."""
    controller = SimpleNamespace(config=config, preemption=PreemptionPolicy(**config.preemption.model_dump()), power=PowerState(power_settings(config)))
    return SimpleNamespace(config=config, controller=controller, auth=Authenticator(config.token_owners()), price_feeds=FakeFeeds())


def owner(server, token: str):
    try:
        return server.auth.principal((("authorization", f"Bearer {token}"),), "tenant").name
    except errors.Unauthenticated:
        return None


def test_an_unchanged_file_changes_nothing():
    config = SchedulerConfig.model_validate(base())
    assert compare(config, SchedulerConfig.model_validate(base())) == ([], [])


def test_live_sections_are_named_in_order():
    old = SchedulerConfig.model_validate(base())
    new = SchedulerConfig.model_validate(
        base(preemption={"min_run_s": 5}, tenants={"acme": B}, accounting={"price_usd_per_mwh": 90}, mining={"margin_usd_per_mwh": 3})
    )
    assert compare(old, new) == (["tokens", "preemption", "accounting", "mining"], [])


def test_restart_only_fields_are_refused_by_name_without_their_values():
    old = SchedulerConfig.model_validate(base())
    new = SchedulerConfig.model_validate(
        base(listen="0.0.0.0:9", leadership={"advertise": "h:1", "lease_ttl_s": 8}, memory={"recent_jobs": 5}, tenants={"acme": B})
    )
    changed, refused = compare(old, new)
    assert changed == ["tokens"]
    assert [problem.split(":")[0] for problem in refused] == ["listen", "leadership", "memory.recent_jobs"]
    assert refused[0] == "listen: changes only with a restart (the gRPC port is bound at start)"
    assert not any("0.0.0.0" in p or B in p for p in refused)


def test_a_field_no_section_claims_changes_only_with_a_restart_until_one_does():
    class WithExtra(SchedulerConfig):
        extra_policy: dict[str, float] = {}

    old, new = WithExtra.model_validate(base()), WithExtra.model_validate(base(extra_policy={"acme": 0.5}))
    assert compare(old, new) == ([], ["extra_policy: changes only with a restart (not reloadable)"])
    sections = {**reload.SECTIONS, "extra": reload.Section(("extra_policy",), lambda server, config: None)}
    assert compare(old, new, sections) == (["extra"], [])


def test_swap_builds_from_the_config_then_sets_the_attribute():
    server = SimpleNamespace(controller=SimpleNamespace(contracts=None))
    put = swap("controller.contracts", lambda config: ("policy", config.regions))(server, SchedulerConfig.model_validate(base()))
    assert server.controller.contracts is None  # built, not yet in place
    put()
    assert server.controller.contracts == ("policy", ["us"])


def test_reload_swaps_tokens_and_preemption_at_once(tmp_path):
    path = write(tmp_path / "s.yaml", base())
    server = stand_in(load_config(path))
    reloader = Reloader(server, path, clock=lambda: 1234.0)
    assert owner(server, A) == "acme" and owner(server, B) is None
    write(path, base(tenants={"acme-b": B}, preemption={"min_run_s": 5, "priority_gap": 2}))
    result = reloader.reload()
    assert result.changed == ("tokens", "preemption") and result.applied_at == 1234.0 and len(result.sha256) == 64
    assert owner(server, B) == "acme-b" and owner(server, A) is None
    assert server.controller.preemption == PreemptionPolicy(enabled=True, min_run_s=5, priority_gap=2)
    assert server.config is server.controller.config and "acme-b" in server.config.tenants


def test_mining_and_price_feeds_reach_the_power_state(tmp_path):
    path = write(tmp_path / "s.yaml", base())
    server = stand_in(load_config(path))
    feed = {"name": "rt", "url": "http://127.0.0.1:9/p", "format": "csv", "kind": "real_time", "market_nodes": ["HB_WEST"]}
    write(path, base(mining={"margin_usd_per_mwh": 7}, hashprice_usd_per_ph_day=40, price_feeds=[feed]))
    assert Reloader(server, path).reload().changed == ("mining", "price_feeds")
    settings = server.controller.power.settings
    assert settings.policy.margin_usd_per_mwh == 7 and settings.hashprice_usd_per_ph_day == 40
    assert [w.market_node for w in settings.price_watches] == ["HB_WEST"]
    assert [f.name for f in server.price_feeds.feeds] == ["rt"]


def test_a_refused_reload_leaves_everything_as_it_was(tmp_path):
    path = write(tmp_path / "s.yaml", base())
    server = stand_in(load_config(path))
    running, policy, reloader = server.config, server.controller.preemption, Reloader(server, path)
    write(path, base(listen="127.0.0.1:1", tenants={"acme": B}, preemption={"enabled": False}))
    with pytest.raises(errors.FailedPrecondition, match=r"refused, nothing applied: listen: changes only with a restart"):
        reloader.reload()
    assert server.config is running and server.controller.preemption is policy and owner(server, A) == "acme" and owner(server, B) is None
    dry = reloader.reload(dry_run=True)
    assert dry.changed == ("tokens", "preemption") and dry.refused and dry.applied_at is None
    assert server.config is running


def test_a_file_that_does_not_load_is_invalid_and_changes_nothing(tmp_path):
    path = write(tmp_path / "s.yaml", base())
    server = stand_in(load_config(path))
    running, reloader = server.config, Reloader(server, path)
    path.write_text("listen: [unclosed\n")
    with pytest.raises(errors.InvalidArgument, match="does not load, nothing applied: not valid YAML"):
        reloader.reload()
    write(path, base(tenants={"acme": "short"}))
    with pytest.raises(errors.InvalidArgument, match="shorter than 16 characters"):
        reloader.reload()
    assert server.config is running and owner(server, A) == "acme"


def test_a_section_refusing_while_preparing_stops_every_swap(tmp_path, monkeypatch):
    def refuse(server, config):
        raise ValueError("not today")

    path = write(tmp_path / "s.yaml", base())
    server = stand_in(load_config(path))
    monkeypatch.setitem(reload.SECTIONS, "preemption", reload.Section(("preemption",), refuse))
    write(path, base(tenants={"acme": B}, preemption={"enabled": False}))
    with pytest.raises(errors.InvalidArgument, match="preemption: not today; nothing applied"):
        Reloader(server, path).reload()
    assert owner(server, A) == "acme" and owner(server, B) is None  # tokens were prepared first, never swapped


def test_the_version_covers_the_tokens_file(tmp_path):
    write(tmp_path / "tokens.yaml", {"tenants": {"acme": A}})
    path = write(tmp_path / "s.yaml", base(tenants={}, tokens_file="tokens.yaml"))
    server = stand_in(load_config(path))
    reloader = Reloader(server, path)
    before = reloader.sha256
    assert reloader.reload().changed == () and reloader.sha256 == before
    write(tmp_path / "tokens.yaml", {"tenants": {"acme": B}})
    result = reloader.reload()
    assert result.changed == ("tokens",) and result.sha256 != before and owner(server, B) == "acme" and owner(server, A) is None


def test_a_registered_section_is_applied(tmp_path, monkeypatch):
    class WithExtra(SchedulerConfig):
        extra_policy: dict[str, float] = {}

    monkeypatch.setattr(reload, "load_config", lambda path: WithExtra.model_validate(yaml.safe_load(path.read_text())))
    monkeypatch.setattr(reload, "SECTIONS", dict(reload.SECTIONS))
    reloadable("extra", ("extra_policy",), swap("controller.extra", lambda config: dict(config.extra_policy)))
    path = write(tmp_path / "s.yaml", base())
    server = stand_in(WithExtra.model_validate(base()))
    write(path, base(extra_policy={"acme": 0.5}))
    assert Reloader(server, path).reload().changed == ("extra",)
    assert server.controller.extra == {"acme": 0.5}


def test_contracts_and_fair_share_reload_into_the_controllers_tenancy(tmp_path):
    path = write(tmp_path / "s.yaml", base())
    server = stand_in(load_config(path))
    server.controller.tenancy = None
    write(path, base(contracts=[{"tenant": "acme", "region": "us", "firm_gpus": 64}], fair_share={"weights": {"acme": 2}}))
    assert Reloader(server, path).reload().changed == ("contracts",)
    policy = server.controller.tenancy
    assert policy is not None and policy == tenancy_policy(load_config(path)) and policy != tenancy_policy(SchedulerConfig.model_validate(base()))


def test_the_watch_applies_a_changed_file_and_logs_a_bad_one(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="scheduler.server.reload")

    async def main():
        path = write(tmp_path / "s.yaml", base(config_watch_s=0.05))
        server = stand_in(load_config(path))
        reloader = Reloader(server, path)
        reloader.start()
        try:
            write(path, base(config_watch_s=0.05, tenants={"acme": B}))
            for _ in range(100):
                if owner(server, B):
                    break
                await asyncio.sleep(0.02)
            assert owner(server, B) == "acme" and owner(server, A) is None
            running = server.config

            def errors_logged() -> list[str]:
                return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]

            write(path, base(config_watch_s=0.05, listen="127.0.0.1:1"))
            for _ in range(100):
                if errors_logged():
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # more periods: logged once per version, not every period
            assert server.config is running
            assert len(errors_logged()) == 1 and "the running config stays" in errors_logged()[0]
            assert "listen: changes only with a restart" in errors_logged()[0]
        finally:
            await reloader.stop()

    asyncio.run(main())


def test_price_feeds_reconfigure_restarts_only_what_changed():
    async def main():
        controller = SimpleNamespace(power=SimpleNamespace(grid={}, events=lambda now: []), clock=lambda: 0.0)
        config = SchedulerConfig.model_validate(
            base(
                price_feeds=[
                    {"name": n, "url": "http://127.0.0.1:9/p", "format": "csv", "kind": "real_time", "market_nodes": ["N"], "interval_s": 3600, "attempts": 1}
                    for n in ("keep", "change", "drop")
                ]
            )
        )
        feeds = PriceFeeds(config.price_feeds, controller)
        feeds.start()
        try:
            tasks = dict(feeds._tasks)
            keep, change, _ = config.price_feeds
            feeds.reconfigure([keep, change.model_copy(update={"interval_s": 60}), change.model_copy(update={"name": "new"})])
            assert set(feeds._tasks) == {"keep", "change", "new"} and set(feeds.errors) == {"keep", "change", "new"}
            assert feeds._tasks["keep"] is tasks["keep"] and feeds._tasks["change"] is not tasks["change"]
            await asyncio.sleep(0)
            assert tasks["drop"].cancelled() or tasks["drop"].cancelling()
        finally:
            await feeds.stop()
        assert not feeds._tasks and not feeds._retired

    asyncio.run(main())


def test_a_standby_s_feeds_are_only_recorded():
    async def main():
        feeds = PriceFeeds([], SimpleNamespace())
        feed = SchedulerConfig.model_validate(
            base(price_feeds=[{"name": "rt", "url": "http://127.0.0.1:9/p", "format": "csv", "kind": "real_time", "market_nodes": ["N"]}])
        ).price_feeds
        feeds.reconfigure(feed)
        assert list(feeds.feeds) == ["rt"] and not feeds._tasks  # started with the others when it leads

    asyncio.run(main())
