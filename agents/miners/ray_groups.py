"""Mining as Ray-backed work: one long-lived Ray actor per miner group.

Each group of miners (a rack or a container) is owned by a detached, named Ray
actor (`MinerGroupActor`, namespace `powerplane`) pinned to the site's Ray nodes by
the site's custom resource. The actor holds the group's pyasic_rs connections (an
`agents.miners.group.MinerGroup`), applies the power target the agent gives it and
reports measured power and hashrate. Ray restarts an actor whose process dies
(`max_restarts=-1`); the agent finds its actors again by name after its own restart.

`RayMinerGroup` is what the agent's driver calls: the same async interface as
`MinerGroup` (connect / apply / read). Every call has a deadline. When Ray does not
answer in time, or the actor is gone, the call falls back to a direct `MinerGroup` in
the agent's own process, so curtailment works with Ray unhealthy; the actor is
recreated in the background and used again once it answers. Reads are the exception
while the actor lives: a read it is slow to serve fails (the driver keeps the group's
last reading, as for any failed read) until the actor has been slow for
`takeover_after_s`; only then does the agent read the miners itself. Reading them
twice at once (the actor's read goes on) would double the load that made it slow:
on a saturated box every group's fallback identified and polled its miners again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time

import ray

from agents.miners.group import MinerGroup
from scheduler.core.power import MinerModel

log = logging.getLogger(__name__)
NAMESPACE = "powerplane"
CALL_TIMEOUT_S = 1.0  # a Ray round trip is milliseconds; past this the direct path takes over
RECREATE_BACKOFF_S = 5.0
READ_GIVE_UP_S = 60.0  # an actor's read still unanswered after this is asked again
TAKEOVER_AFTER_S = 10.0  # a live actor slow to read: its reads fail this long before the agent reads the miners itself


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=16)
class MinerGroupActor:
    """A miner group's pyasic_rs connections, living in the site's Ray cluster."""

    def __init__(self, group_id: str, addresses: list[str], model: dict, command_timeout_s: float, auth: tuple[str, str] | None = None):
        self.group = MinerGroup(group_id, addresses, MinerModel(**model), command_timeout_s=command_timeout_s, auth=auth)
        self.connected: dict | None = None

    async def connect(self) -> dict:
        self.connected = await self.group.connect()
        return self.connected

    async def apply(self, target_w: float) -> dict:
        if self.connected is None:
            await self.connect()
        return await self.group.apply(target_w)

    async def read(self) -> dict:
        if self.connected is None:
            await self.connect()
        return await self.group.read()


def actor_name(site_id: str, group_id: str) -> str:
    return f"pp-miners-{site_id}-{group_id}"


_INIT_LOCK = threading.Lock()


def ensure_ray(gcs_address: str) -> None:
    """Connect this process to the site's Ray cluster as a driver (once; thread-safe: the
    agent connects in the background while its threads may already need Ray)."""
    with _INIT_LOCK:
        if not ray.is_initialized():
            ray.init(address=gcs_address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False)


class RayMinerGroup:
    """MinerGroup's interface, served by the group's Ray actor, with a direct fallback."""

    def __init__(
        self,
        site_id: str,
        group_id: str,
        addresses: list[str],
        model: MinerModel,
        site_resource: str = "",
        command_timeout_s: float = 2.0,
        call_timeout_s: float = CALL_TIMEOUT_S,
        auth: tuple[str, str] | None = None,
        takeover_after_s: float = TAKEOVER_AFTER_S,
        clock=time.monotonic,
    ):
        self.site_id, self.group_id, self.addresses, self.model = site_id, group_id, list(addresses), model
        self.takeover_after_s, self.clock = takeover_after_s, clock
        self._slow_since: float | None = None  # when the actor's reads started timing out
        self._reading: asyncio.Future | None = None  # the actor's read in flight
        self.site_resource = site_resource
        self.command_timeout_s = command_timeout_s
        self.call_timeout_s = call_timeout_s
        self._auth = auth  # the miners' login (site config); passed on, never logged
        self._actor = None
        self._direct: MinerGroup | None = None
        self._direct_connected = False
        self._next_recreate = 0.0
        self.fallbacks = 0  # calls the direct path served

    # ------------------------------------------------------------- the actor
    def _create(self):
        options = dict(name=actor_name(self.site_id, self.group_id), namespace=NAMESPACE, lifetime="detached", get_if_exists=True)
        if self.site_resource:
            options["resources"] = {self.site_resource: 0.001}
        return MinerGroupActor.options(**options).remote(self.group_id, self.addresses, dataclasses.asdict(self.model), self.command_timeout_s, self._auth)

    async def start(self) -> None:
        """Create (or find) the actor; blocking Ray calls run off the event loop."""
        self._actor = await asyncio.to_thread(self._create)

    async def _call(self, method: str, *args, timeout_s: float | None = None):
        if self._actor is None and time.monotonic() >= self._next_recreate:
            try:
                await self.start()
            except Exception as err:
                self._next_recreate = time.monotonic() + RECREATE_BACKOFF_S
                log.warning("group %s: cannot create its Ray actor: %s", self.group_id, err)
        if self._actor is None:
            raise ConnectionError("no Ray actor")
        ref = getattr(self._actor, method).remote(*args)
        try:
            return await asyncio.wait_for(ref, timeout_s or self.call_timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as err:
            log.warning("group %s: its Ray actor is gone (%s); recreating it", self.group_id, type(err).__name__)
            self._actor = None
            raise ConnectionError(str(err)) from err

    async def _direct_group(self) -> MinerGroup:
        if self._direct is None:
            login = {"auth": self._auth} if self._auth is not None else {}
            self._direct = MinerGroup(self.group_id, self.addresses, self.model, command_timeout_s=self.command_timeout_s, **login)
        if not self._direct_connected:
            await self._direct.connect()
            self._direct_connected = True
        return self._direct

    async def _served(self, method: str, *args, timeout_s: float | None = None) -> dict:
        try:
            return await self._call(method, *args, timeout_s=timeout_s)
        except (TimeoutError, ConnectionError, ray.exceptions.RayError) as err:
            return await self._directly(method, err, *args)

    async def _directly(self, method: str, err: Exception, *args) -> dict:
        self.fallbacks += 1
        log.warning("group %s: Ray did not serve %s (%s); driving the miners directly", self.group_id, method, type(err).__name__)
        direct = await self._direct_group()
        result = await getattr(direct, method)(*args)
        result["served_by"] = "direct"
        return result

    # ------------------------------------------------------------- MinerGroup's interface
    async def connect(self) -> dict:
        # Identifying a whole group takes seconds, not milliseconds.
        return await self._served("connect", timeout_s=max(30.0, self.call_timeout_s))

    async def apply(self, target_w: float) -> dict:
        return await self._served("apply", target_w, timeout_s=self.call_timeout_s + self.command_timeout_s)

    async def read(self) -> dict:
        """The actor's reading; one read in flight at a time (a slow one is waited on again,
        not asked twice); see the module docstring for when the agent reads instead."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._call("read", timeout_s=READ_GIVE_UP_S))
        taken_over = self._slow_since is not None and self.clock() - self._slow_since >= self.takeover_after_s
        try:  # once taken over, the actor's answer is used only if it is already there
            result = await asyncio.wait_for(asyncio.shield(self._reading), 0 if taken_over else self.call_timeout_s + self.command_timeout_s)
        except TimeoutError as err:
            if self._reading.done():  # the read itself gave up (READ_GIVE_UP_S): ask again next time
                self._reading = None
            now = self.clock()
            self._slow_since = now if self._slow_since is None else self._slow_since
            if now - self._slow_since < self.takeover_after_s:
                raise TimeoutError(f"its Ray actor has been slow to read for {now - self._slow_since:.0f} s (the agent reads the miners after {self.takeover_after_s:g} s)") from None
            return await self._directly("read", err)
        except (ConnectionError, ray.exceptions.RayError) as err:
            self._reading = None
            return await self._directly("read", err)
        self._reading, self._slow_since = None, None
        return result
