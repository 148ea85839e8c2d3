"""The scenario a run replays: sites (YAML), grid events (YAML or CSV) and AI job
arrivals (CSV), read into core types (SitePower, Fleet, GridEvent) with every
problem reported as an InputError naming the file and the line or field.

Sites file: `sites:` a list of {site_id, region, market_node, cap_mw, cooling (air|
hydro) or overhead, gpus, gpu_load_w, gpu_idle_w, fleets: [{model, count, id?}]},
model a key of scheduler.core.power.MINER_MODELS.
Events file: `events:` a list of {kind: cap_limit|emergency, site, cap_mw (cap
limits), start, end, respond_by?, reason?, notice_s? or notified_at?}; or a CSV with
those columns. Times are ISO timestamps, seconds after the start of the run, or offsets
like `+1d14h`. The notice (seconds before the start, or the time the grid told of the
event) decides when the scheduler learns of it; without one it is announced at the
start of the run.
Arrivals CSV: time_s (after the start), kind (training|inference), gpus, duration_s
(at full GPU power), priority, slowdown_tolerance_pct, allowed_regions (separated by
`;` or spaces; empty: any), value_usd_per_gpu_hour; optional job_id, tenant, and for training
optional checkpoint_grace_s, checkpoint_every_s, step_s, checkpoint_write_s (defaults:
services.py). An Arrival builds the JobSpec the scheduler's core sees (`job_spec`):
training with its checkpoint grace, an inference service (`service`) with its Serve
fields (replica GPUs, replica bounds, target requests per replica).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import DEFAULT_CHECKPOINT_GRACE_S, JobKind, JobSpec, Resources
from scheduler.core.power import MINER_MODELS, Cooling, Fleet, SitePower
from scheduler.sim.files import InputError, line_of, load_yaml, number, parse_time, read_csv
from scheduler.sim.physics import Checkpointing
from scheduler.sim.services import CHECKPOINT_EVERY_S, CHECKPOINT_WRITE_S, SERVE_IMPORT_PATH, STEP_S, Service


@dataclass(frozen=True)
class ScenarioSite:
    power: SitePower
    region: str
    market_node: str

    @property
    def site_id(self) -> str:
        return self.power.site_id


@dataclass(frozen=True)
class Arrival:
    time_s: float  # seconds after the start of the run
    kind: JobKind
    gpus: int
    duration_s: float  # run time at full GPU power
    priority: int = 0
    slowdown_tolerance_pct: float = 0.0
    allowed_regions: tuple[str, ...] = ()
    value_usd_per_gpu_hour: float = 2.0
    job_id: str = ""
    checkpoint_grace_s: float = DEFAULT_CHECKPOINT_GRACE_S  # training: time to checkpoint when preempted
    checkpoint_every_s: float = CHECKPOINT_EVERY_S  # training: work between periodic checkpoints
    step_s: float = STEP_S  # training: work per step
    checkpoint_write_s: float = CHECKPOINT_WRITE_S  # training: seconds to write a checkpoint
    service: Service | None = None  # inference on Serve: `gpus` is then its starting size
    tenant: str = "sim"  # whose job it is (contracts and fair share: SimConfig.tenancy)

    def job_spec(self) -> JobSpec:
        """The spec the scheduler's core gets for this job."""
        spec = JobSpec(
            self.kind,
            "sim",
            Resources(gpus=self.gpus),
            priority=self.priority,
            allowed_regions=self.allowed_regions,
            slowdown_tolerance_pct=int(round(self.slowdown_tolerance_pct)),
            checkpoint_grace_s=int(round(self.checkpoint_grace_s)),
        )
        svc = self.service
        if svc is None or self.kind != JobKind.INFERENCE:
            return spec
        return dataclasses.replace(
            spec,
            resources=Resources(gpus=svc.replica_gpus),
            serve_import_path=SERVE_IMPORT_PATH,
            min_replicas=svc.min_replicas,
            max_replicas=svc.max_replicas,
            target_rps_per_replica=svc.target_rps_per_replica,
        )

    def checkpointing(self) -> Checkpointing | None:
        """How its runs checkpoint (None: inference keeps nothing)."""
        if self.kind != JobKind.TRAINING:
            return None
        return Checkpointing(self.checkpoint_every_s, self.step_s, self.checkpoint_write_s)


def _field(path: Path, item: dict, key: str, where: str, default: Any = ...) -> Any:
    if key in item and item[key] is not None:
        return item[key]
    if default is ...:
        raise InputError(path, "missing", line_of(item), f"{where}.{key}")
    return default


def load_sites(path: Path) -> list[ScenarioSite]:
    doc = load_yaml(path)
    items = doc.get("sites") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise InputError(path, "expected `sites:` followed by a list of sites", line_of(doc))
    sites: list[ScenarioSite] = []
    for i, item in enumerate(items):
        where = f"sites[{i}]"
        if not isinstance(item, dict):
            raise InputError(path, "each site must be a mapping", None, where)

        def num(key: str, default: Any = ..., integer: bool = False, minimum: float | None = 0.0, *, item=item, where=where) -> float:
            value = _field(path, item, key, where, default)
            return number(path, line_of(item, key), f"{where}.{key}", value, integer=integer, minimum=minimum)

        site_id = str(_field(path, item, "site_id", where))
        if site_id in {s.site_id for s in sites}:
            raise InputError(path, f"site_id {site_id!r} appears twice", line_of(item, "site_id"), f"{where}.site_id")
        if "overhead" in item:
            overhead = num("overhead", minimum=1.0)
        else:
            cooling = str(_field(path, item, "cooling", where, "air")).lower()
            try:
                overhead = Cooling(cooling).default_overhead
            except ValueError:
                raise InputError(
                    path, f"cooling must be air or hydro (or give overhead), got {cooling!r}", line_of(item, "cooling"), f"{where}.cooling"
                ) from None
        fleets: list[Fleet] = []
        for j, fleet in enumerate(_field(path, item, "fleets", where, []) or []):
            fwhere = f"{where}.fleets[{j}]"
            if not isinstance(fleet, dict):
                raise InputError(path, "each fleet must be a mapping {model, count}", line_of(item, "fleets"), fwhere)
            model = str(_field(path, fleet, "model", fwhere))
            if model not in MINER_MODELS:
                raise InputError(path, f"unknown miner model {model!r} (known: {', '.join(sorted(MINER_MODELS))})", line_of(fleet, "model"), f"{fwhere}.model")
            count = int(number(path, line_of(fleet, "count"), f"{fwhere}.count", _field(path, fleet, "count", fwhere), integer=True, minimum=1))
            fleet_id = str(fleet.get("id") or f"{site_id}/{model}")
            if fleet_id in {f.fleet_id for f in fleets}:
                fleet_id = f"{fleet_id}-{j}"
            fleets.append(Fleet(fleet_id, MINER_MODELS[model], count))
        power = SitePower(
            site_id,
            cap_w=num("cap_mw") * 1e6,
            overhead=overhead,
            fleets=tuple(fleets),
            gpus=int(num("gpus", 0, integer=True)),
            gpu_load_w=num("gpu_load_w", 1000.0),
            gpu_idle_w=num("gpu_idle_w", 150.0),
        )
        if power.gpu_idle_w > power.gpu_load_w:
            raise InputError(path, "gpu_idle_w must not exceed gpu_load_w", line_of(item, "gpu_idle_w"), f"{where}.gpu_idle_w")
        floor = (power.gpus * power.gpu_idle_w + power.mining_floor_w) * overhead
        if floor > power.cap_w:
            raise InputError(path, f"idle GPUs and paused miners alone draw {floor / 1e6:.2f} MW, above cap_mw", line_of(item, "cap_mw"), f"{where}.cap_mw")
        sites.append(ScenarioSite(power, str(_field(path, item, "region", where, "default")), str(_field(path, item, "market_node", where, ""))))
    return sites


EVENT_KINDS = {"cap_limit": GridEventKind.CAP_LIMIT, "cap": GridEventKind.CAP_LIMIT, "emergency": GridEventKind.EMERGENCY}


def _event(path: Path, n: int, item: dict, line: int | None, start: float, sites: dict[str, ScenarioSite]) -> GridEvent:
    """One event from a YAML mapping (line None: lines come from the mapping) or a CSV row."""

    def loc(key: str) -> tuple[int | None, str]:
        return (line_of(item, key) or line), (key if line is not None else f"events[{n}].{key}")

    def need(key: str) -> Any:
        value = item.get(key)
        if value is None or value == "":
            raise InputError(path, "missing", line_of(item) or line, loc(key)[1])
        return value

    def at(key: str) -> float:
        try:
            return parse_time(need(key), start)
        except ValueError as err:
            raise InputError(path, str(err), *loc(key)) from None

    kind_text = str(need("kind")).strip().lower()
    if kind_text not in EVENT_KINDS:
        raise InputError(path, f"kind must be cap_limit or emergency, got {kind_text!r}", *loc("kind"))
    kind = EVENT_KINDS[kind_text]
    site = str(need("site")).strip()
    if site not in sites:
        raise InputError(path, f"unknown site {site!r} (sites: {', '.join(sites)})", *loc("site"))
    t0, t1 = at("start"), at("end")
    if t1 <= t0:
        raise InputError(path, "end must be after start", *loc("end"))
    cap_w = 0.0
    if kind == GridEventKind.CAP_LIMIT:
        cap_w = number(path, *loc("cap_mw"), need("cap_mw"), minimum=0) * 1e6
    respond_by = at("respond_by") if item.get("respond_by") not in (None, "") else 0.0
    if respond_by and respond_by < t0:
        raise InputError(path, "respond_by must not be before start", *loc("respond_by"))
    reason = str(item.get("reason") or "")
    notified_at = 0.0  # none given: announced at the start of the run
    if item.get("notified_at") not in (None, ""):
        notified_at = at("notified_at")
    elif item.get("notice_s") not in (None, ""):
        notified_at = t0 - number(path, *loc("notice_s"), item["notice_s"], minimum=0)
    if notified_at > t1:
        raise InputError(path, "notified after it ends", *loc("notified_at" if item.get("notified_at") not in (None, "") else "notice_s"))
    return GridEvent(f"{path.name}#{n}", kind, t0, t1, site_id=site, cap_w=cap_w, respond_by=respond_by, reason=reason, notified_at=notified_at)


def load_events(path: Path, start: float, sites: list[ScenarioSite]) -> list[GridEvent]:
    by_id = {s.site_id: s for s in sites}
    path = Path(path)
    if path.suffix.lower() == ".csv":
        _, rows = read_csv(path, required=("kind", "site", "start", "end"))
        return [_event(path, n, row, line, start, by_id) for n, (line, row) in enumerate(rows)]
    doc = load_yaml(path)
    items = doc.get("events") if isinstance(doc, dict) else doc
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(path, "expected `events:` followed by a list of events", line_of(doc))
    events = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(path, "each event must be a mapping", None, f"events[{n}]")
        events.append(_event(path, n, item, None, start, by_id))
    return events


CHECKPOINT_COLUMNS = ("checkpoint_grace_s", "checkpoint_every_s", "step_s", "checkpoint_write_s")  # optional
ARRIVAL_COLUMNS = ("time_s", "kind", "gpus", "duration_s", "priority", "slowdown_tolerance_pct", "allowed_regions", "value_usd_per_gpu_hour")


def load_arrivals(path: Path) -> list[Arrival]:
    _, rows = read_csv(path, required=ARRIVAL_COLUMNS)
    arrivals: list[Arrival] = []
    for line, row in rows:
        kind_text = (row["kind"] or "").strip().lower()
        if kind_text not in ("training", "inference"):
            raise InputError(path, f"kind must be training or inference, got {row['kind']!r}", line, "kind")
        tolerance = number(path, line, "slowdown_tolerance_pct", row["slowdown_tolerance_pct"] or 0, minimum=0)
        if tolerance > 100:
            raise InputError(path, f"must be 0..100, got {tolerance:g}", line, "slowdown_tolerance_pct")
        arrivals.append(
            Arrival(
                time_s=number(path, line, "time_s", row["time_s"], minimum=0),
                kind=JobKind.TRAINING if kind_text == "training" else JobKind.INFERENCE,
                gpus=int(number(path, line, "gpus", row["gpus"], integer=True, minimum=1)),
                duration_s=number(path, line, "duration_s", row["duration_s"], minimum=1),
                priority=int(number(path, line, "priority", row["priority"] or 0, integer=True)),
                slowdown_tolerance_pct=tolerance,
                allowed_regions=tuple(r for r in re.split(r"[;\s]+", row["allowed_regions"] or "") if r),
                value_usd_per_gpu_hour=number(path, line, "value_usd_per_gpu_hour", row["value_usd_per_gpu_hour"], minimum=0),
                job_id=(row.get("job_id") or "").strip(),
                tenant=(row.get("tenant") or "").strip() or "sim",
                **{k: number(path, line, k, row[k], minimum=0) for k in CHECKPOINT_COLUMNS if (row.get(k) or "").strip()},
            )
        )
    return sorted(arrivals, key=lambda a: a.time_s)
