"""A site's agent played by a test against the real controller (no network): what the
controller sent is read from the session's outbox, and readings go back as the agent
service hands them over. Shared by the controller tests; not a test module."""

from __future__ import annotations

from scheduler.core.decisions import SetMiningTargets, StartRun
from scheduler.core.power_state import PowerReading


def drain(session) -> list:
    """Every order queued for the agent so far, oldest first."""
    orders = []
    while not session.outbox.empty():
        orders.append(session.outbox.get_nowait())
    return orders


async def confirm(controller, orders, site_id: str = "tx-1", fleets_measured=None, runs=frozenset()):
    """The agent reports its fleets at the targets it was sent last (or at `fleets_measured`)."""
    targets = [o for o in orders if isinstance(o, SetMiningTargets)][-1].targets_w
    measured = fleets_measured or targets
    reading = PowerReading({f: (measured[f], targets[f]) for f in targets}, it_w=0, gpu_w=0, meter_w=0, active_runs=frozenset(runs))
    await controller.on_reading(site_id, reading)


async def start_when_room(controller, session, site_id: str = "tx-1", passes: int = 3) -> list:
    """Dispatch until a start goes out, confirming mining down in between (make room
    first, then start); returns the orders of the pass that started it."""
    for _ in range(passes):
        await controller.dispatch_power(sweep=True)
        orders = drain(session)
        if any(isinstance(o, StartRun) for o in orders):
            return orders
        await confirm(controller, orders, site_id)
    raise AssertionError(f"no start at {site_id} after {passes} dispatch passes")
