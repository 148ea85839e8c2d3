"""The JSON documents both stores keep: jobs, job events, sites and grid event records.

Each store keeps these as text next to the columns its queries need, so SQLite and
PostgreSQL hold the same documents and read them back with the same code. Text, not
PostgreSQL's JSONB: a grid event's open end is stored as `Infinity`, which Python's
json module writes and reads back but JSONB refuses.
"""

from __future__ import annotations

import dataclasses
import json

from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord
from scheduler.core.jobs import Job, JobEvent, JobKind, JobSpec, JobState, Resources
from scheduler.core.sites import GpuNode, Site

_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec))
_RESOURCE_FIELDS = tuple(f.name for f in dataclasses.fields(Resources))
_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(JobEvent) if f.name != "event_id")
_spec_docs: dict[int, tuple[JobSpec, dict]] = {}  # id(spec) -> (spec, its document): a job's versions share one spec


def _spec_doc(spec: JobSpec) -> dict:
    cached = _spec_docs.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    doc = {name: getattr(spec, name) for name in _SPEC_FIELDS}  # one level deep, like the job's (asdict deep-copies)
    doc["kind"] = spec.kind.name
    doc["resources"] = {name: getattr(spec.resources, name) for name in _RESOURCE_FIELDS}
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
    doc = {name: getattr(event, name) for name in _EVENT_FIELDS}
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
