"""Sites as the scheduler sees them, and the liveness rule.

A site is READY while its agent's stream is up, DRAINED while up but drained by an
operator, DISCONNECTED from the moment the stream is gone until `site_timeout_s`
after the last message heard, and UNREACHABLE after that. Only READY takes new work.
When a site turns UNREACHABLE its active runs are released (see runs.release_site).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SiteState(enum.IntEnum):
    READY = 1
    DRAINED = 2
    UNREACHABLE = 3
    DISCONNECTED = 4


@dataclass(frozen=True)
class GpuNode:
    node_id: str
    gpu_model: str
    gpus: int
    cpus: float = 0.0
    memory_bytes: int = 0


@dataclass(frozen=True)
class Site:
    site_id: str
    region: str
    inventory: tuple[GpuNode, ...] = ()
    connected: bool = False
    last_seen: float = 0.0
    drained: bool = False
    drain_reason: str = ""
    released: bool = False  # its runs were released after it became unreachable

    @property
    def gpus_total(self) -> int:
        return sum(n.gpus for n in self.inventory)


def site_state(site: Site, now: float, timeout_s: float) -> SiteState:
    if site.connected:
        return SiteState.DRAINED if site.drained else SiteState.READY
    if now - site.last_seen <= timeout_s and not site.released:
        return SiteState.DISCONNECTED
    return SiteState.UNREACHABLE


def is_overdue(site: Site, now: float, timeout_s: float) -> bool:
    """A site whose runs must now be released: silent past the timeout, not yet released."""
    if site.released:
        return False
    return now - site.last_seen > timeout_s
