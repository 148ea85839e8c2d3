"""Persistence of jobs, the job event log and sites behind the small `Store` protocol.
SQLite (WAL) is the embedded default; see sqlite.py."""

from scheduler.store.base import Snapshot, Store

__all__ = ["Snapshot", "Store"]
