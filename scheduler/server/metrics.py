"""The scheduler's Prometheus metrics: read from its state at scrape time, never counted twice.

Gauges come from one collector that reads the controller's state when Prometheus
scrapes: each site's power (the same `PowerState.figures` GetSite shows), its fleets,
its link to its agent, jobs by state and tenant, grid events in force and how they were
met. Histograms and counters observe what only happens in passing: the scheduling and
dispatch passes and submissions (the controller calls `observe(name, seconds)`), and from
each decision (`on_decision`): grid event response times (received -> first orders ->
the first reading that met it), how long jobs waited pending, preemptions by cause.

Names follow Prometheus conventions: base units in the name (`_watts`, `_seconds`),
`_total` for counters, labels for site, fleet, tenant, state, kind; no job ids (their
number has no bound). `serve` starts the HTTP endpoint (`/metrics`) on its own port.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.core.decisions import PREEMPTION_CAUSES, Decision
from scheduler.core.grid import GridEventRecord, GridEventState
from scheduler.core.jobs import JobState
from scheduler.core.meter_check import MeterSource
from scheduler.core.price_watch import node_price, price_age_s
from scheduler.core.sites import SiteState
from scheduler.core.usage import UsageTally
from scheduler.server.controller import Controller
from scheduler.server.price_feeds import PriceFeeds

SCRAPE_TIMEOUT_S = 5.0
PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SITE_POWER = (  # metric name, SiteFigures field, help
    ("powerplane_site_cap_watts", "cap_w", "The grid cap in force at the site's meter."),
    ("powerplane_site_interconnect_cap_watts", "interconnect_cap_w", "The site's grid interconnect cap."),
    ("powerplane_site_planned_cap_watts", "planned_cap_w", "The cap the last dispatch pass planned under (a cut ahead counts)."),
    ("powerplane_site_committed_watts", "committed_w", "Meter power the last dispatch pass committed (fleets at what they may still draw)."),
    ("powerplane_site_metered_watts", "measured_w", "Meter power the agent read last."),
    ("powerplane_site_ai_watts", "ai_w", "GPU power the agent read last, with the facility overhead."),
    ("powerplane_site_mining_watts", "mining_w", "Mining power the agent read last, with the facility overhead."),
    ("powerplane_site_mining_target_watts", "mining_target_w", "Mining power the scheduler asked for, with the facility overhead."),
    ("powerplane_site_ai_it_watts", "ai_it_w", "GPU IT power the agent read last (no overhead)."),
    ("powerplane_site_mining_it_watts", "mining_it_w", "Mining IT power the agent read last (no overhead)."),
    ("powerplane_site_overhead_watts", "overhead_w", "Metered power that is neither GPU nor mining IT (cooling, conversion)."),
    ("powerplane_site_price_usd_per_mwh", "price_usd_per_mwh", "The power price the site dispatches on."),
)
SITE_METER = (  # sites with a revenue meter only: metric name, SiteFigures value, help
    ("powerplane_site_meter_computed_watts", lambda f: f.computed_w, "IT power x overhead, beside the metered figure."),
    ("powerplane_site_meter_disagreement_ratio", lambda f: f.meter_disagreement, "|metered - computed| / metered (0 while the meter does not answer)."),
    ("powerplane_site_meter_disagrees", lambda f: float(f.meter_disagrees), "1 while metered and computed power differ by more than the site's margin."),
    (
        "powerplane_site_meter_fallback",
        lambda f: float(f.meter_source == MeterSource.FALLBACK),
        "1 while the site's meter does not answer and its agent reports the computed figure.",
    ),
)
TENANT_USAGE = (  # per tenant, from the job events (core/usage.py, docs/usage.md): metric name, value, help
    ("powerplane_tenant_gpu_seconds", lambda f: f.gpu_s, "GPU-seconds of the tenant's runs while RUNNING."),
    ("powerplane_tenant_energy_joules", lambda f: f.meter_j, "Energy at the meter of the tenant's runs (GPU load x power cap x overhead)."),
    ("powerplane_tenant_curtailed_joules", lambda f: f.curtailed_j, "Meter energy power caps kept off the tenant's runs."),
    ("powerplane_tenant_power_caps", lambda f: f.caps, "Times one of the tenant's runs went from uncapped to power-capped."),
    ("powerplane_tenant_preemptions", lambda f: f.preemptions, "The tenant's runs preempted."),
)
RESPONSE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
PENDING_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


class StateCollector(Collector):
    """Gauges read from the controller's state at each scrape. The HTTP server scrapes from
    its own thread; the state belongs to the event loop's thread, so the reading is done
    there (`loop`), never beside a pass that is changing it."""

    def __init__(self, controller: Controller, loop: asyncio.AbstractEventLoop | None = None, price_feeds: PriceFeeds | None = None):
        self.controller, self.loop, self.price_feeds = controller, loop, price_feeds
        self.usage: UsageTally | None = None  # per-tenant usage (SchedulerMetrics keeps it from the decisions)

    def collect(self) -> Iterator:
        if self.loop is None or _running_loop() is self.loop:
            return iter(self._families())
        return iter(asyncio.run_coroutine_threadsafe(self._families_now(), self.loop).result(SCRAPE_TIMEOUT_S))

    async def _families_now(self) -> list:
        return self._families()

    def _families(self) -> list:
        return [*self._sites(), *self._jobs(), *self._grid(self.controller.clock()), *self._prices(self.controller.clock()), *self._usage(self.controller.clock())]

    def _sites(self) -> Iterator:
        controller = self.controller
        now = controller.clock()
        site_power = {name: GaugeMetricFamily(name, text, labels=["site"]) for name, _, text in SITE_POWER}
        headroom = GaugeMetricFamily("powerplane_site_headroom_watts", "Cap in force less metered power.", labels=["site"])
        site_meter = {name: GaugeMetricFamily(name, text, labels=["site"]) for name, _, text in SITE_METER}
        emergency = GaugeMetricFamily("powerplane_site_grid_emergency", "1 while the site is under a grid emergency.", labels=["site"])
        fleet_measured = GaugeMetricFamily("powerplane_fleet_measured_watts", "A mining fleet's IT power as read.", labels=["site", "fleet"])
        fleet_target = GaugeMetricFamily("powerplane_fleet_target_watts", "A mining fleet's IT power target.", labels=["site", "fleet"])
        steps = CounterMetricFamily("powerplane_ladder_steps", "Response ladder steps taken.", labels=["site", "kind"])
        local = CounterMetricFamily("powerplane_agent_local_actions", "What agents reported doing by themselves (guard, fleet problems).", labels=["site"])
        connected = GaugeMetricFamily("powerplane_agent_connected", "1 while the site's agent stream is up.", labels=["site"])
        heard = GaugeMetricFamily("powerplane_agent_heartbeat_age_seconds", "Seconds since the site's agent was last heard.", labels=["site"])
        ready = GaugeMetricFamily("powerplane_site_ready", "1 while the site takes work (connected, not drained).", labels=["site"])
        for site in sorted(controller.sites.values(), key=lambda s: s.site_id):
            sid = site.site_id
            connected.add_metric([sid], 1.0 if sid in controller.sessions else 0.0)
            heard.add_metric([sid], max(0.0, now - site.last_seen))
            ready.add_metric([sid], 1.0 if controller.site_state(site) == SiteState.READY else 0.0)
            figures = controller.power.figures(sid, controller.jobs, now)
            if figures is None:
                continue
            for name, field, _ in SITE_POWER:
                site_power[name].add_metric([sid], getattr(figures, field))
            headroom.add_metric([sid], figures.cap_w - figures.measured_w)
            if figures.meter_source != MeterSource.COMPUTED:
                for name, value, _ in SITE_METER:
                    site_meter[name].add_metric([sid], value(figures))
            emergency.add_metric([sid], 1.0 if figures.emergency else 0.0)
            for fleet_id, measured, target in figures.fleets:
                fleet_measured.add_metric([sid, fleet_id], measured)
                fleet_target.add_metric([sid, fleet_id], target)
            for kind, count in sorted(figures.ladder_steps.items()):
                steps.add_metric([sid, kind], count)
            local.add_metric([sid], figures.local_actions)
        yield from site_power.values()
        yield from site_meter.values()
        yield from (headroom, emergency, fleet_measured, fleet_target, steps, local, connected, heard, ready)

    def _jobs(self) -> Iterator:
        jobs = GaugeMetricFamily("powerplane_jobs", "Jobs by state and tenant.", labels=["state", "tenant"])
        for (state, tenant), count in sorted(self.controller.jobs.counts().items()):
            jobs.add_metric([state.name.lower(), tenant], count)
        yield jobs

    def _grid(self, now: float) -> Iterator:
        active = GaugeMetricFamily("powerplane_grid_events_active", "Grid events in force now, by kind.", labels=["kind"])
        met = CounterMetricFamily("powerplane_grid_events_met", "Cap limits and emergencies read in force and never found short.", labels=["site"])
        breached = CounterMetricFamily("powerplane_grid_events_breached", "Cap limits and emergencies a reading found short of.", labels=["site"])
        kinds: collections.Counter = collections.Counter()
        met_by_site: collections.Counter = collections.Counter()
        short_by_site: collections.Counter = collections.Counter()
        for record in self.controller.power.grid.values():
            event = record.event
            if event.state(now) == GridEventState.ACTIVE:
                kinds[event.kind.name.lower()] += 1
            if event.site_id:
                met_by_site[event.site_id] += record.met
                short_by_site[event.site_id] += record.breaches > 0
        for kind, count in sorted(kinds.items()):
            active.add_metric([kind], count)
        for site_id in sorted(set(met_by_site) | set(short_by_site)):
            met.add_metric([site_id], met_by_site[site_id])
            breached.add_metric([site_id], short_by_site[site_id])
        yield from (active, met, breached)

    def _prices(self, now: float) -> Iterator:
        """Each price feed's age per node, as the mining decision reads it (core/price_watch.py),
        its failed polls, and which sites' prices are stale (sites at a node some feed watches)."""
        age = GaugeMetricFamily(
            "powerplane_price_feed_age_seconds",
            "Seconds since the newest interval a price feed brought for a node started (+Inf: none).",
            labels=["feed", "market_node"],
        )
        errors = CounterMetricFamily("powerplane_price_feed_errors", "Price feed polls that failed (after their retries).", labels=["feed"])
        stale = GaugeMetricFamily("powerplane_site_price_stale", "1 while a price feed for the site's market node has no fresh price.", labels=["site"])
        power = self.controller.power
        events = power.events(now)
        for feed in self.controller.config.price_feeds:
            for watch in feed.watches():
                age.add_metric([feed.name, watch.market_node], price_age_s(events, watch, now))
        for name, count in sorted((self.price_feeds.errors if self.price_feeds else {}).items()):
            errors.add_metric([name], count)
        for site_id, st in sorted(power.sites.items()):
            if any(w.market_node == st.power.market_node for w in power.settings.price_watches):
                stale.add_metric([site_id], 1.0 if node_price(events, power.settings.price_watches, st.power.market_node, now).stale else 0.0)
        yield from (age, errors, stale)


    def _usage(self, now: float) -> Iterator:
        """Per-tenant usage since this process started (core/usage.py; runs count up to now)."""
        if self.usage is None:
            return
        families = [(CounterMetricFamily(name, text, labels=["tenant"]), value) for name, value, text in TENANT_USAGE]
        for tenant, figures in sorted(self.usage.figures(now).items()):
            for family, value in families:
                family.add_metric([tenant], value(figures))
        yield from (family for family, _ in families)


class SchedulerMetrics:
    """The scheduler's registry: the state collector, and histograms and counters of what
    only happens in passing, observed from each decision the controller applies."""

    def __init__(
        self, controller: Controller, loop: asyncio.AbstractEventLoop | None = None, registry: CollectorRegistry | None = None, price_feeds: PriceFeeds | None = None
    ):
        self.controller = controller
        self.registry = registry or CollectorRegistry()
        self._deciding: dict = {}  # job_id -> its version in the decision being observed
        self.passes = Histogram(
            "powerplane_scheduler_pass_seconds", "Time one pass took: schedule, dispatch, scale, submit.", ["pass"], registry=self.registry, buckets=PASS_BUCKETS
        )
        self.response = Histogram(
            "powerplane_grid_event_response_seconds",
            "From a cap limit or emergency received to its first orders sent (step=orders_sent) and to the first reading that met it (step=cap_met).",
            ["step"],
            registry=self.registry,
            buckets=RESPONSE_BUCKETS,
        )
        self.pending = Histogram(
            "powerplane_job_pending_seconds", "How long a job waited PENDING before it was placed.", ["tenant"], registry=self.registry, buckets=PENDING_BUCKETS
        )
        self.preemptions = Counter("powerplane_preemptions", "Runs preempted or shed to meet power, or stopped for a higher-priority job, by cause.", ["cause"], registry=self.registry)
        for cause in PREEMPTION_CAUSES:
            self.preemptions.labels(cause)
        for step in ("orders_sent", "cap_met"):
            self.response.labels(step)
        # Events answered before this process started are not observed again.
        self._observed = {(r.event.event_id, step) for r in controller.power.grid.values() for step, at in _response_steps(r) if at is not None}
        collector = StateCollector(controller, loop, price_feeds)
        collector.usage = self.usage = UsageTally({}, self._gpus)
        now = controller.clock()
        for job in controller.jobs.values():  # runs already RUNNING count from now on
            if job.state == JobState.RUNNING:
                self.usage.resume(job.tenant, job.job_id, job.run_id, job.site_id, now, job.power_fraction)
        self.registry.register(collector)
        controller.timings = self.observe
        controller.decided = self.on_decision

    def observe(self, name: str, seconds: float) -> None:
        self.passes.labels(name).observe(seconds)

    def on_decision(self, decision: Decision) -> None:
        """Called with each decision before it is applied (the job table still holds the old versions)."""
        for cause in decision.preemptions:
            self.preemptions.labels(cause).inc()
        for record in decision.grid:
            for step, at in _response_steps(record):
                if at is not None and (record.event.event_id, step) not in self._observed:
                    self._observed.add((record.event.event_id, step))
                    self.response.labels(step).observe(max(0.0, at - record.received_at))
        jobs = self.controller.jobs
        if decision.events:
            self._deciding = {job.job_id: job for job in decision.jobs}
            self.usage.sites = {site_id: st.power for site_id, st in self.controller.power.sites.items()}
            self.usage.add_all(decision.events)
        for job in decision.jobs:
            old = jobs.get(job.job_id)
            if old is not None and old.state == JobState.PENDING and job.state != JobState.PENDING:
                self.pending.labels(job.tenant).observe(max(0.0, job.updated_at - old.updated_at))

    def _gpus(self, job_id: str) -> int:
        job = self._deciding.get(job_id) or self.controller.jobs.get(job_id)
        return job.total_gpus if job is not None else 0

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0: any free port); returns the port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server.server_port


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _response_steps(record: GridEventRecord) -> tuple[tuple[str, float | None], ...]:
    return (("orders_sent", record.responded_at), ("cap_met", record.met_at))
