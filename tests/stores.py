"""Both stores from a test's side: `store_backend` runs a test once on SQLite (a file in
tmp_path) and once on PostgreSQL (a fresh database on the session's server, tests/postgres.py;
skipped, saying why, without one). `open()` opens a store on that database, `reopen()` is a
restart; every store opened is closed at the end."""

from __future__ import annotations

import pytest

from scheduler.store.sqlite import SqliteStore


class Backend:
    """Opens stores on one database of one backend: `open()` again is a restart."""

    def __init__(self, name: str, where):
        self.name = name
        self.where = where  # a SQLite path or a PostgreSQL DSN
        self.opened: list = []

    def open(self, **kwargs):
        if self.name == "sqlite":
            store = SqliteStore(self.where, **kwargs)
        else:
            from scheduler.store.postgres import PostgresStore

            store = PostgresStore(self.where, **kwargs)
        self.opened.append(store)
        return store

    def reopen(self, store, **kwargs):
        store.close()
        return self.open(**kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request, tmp_path):
    if request.param == "sqlite":
        b = Backend("sqlite", tmp_path / "pp.db")
    else:
        b = Backend("postgres", request.getfixturevalue("postgres_dsn"))
    yield b
    for store in b.opened:
        store.close()
