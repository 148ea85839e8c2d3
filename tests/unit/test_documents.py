"""The stores' JSON documents are written field by field (fast: dataclasses.asdict
deep-copied every spec); they must stay what asdict would write, and read back equal."""

from __future__ import annotations

import dataclasses
import json

from scheduler.core.jobs import JobState, new_job, transition
from scheduler.store.documents import event_from_row, event_to_doc, job_from_doc, job_to_doc
from tests.builders import a_job


def reference_job_doc(job) -> str:
    doc = dataclasses.asdict(job)
    doc["spec"]["kind"] = job.spec.kind.name
    doc["state"] = job.state.name
    doc["stop_outcome"] = job.stop_outcome.name if job.stop_outcome else None
    return json.dumps(doc, separators=(",", ":"))


def test_documents_are_what_asdict_writes_and_read_back_equal():
    spec = dataclasses.replace(a_job().training(gpus=4).in_regions("us", "eu").build().spec, env={"A": "1"}, labels={"team": "x"}, max_runtime_s=60)
    job, event = new_job("job-0123456789abcdef", "acme", "r1", spec, 7, 100.0)
    cancelled, last = transition(job, JobState.CANCELLED, "by tenant", 101.0)
    for j in (job, cancelled):
        assert job_to_doc(j) == reference_job_doc(j)
        assert job_from_doc(job_to_doc(j)) == j
    for e in (event, last):
        reference = dataclasses.asdict(e)
        reference.pop("event_id")
        reference["from_state"] = e.from_state.name if e.from_state else None
        reference["to_state"] = e.to_state.name
        assert event_to_doc(e) == json.dumps(reference, separators=(",", ":"))
        assert event_from_row(0, event_to_doc(e)) == e
