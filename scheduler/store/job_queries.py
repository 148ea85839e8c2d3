"""The job queries both stores share: the bounded snapshot a scheduler starts from,
the changes a warm standby follows, and the reads that page finished jobs in on demand.

Written once with `?` placeholders; each store passes a `Query` (SQL, parameters) ->
rows that runs them on its own connection (PostgreSQL's turns `?` into `%s`), inside
the transaction or lock it reads under. The indexes they rely on are migration 5 of
both stores: jobs by seq, unfinished jobs by seq (partial), a tenant's jobs by seq,
and jobs by the commit that last changed them (`changed`: SQLite numbers each commit
that writes jobs one above the highest before it, PostgreSQL each row from a sequence
taken under the commit lock; either way the numbers grow in commit order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from scheduler.core.jobs import TERMINAL, Job, JobState
from scheduler.store.base import Snapshot
from scheduler.store.documents import grid_record_from_doc, job_from_doc, site_from_doc

Query = Callable[[str, Sequence], Iterable[tuple]]
FINISHED = "(" + ", ".join(str(int(s)) for s in sorted(TERMINAL)) + ")"
NEWEST = "SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(changed), 0) FROM jobs"
RECENT_OR_UNFINISHED = f"SELECT doc FROM jobs WHERE seq > ? UNION ALL SELECT doc FROM jobs WHERE seq <= ? AND state NOT IN {FINISHED}"
PAGED_OUT = f"SELECT state, tenant, COUNT(*) FROM jobs WHERE seq <= ? AND state IN {FINISHED} GROUP BY state, tenant"
EVERY_JOB = "SELECT doc FROM jobs"
CHANGED_AFTER = "SELECT doc FROM jobs WHERE changed > ? AND changed <= ?"
SITES = "SELECT doc FROM sites ORDER BY site_id"
GRID_EVENTS = "SELECT doc FROM grid_events ORDER BY received_at, event_id"
JOB_BY_ID = "SELECT doc FROM jobs WHERE job_id = ?"
JOB_BY_REQUEST = "SELECT doc FROM jobs WHERE tenant = ? AND client_request_id = ?"


def snapshot(query: Query, recent: int | None = None) -> Snapshot:
    """Sites, grid events and the jobs a scheduler keeps in memory: every job (`recent`
    None), or the unfinished ones and those among the newest `recent` submissions, with
    the rest counted by (state, tenant) in `paged_out`. Run it in one read transaction."""
    (newest_seq, changed), = query(NEWEST, ())
    if recent is None:
        rows, paged_out = query(EVERY_JOB, ()), {}
    else:
        floor = max(0, newest_seq - recent)
        rows = query(RECENT_OR_UNFINISHED, (floor, floor))
        paged_out = {(JobState(state), tenant): n for state, tenant, n in query(PAGED_OUT, (floor,))} if floor else {}
    jobs = sorted((job_from_doc(doc) for (doc,) in rows), key=lambda j: j.seq)
    return Snapshot(jobs=jobs, sites=_sites(query), grid_events=_grid(query), paged_out=paged_out, changed_through=changed)


def changes_after(query: Query, mark: int) -> Snapshot:
    """What changed since a snapshot or an earlier call (`mark`, its `changed_through`):
    the jobs commits wrote since, in seq order, and every site and grid event as they are
    now (both tables stay small). Run it in one read transaction."""
    (_, changed), = query(NEWEST, ())
    jobs = sorted((job_from_doc(doc) for (doc,) in query(CHANGED_AFTER, (mark, changed))), key=lambda j: j.seq)
    return Snapshot(jobs=jobs, sites=_sites(query), grid_events=_grid(query), changed_through=changed)


def one_job(query: Query, job_id: str) -> Job | None:
    return next((job_from_doc(doc) for (doc,) in query(JOB_BY_ID, (job_id,))), None)


def job_by_request(query: Query, tenant: str, client_request_id: str) -> Job | None:
    return next((job_from_doc(doc) for (doc,) in query(JOB_BY_REQUEST, (tenant, client_request_id))), None)


def tenant_jobs(query: Query, tenant: str, before_seq: int, states: frozenset[JobState], limit: int) -> list[Job]:
    """A tenant's jobs with seq below `before_seq` (in `states`, when given), newest first."""
    sql, params = "SELECT doc FROM jobs WHERE tenant = ? AND seq < ?", [tenant, before_seq]
    if states:
        sql += " AND state IN (" + ", ".join("?" for _ in states) + ")"
        params += sorted(int(s) for s in states)
    return [job_from_doc(doc) for (doc,) in query(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit))]


class JobReads:
    """The Store protocol's reads above, for a store whose `_read(reader, *args)` runs a
    reader with its `Query` in one read transaction."""

    def _read(self, reader, *args): ...

    def load(self, recent: int | None = None) -> Snapshot:
        return self._read(snapshot, recent)

    def changes_after(self, mark: int) -> Snapshot:
        return self._read(changes_after, mark)

    def get_job(self, job_id: str) -> Job | None:
        return self._read(one_job, job_id)

    def job_by_request(self, tenant: str, client_request_id: str) -> Job | None:
        return self._read(job_by_request, tenant, client_request_id)

    def tenant_jobs(self, tenant: str, before_seq: int, states: frozenset[JobState], limit: int) -> list[Job]:
        return self._read(tenant_jobs, tenant, before_seq, states, limit)


def _sites(query: Query) -> list:
    return [site_from_doc(doc) for (doc,) in query(SITES, ())]


def _grid(query: Query) -> list:
    return [grid_record_from_doc(doc) for (doc,) in query(GRID_EVENTS, ())]
