"""PostgreSQL store (psycopg 3): the same tables and documents as SQLite (documents.py).

Commits go through one dedicated connection, reads (load, events_after) through a
small pool (psycopg_pool), so a read never waits behind a commit's round trips; all
connections are in autocommit mode with explicit transactions. Durable: every
session runs with `synchronous_commit = on`, so a commit is flushed to the server's
WAL when it returns.

Event ids come from an identity column (a sequence). A sequence hands out numbers
when rows are inserted, not when they commit, so two writers committing at once
could make id 7 visible before id 6 and a watcher resuming after 7 would miss 6.
Here commits are serialised, so ids become visible in commit order: the shell
commits from its one committer thread through the one writer connection, and every
commit also takes a transaction-level advisory lock (`COMMIT_LOCK`) first, which
keeps the order even if a second process were ever to write to the same database.

The DSN (it may hold a password) is never logged, nor kept where a repr would show it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from scheduler.core.grid import GridEventRecord
from scheduler.core.jobs import Job, JobEvent
from scheduler.core.leadership import Fenced, Lease, claim
from scheduler.core.sites import Site
from scheduler.store import documents as docs
from scheduler.store import job_queries
from scheduler.store.base import DuplicateRequest, StoreError
from scheduler.store.migrations import VERSION_TABLE, Migration, MigrationReport, check_ordered, pending

COMMIT_LOCK = 0x706F_7765_7270_6C61  # pg_advisory_xact_lock keys ("powerpla"): commits
MIGRATE_LOCK = COMMIT_LOCK + 1  # and migrations
REQUEST_CONSTRAINT = "jobs_tenant_request_unique"

# The same versions as SQLite's (sqlite.py), in PostgreSQL's types; documents are TEXT
# (JSONB refuses the Infinity a grid event's open end is stored as).
MIGRATIONS = check_ordered((
    Migration(1, "jobs, the event log, sites and grid events", (
        f"""CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    client_request_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    state INTEGER NOT NULL,
    doc TEXT NOT NULL,
    CONSTRAINT {REQUEST_CONSTRAINT} UNIQUE (tenant, client_request_id)
)""",
        """CREATE TABLE events (
    event_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    doc TEXT NOT NULL
)""",
        "CREATE INDEX events_by_tenant ON events (tenant, event_id)",
        "CREATE TABLE sites (site_id TEXT PRIMARY KEY, doc TEXT NOT NULL)",
        "CREATE TABLE grid_events (event_id TEXT PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL, doc TEXT NOT NULL)",
    )),
    Migration(2, "events by job: one job's watch seeks its events", (
        "CREATE INDEX events_by_job ON events (tenant, job_id, event_id)",
    )),
    Migration(3, "the leader's lease: every commit of a replica that leads carries its epoch", (
        """CREATE TABLE leadership (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    address TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
)""",
        "INSERT INTO leadership VALUES (1, '', '', 0, 0)",
    )),
    Migration(4, "event log retention: the highest event id compacted away", (
        "CREATE TABLE event_log (id INTEGER PRIMARY KEY CHECK (id = 1), compacted_through BIGINT NOT NULL)",
        "INSERT INTO event_log VALUES (1, 0)",
    )),
    Migration(5, "bounded memory: jobs paged by seq and by tenant, and by the commit that last changed them (warm standbys)", (
        "ALTER TABLE jobs ADD COLUMN changed BIGINT NOT NULL DEFAULT 0",
        "CREATE SEQUENCE job_changes",  # taken under the commit lock: in commit order
        "CREATE INDEX jobs_by_seq ON jobs (seq)",
        f"CREATE INDEX jobs_unfinished ON jobs (seq) WHERE state NOT IN {job_queries.FINISHED}",
        "CREATE INDEX jobs_by_tenant ON jobs (tenant, seq, state)",
        "CREATE INDEX jobs_by_change ON jobs (changed)",
    )),
))


def _configure(conn: psycopg.Connection) -> None:
    conn.execute("SET synchronous_commit TO on")


# A database out of reach (a partition, a dead host) must fail calls within seconds, not
# after TCP's retransmissions run out: a leader's renewal would otherwise hang for minutes.
NETWORK = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2, "tcp_user_timeout": 5000}


def _connect(dsn: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, autocommit=True, application_name="powerplane", **NETWORK)
    except psycopg.Error as err:  # libpq's message names host and port, never the password
        raise StoreError(f"cannot connect to PostgreSQL: {str(err).strip().splitlines()[0]}") from None
    _configure(conn)
    return conn


class PostgresStore(job_queries.JobReads):
    def __init__(self, dsn: str, pool_size: int = 4, migrate: bool = True):
        """Connect (StoreError, one line, if the server cannot be reached); `migrate`: bring
        the schema to the newest version (else only refuse a newer one: SchemaTooNew)."""
        self._writer = _connect(dsn)
        self._lock = threading.Lock()  # the writer is one connection: one transaction at a time
        self._pool: ConnectionPool | None = None
        self.migration: MigrationReport | None = None  # what opening did to the schema, when it migrated
        try:
            if migrate:
                self.migration = self.migrate()
            else:
                pending(self.schema_version()[0], MIGRATIONS, "PostgreSQL database")
            self._pool = ConnectionPool(
                dsn, min_size=1, max_size=max(1, pool_size), kwargs={"autocommit": True, "application_name": "powerplane", **NETWORK}, configure=_configure, open=True, name="powerplane-reads"
            )
            self._pool.wait(timeout=10)
        except PoolTimeout:
            self.close()
            raise StoreError("cannot open PostgreSQL read connections (timed out after 10 s)") from None
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return "PostgresStore(<dsn hidden>)"

    def schema_version(self) -> tuple[int, bool]:
        """(version, adopted) as SqliteStore.schema_version: 0 for an empty database."""
        with self._lock:
            return self._version(self._writer)

    @staticmethod
    def _version(conn: psycopg.Connection) -> tuple[int, bool]:
        names = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL, to_regclass('jobs') IS NOT NULL").fetchone()
        if names[0]:
            return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0], False
        return (1, True) if names[1] else (0, False)

    def migrate(self) -> MigrationReport:
        """Bring the schema to the newest version in one transaction (PostgreSQL's DDL is
        transactional); idempotent; concurrent migrations wait for each other."""
        with self._lock, self._writer.transaction():
            conn = self._writer
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            current, adopted = self._version(conn)
            todo = pending(current, MIGRATIONS, "PostgreSQL database")
            if todo or adopted:
                conn.execute(VERSION_TABLE)
            if adopted:
                conn.execute("INSERT INTO schema_version VALUES (1, %s, %s)", ("adopted: " + MIGRATIONS[0].description, time.time()))
            for migration in todo:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (%s, %s, %s)", (migration.version, migration.description, time.time()))
        return MigrationReport(current, MIGRATIONS[-1].version, adopted)

    def _read(self, reader, *args):
        """Run a job_queries reader on a pooled connection in one REPEATABLE READ transaction (one snapshot of every table)."""
        assert self._pool is not None
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return reader(lambda sql, params: conn.execute(sql.replace("?", "%s"), params), *args)

    def commit(
        self, jobs: Sequence[Job], events: Sequence[JobEvent], sites: Sequence[Site], grid_events: Sequence[GridEventRecord] = (), epoch: int | None = None
    ) -> list[int]:
        ids: list[int] = []
        try:
            with self._lock, self._writer.transaction(), self._writer.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
                if epoch is not None:  # FOR SHARE: a claim of the lease (FOR UPDATE) waits for this commit, and this one for it
                    held = cur.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE").fetchone()[0]
                    if held != epoch:
                        raise Fenced(f"this replica's epoch {epoch} is no longer the lease's ({held}): another replica leads; nothing was written")
                if jobs:  # each row written takes the next change number: in commit order, since commits are serial under COMMIT_LOCK
                    cur.executemany(
                        "INSERT INTO jobs (job_id, tenant, client_request_id, seq, state, doc, changed) VALUES (%s, %s, %s, %s, %s, %s, nextval('job_changes')) "
                        "ON CONFLICT (job_id) DO UPDATE SET state = EXCLUDED.state, doc = EXCLUDED.doc, changed = EXCLUDED.changed",
                        [(j.job_id, j.tenant, j.client_request_id, j.seq, int(j.state), docs.job_to_doc(j)) for j in jobs],
                    )
                if events:
                    cur.executemany(
                        "INSERT INTO events (job_id, tenant, doc) VALUES (%s, %s, %s) RETURNING event_id",
                        [(e.job_id, e.tenant, docs.event_to_doc(e)) for e in events],
                        returning=True,
                    )
                    while True:  # one result per event, in the order they were inserted
                        ids.append(cur.fetchone()[0])
                        if not cur.nextset():
                            break
                if sites:
                    cur.executemany(
                        "INSERT INTO sites (site_id, doc) VALUES (%s, %s) ON CONFLICT (site_id) DO UPDATE SET doc = EXCLUDED.doc",
                        [(s.site_id, docs.site_to_doc(s)) for s in sites],
                    )
                if grid_events:
                    cur.executemany(
                        "INSERT INTO grid_events (event_id, received_at, doc) VALUES (%s, %s, %s) ON CONFLICT (event_id) DO UPDATE SET doc = EXCLUDED.doc",
                        [(r.event.event_id, r.received_at, docs.grid_record_to_doc(r)) for r in grid_events],
                    )
        except errors.UniqueViolation as err:
            if err.diag.constraint_name == REQUEST_CONSTRAINT:
                raise DuplicateRequest("a job with the same (tenant, client_request_id) is already stored; nothing was written") from err
            raise
        return ids

    # ------------------------------------------------------------- retention
    def compact_events(self, keep: int) -> int:
        """Delete all but the newest `keep` events; returns how many went."""
        with self._lock, self._writer.transaction(), self._writer.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))  # after every commit before it
            newest = cur.execute("SELECT COALESCE(MAX(event_id), 0) FROM events").fetchone()[0]
            through = cur.execute("SELECT compacted_through FROM event_log WHERE id = 1 FOR UPDATE").fetchone()[0]
            cutoff = newest - keep
            if cutoff <= through:
                return 0
            deleted = cur.execute("DELETE FROM events WHERE event_id <= %s", (cutoff,)).rowcount
            cur.execute("UPDATE event_log SET compacted_through = %s WHERE id = 1", (cutoff,))
        return deleted

    def compacted_through(self) -> int:
        """The highest event id compacted away (0: none): a watch must resume after it."""
        assert self._pool is not None
        with self._pool.connection() as conn:
            return conn.execute("SELECT compacted_through FROM event_log WHERE id = 1").fetchone()[0]

    def delete_grid_events(self, event_ids: Sequence[str]) -> int:
        with self._lock, self._writer.transaction(), self._writer.cursor() as cur:
            cur.execute("DELETE FROM grid_events WHERE event_id = ANY(%s)", (list(event_ids),))
            return cur.rowcount

    # ------------------------------------------------------------- the leader's lease
    def claim_lease(self, holder: str, address: str, ttl_s: float) -> Lease | None:
        """Take or renew the lease (scheduler/core/leadership.py) in one transaction, by the
        database's clock: the replicas' clocks never have to agree."""
        with self._lock, self._writer.transaction(), self._writer.cursor() as cur:
            row = cur.execute("SELECT holder, address, epoch, expires_at, extract(epoch FROM clock_timestamp()) FROM leadership WHERE id = 1 FOR UPDATE").fetchone()
            lease = claim(Lease(*row[:4]), holder, address, float(row[4]), ttl_s)  # no holder yet: "", expired at 0
            if lease is not None:
                cur.execute("UPDATE leadership SET holder = %s, address = %s, epoch = %s, expires_at = %s WHERE id = 1", (lease.holder, lease.address, lease.epoch, lease.expires_at))
        return lease

    def release_lease(self, holder: str, epoch: int) -> bool:
        """A leader stopping on purpose lets its lease go at once (a standby takes it at its next try)."""
        with self._lock, self._writer.cursor() as cur:
            cur.execute("UPDATE leadership SET expires_at = 0 WHERE id = 1 AND holder = %s AND epoch = %s", (holder, epoch))
            return cur.rowcount == 1

    def current_lease(self) -> Lease | None:
        assert self._pool is not None
        with self._pool.connection() as conn:
            row = conn.execute("SELECT holder, address, epoch, expires_at FROM leadership WHERE id = 1").fetchone()
        return Lease(*row) if row is not None and row[0] else None

    def events_after(self, tenant: str, after_event_id: int, job_id: str = "", limit: int = 1000) -> list[JobEvent]:
        assert self._pool is not None
        query = "SELECT event_id, doc FROM events WHERE tenant = %s AND event_id > %s"
        params: list = [tenant, after_event_id]
        if job_id:
            query += " AND job_id = %s"
            params.append(job_id)
        query += " ORDER BY event_id LIMIT %s"
        params.append(limit)
        with self._pool.connection() as conn:
            return [docs.event_from_row(i, doc) for i, doc in conn.execute(query, params)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._writer.close()
