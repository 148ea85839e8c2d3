"""Fixtures shared by the unit tests: a real PostgreSQL server, started once per session
when a test asks for it (tests/postgres.py), and both stores side by side (tests/stores.py)."""

from tests.postgres import postgres_dsn, postgres_server  # noqa: F401
from tests.stores import store_backend  # noqa: F401
