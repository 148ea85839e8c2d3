"""SQLite store (WAL mode, synchronous=FULL: a commit is on disk when it returns).

Jobs and sites are stored as JSON documents (documents.py) next to the columns
queries need; the event log is an append-only table whose INTEGER PRIMARY KEY
AUTOINCREMENT is the event id. Used from one thread at a time (the shell's committer
thread). The schema is versioned (migrations.py, MIGRATIONS below); `backup` copies
a live database with SQLite's online backup.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from scheduler.core.grid import GridEventRecord
from scheduler.core.jobs import Job, JobEvent
from scheduler.core.leadership import Fenced, Lease, claim
from scheduler.core.sites import Site
from scheduler.store import job_queries
from scheduler.store.base import DuplicateRequest, StoreError
from scheduler.store.documents import (
    event_from_row,
    event_to_doc,
    grid_record_to_doc,
    job_to_doc,
    site_to_doc,
)
from scheduler.store.migrations import VERSION_TABLE, Migration, MigrationReport, check_ordered, pending

# Version 1 is the schema of the releases before versions, statement for statement.
MIGRATIONS = check_ordered((
    Migration(1, "jobs, the event log, sites and grid events", (
        """CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    client_request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state INTEGER NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (tenant, client_request_id)
)""",
        """CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    doc TEXT NOT NULL
)""",
        "CREATE INDEX IF NOT EXISTS events_by_tenant ON events (tenant, event_id)",
        """CREATE TABLE IF NOT EXISTS sites (
    site_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
)""",
        """CREATE TABLE IF NOT EXISTS grid_events (
    event_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    doc TEXT NOT NULL
)""",
    )),
    Migration(2, "events by job: one job's watch seeks its events", (
        "CREATE INDEX events_by_job ON events (tenant, job_id, event_id)",
    )),
    Migration(3, "the leader's lease: every commit of a replica that leads carries its epoch", (
        """CREATE TABLE leadership (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    address TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_at REAL NOT NULL
)""",
        "INSERT INTO leadership VALUES (1, '', '', 0, 0)",
    )),
    Migration(4, "event log retention: the highest event id compacted away", (
        "CREATE TABLE event_log (id INTEGER PRIMARY KEY CHECK (id = 1), compacted_through INTEGER NOT NULL)",
        "INSERT INTO event_log VALUES (1, 0)",
    )),
    Migration(5, "bounded memory: jobs paged by seq and by tenant, and by the commit that last changed them (warm standbys)", (
        "ALTER TABLE jobs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX jobs_by_seq ON jobs (seq)",
        f"CREATE INDEX jobs_unfinished ON jobs (seq) WHERE state NOT IN {job_queries.FINISHED}",
        "CREATE INDEX jobs_by_tenant ON jobs (tenant, seq, state)",
        "CREATE INDEX jobs_by_change ON jobs (changed)",
    )),
))
NEXT_CHANGE = "SELECT COALESCE(MAX(changed), 0) + 1 FROM jobs"  # one number per commit that writes jobs (job_queries.py)
LEASE_ROW = "SELECT holder, address, epoch, expires_at FROM leadership WHERE id = 1"  # no holder yet: "", expired at 0


class SqliteStore(job_queries.JobReads):
    def __init__(self, path: str | Path, migrate: bool = True):
        """Open (creating) the database; `migrate`: bring its schema to the newest version
        (else only refuse a newer one). SchemaTooNew if it was written by a newer powerplane."""
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.RLock()  # the committer's thread and the lease's share the connection: one transaction at a time
        self.migration: MigrationReport | None = None  # what opening did to the schema, when it migrated
        try:
            if migrate:
                self.migration = self.migrate()
            else:
                pending(self.schema_version()[0], MIGRATIONS, self.path)
        except BaseException:
            self._db.close()
            raise

    def schema_version(self) -> tuple[int, bool]:
        """(version, adopted): 0 for an empty database; 1 and adopted=True for the tables
        of a release before versions (no schema_version table yet)."""
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" in tables:
            (version,) = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
            return version, False
        return (1, True) if "jobs" in tables else (0, False)

    def migrate(self) -> MigrationReport:
        """Bring the schema to the newest version, in one transaction; idempotent."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # a second process migrating at once waits here
        try:
            current, adopted = self.schema_version()
            todo = pending(current, MIGRATIONS, self.path)
            if todo or adopted:
                db.execute(VERSION_TABLE)
            if adopted:
                db.execute("INSERT INTO schema_version VALUES (1, ?, ?)", ("adopted: " + MIGRATIONS[0].description, time.time()))
            for migration in todo:
                for statement in migration.statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (migration.version, migration.description, time.time()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return MigrationReport(current, MIGRATIONS[-1].version, adopted)

    def _read(self, reader, *args):
        """Run a job_queries reader in one read transaction (one consistent view in WAL mode)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                return reader(self._query, *args)
            finally:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params) -> sqlite3.Cursor:
        return self._db.execute(sql, params)  # rows are read as the reader iterates: no list of a million documents

    def commit(
        self, jobs: Sequence[Job], events: Sequence[JobEvent], sites: Sequence[Site], grid_events: Sequence[GridEventRecord] = (), epoch: int | None = None
    ) -> list[int]:
        with self._lock:
            return self._commit(jobs, events, sites, grid_events, epoch)

    def _commit(self, jobs, events, sites, grid_events, epoch) -> list[int]:
        ids: list[int] = []
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if epoch is not None:
                (held,) = db.execute("SELECT epoch FROM leadership WHERE id = 1").fetchone()
                if held != epoch:
                    raise Fenced(f"this replica's epoch {epoch} is no longer the lease's ({held}): another replica leads; nothing was written")
            if jobs:
                (change,) = db.execute(NEXT_CHANGE).fetchone()
                db.executemany(
                    "INSERT INTO jobs (job_id, tenant, client_request_id, seq, state, doc, changed) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, doc = excluded.doc, changed = excluded.changed",
                    [(j.job_id, j.tenant, j.client_request_id, j.seq, int(j.state), job_to_doc(j), change) for j in jobs],
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
        except BaseException as err:
            db.execute("ROLLBACK")
            if isinstance(err, sqlite3.IntegrityError) and "client_request_id" in str(err):
                raise DuplicateRequest("a job with the same (tenant, client_request_id) is already stored; nothing was written") from err
            raise
        return ids

    # ------------------------------------------------------------- retention
    def compact_events(self, keep: int) -> int:
        """Delete all but the newest `keep` events; returns how many went."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                (newest,) = db.execute("SELECT COALESCE(MAX(event_id), 0) FROM events").fetchone()
                (through,) = db.execute("SELECT compacted_through FROM event_log WHERE id = 1").fetchone()
                cutoff = newest - keep
                deleted = 0
                if cutoff > through:
                    deleted = db.execute("DELETE FROM events WHERE event_id <= ?", (cutoff,)).rowcount
                    db.execute("UPDATE event_log SET compacted_through = ? WHERE id = 1", (cutoff,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return deleted

    def compacted_through(self) -> int:
        """The highest event id compacted away (0: none): a watch must resume after it."""
        with self._lock:
            return self._db.execute("SELECT compacted_through FROM event_log WHERE id = 1").fetchone()[0]

    def delete_grid_events(self, event_ids: Sequence[str]) -> int:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                deleted = sum(db.execute("DELETE FROM grid_events WHERE event_id = ?", (i,)).rowcount for i in event_ids)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return deleted

    # ------------------------------------------------------------- the leader's lease
    def claim_lease(self, holder: str, address: str, ttl_s: float) -> Lease | None:
        """Take or renew the lease (scheduler/core/leadership.py) in one transaction, by this
        machine's clock (every replica on one SQLite file runs on this machine)."""
        with self._lock:
            return self._claim_lease(holder, address, ttl_s)

    def _claim_lease(self, holder: str, address: str, ttl_s: float) -> Lease | None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            lease = claim(Lease(*db.execute(LEASE_ROW).fetchone()), holder, address, time.time(), ttl_s)  # no holder yet: expired
            if lease is not None:
                db.execute("UPDATE leadership SET holder = ?, address = ?, epoch = ?, expires_at = ? WHERE id = 1", (lease.holder, lease.address, lease.epoch, lease.expires_at))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return lease

    def current_lease(self) -> Lease | None:
        with self._lock:
            return self._lease_row()

    def release_lease(self, holder: str, epoch: int) -> bool:
        """A leader stopping on purpose lets its lease go at once (a standby takes it at its next try)."""
        with self._lock:
            return self._db.execute("UPDATE leadership SET expires_at = 0 WHERE id = 1 AND holder = ? AND epoch = ?", (holder, epoch)).rowcount == 1

    def _lease_row(self) -> Lease | None:
        row = self._db.execute(LEASE_ROW).fetchone()
        return Lease(*row) if row is not None and row[0] else None

    def events_after(self, tenant: str, after_event_id: int, job_id: str = "", limit: int = 1000) -> list[JobEvent]:
        query = "SELECT event_id, doc FROM events WHERE tenant = ? AND event_id > ?"
        params: list = [tenant, after_event_id]
        if job_id:
            query += " AND job_id = ?"
            params.append(job_id)
        query += " ORDER BY event_id LIMIT ?"
        params.append(limit)
        with self._lock:
            return [event_from_row(i, doc) for i, doc in self._db.execute(query, params)]

    def close(self) -> None:
        self._db.close()


def backup(path: str | Path, to: str | Path) -> None:
    """Copy the database at `path` to the new file `to` with SQLite's online backup: the
    copy is consistent even while a scheduler writes (it waits for no one)."""
    path, to = Path(path), Path(to)
    if not path.exists():
        raise StoreError(f"no database at {path}")
    if to.exists():
        raise StoreError(f"{to} exists: back up to a new file")
    to.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(to)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
