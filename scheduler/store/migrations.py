"""Versioned schema migrations, the part both stores share.

Each store keeps an ordered list of `Migration`s (versions 1, 2, ... with no gap) and
a `schema_version` table with one row per version applied. Opening a store migrates
by default (the scheduler at start); `powerplane admin migrate` does it on its own.
Version 1 is the schema of the releases before versions existed: a database with
those tables and no `schema_version` table is adopted as version 1, then migrated on.
A database whose version is newer than the newest known here is refused
(`SchemaTooNew`): an older powerplane must not write a schema it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.store.base import SchemaTooNew


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]  # run in order, in one transaction with the version's row


@dataclass(frozen=True)
class MigrationReport:
    from_version: int  # 0: an empty database
    to_version: int
    adopted: bool = False  # the tables of a release before versions, recorded as version 1

    def line(self) -> str:
        if self.from_version == self.to_version and not self.adopted:
            return f"schema at version {self.to_version}: up to date"
        start = f"{self.from_version} (adopted: written before schema versions)" if self.adopted else str(self.from_version)
        return f"schema version {start} -> {self.to_version}"


def check_ordered(migrations: Sequence[Migration]) -> Sequence[Migration]:
    """The list itself, once it is checked to count 1, 2, 3, ... (at import: a gap is a bug)."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise AssertionError(f"migrations must be numbered 1, 2, 3, ... without gaps, got {versions}")
    return migrations


def pending(current: int, migrations: Sequence[Migration], where: str) -> list[Migration]:
    """The migrations a database at `current` still needs; SchemaTooNew if it is ahead of them."""
    known = migrations[-1].version
    if current > known:
        raise SchemaTooNew(
            f"{where}: schema version {current} is newer than this powerplane knows ({known}); "
            "run the powerplane that wrote it (or newer), or restore a backup taken before the upgrade"
        )
    return [m for m in migrations if m.version > current]


VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
