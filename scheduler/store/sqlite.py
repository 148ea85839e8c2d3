"""SQLite store (WAL mode, synchronous=FULL: a commit is on disk when it returns).

Jobs and sites are stored as JSON documents next to the columns queries need;
the event log is an append-only table whose INTEGER PRIMARY KEY AUTOINCREMENT is
the event id. Used from one thread at a time (the shell's committer thread).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord
from scheduler.core.jobs import Job, JobEvent, JobKind, JobSpec, JobState, Resources
from scheduler.core.sites import GpuNode, Site
from scheduler.store.base import Snapshot

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    client_request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state INTEGER NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (tenant, client_request_id)
);
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_tenant ON events (tenant, event_id);
CREATE TABLE IF NOT EXISTS sites (
    site_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grid_events (
    event_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    doc TEXT NOT NULL
);
"""


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_spec_docs: dict[int, tuple[JobSpec, dict]] = {}  # id(spec) -> (spec, its document): a job's versions share one spec


def _spec_doc(spec: JobSpec) -> dict:
    cached = _spec_docs.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    doc = dataclasses.asdict(spec)
    doc["kind"] = spec.kind.name
    if len(_spec_docs) > 100_000:
        _spec_docs.clear()
    _spec_docs[id(spec)] = (spec, doc)
    return doc


def job_to_doc(job: Job) -> str:
    """The job as JSON: its fields, read one level deep (dataclasses.asdict copied the
    whole tree each time; the spec's document is made once per spec)."""
    doc = {name: getattr(job, name) for name in _JOB_FIELDS}
    doc["spec"] = _spec_doc(job.spec)
    doc["state"] = job.state.name
    doc["stop_outcome"] = job.stop_outcome.name if job.stop_outcome else None
    return json.dumps(doc, separators=(",", ":"))


def job_from_doc(text: str) -> Job:
    doc = json.loads(text)
    spec = doc["spec"]
    spec["kind"] = JobKind[spec["kind"]]
    spec["resources"] = Resources(**spec["resources"])
    spec["allowed_regions"] = tuple(spec["allowed_regions"])
    doc["spec"] = JobSpec(**spec)
    doc["state"] = JobState[doc["state"]]
    doc["stop_outcome"] = JobState[doc["stop_outcome"]] if doc["stop_outcome"] else None
    doc["lingering"] = tuple((site, run) for site, run in doc.get("lingering", ()))
    return Job(**doc)


def event_to_doc(event: JobEvent) -> str:
    doc = dataclasses.asdict(event)
    doc.pop("event_id")
    doc["from_state"] = event.from_state.name if event.from_state else None
    doc["to_state"] = event.to_state.name
    return json.dumps(doc, separators=(",", ":"))


def event_from_row(event_id: int, text: str) -> JobEvent:
    doc = json.loads(text)
    doc["from_state"] = JobState[doc["from_state"]] if doc["from_state"] else None
    doc["to_state"] = JobState[doc["to_state"]]
    return JobEvent(event_id=event_id, **doc)


def site_to_doc(site: Site) -> str:
    return json.dumps(dataclasses.asdict(site), separators=(",", ":"))


def site_from_doc(text: str) -> Site:
    doc = json.loads(text)
    doc["inventory"] = tuple(GpuNode(**n) for n in doc["inventory"])
    return Site(**doc)


def grid_record_to_doc(record: GridEventRecord) -> str:
    doc = dataclasses.asdict(record)
    doc["event"]["kind"] = record.event.kind.name
    return json.dumps(doc, separators=(",", ":"))  # an open end is stored as Infinity


def grid_record_from_doc(text: str) -> GridEventRecord:
    doc = json.loads(text)
    doc["event"]["kind"] = GridEventKind[doc["event"]["kind"]]
    doc["event"] = GridEvent(**doc["event"])
    doc["response"] = tuple(doc["response"])
    return GridEventRecord(**doc)


class SqliteStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def load(self) -> Snapshot:
        jobs = [job_from_doc(doc) for (doc,) in self._db.execute("SELECT doc FROM jobs ORDER BY seq")]
        sites = [site_from_doc(doc) for (doc,) in self._db.execute("SELECT doc FROM sites ORDER BY site_id")]
        grid = [grid_record_from_doc(doc) for (doc,) in self._db.execute("SELECT doc FROM grid_events ORDER BY received_at, event_id")]
        return Snapshot(jobs=jobs, sites=sites, grid_events=grid)

    def commit(self, jobs: Sequence[Job], events: Sequence[JobEvent], sites: Sequence[Site], grid_events: Sequence[GridEventRecord] = ()) -> list[int]:
        ids: list[int] = []
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO jobs (job_id, tenant, client_request_id, seq, state, doc) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, doc = excluded.doc",
                [(j.job_id, j.tenant, j.client_request_id, j.seq, int(j.state), job_to_doc(j)) for j in jobs],
            )
            for event in events:
                cursor = db.execute("INSERT INTO events (job_id, tenant, doc) VALUES (?, ?, ?)", (event.job_id, event.tenant, event_to_doc(event)))
                ids.append(cursor.lastrowid)
            db.executemany(
                "INSERT INTO sites (site_id, doc) VALUES (?, ?) ON CONFLICT (site_id) DO UPDATE SET doc = excluded.doc",
                [(s.site_id, site_to_doc(s)) for s in sites],
            )
            db.executemany(
                "INSERT INTO grid_events (event_id, received_at, doc) VALUES (?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET doc = excluded.doc",
                [(r.event.event_id, r.received_at, grid_record_to_doc(r)) for r in grid_events],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ids

    def events_after(self, tenant: str, after_event_id: int, job_id: str = "", limit: int = 1000) -> list[JobEvent]:
        query = "SELECT event_id, doc FROM events WHERE tenant = ? AND event_id > ?"
        params: list = [tenant, after_event_id]
        if job_id:
            query += " AND job_id = ?"
            params.append(job_id)
        query += " ORDER BY event_id LIMIT ?"
        params.append(limit)
        return [event_from_row(i, doc) for i, doc in self._db.execute(query, params)]

    def close(self) -> None:
        self._db.close()
