"""Which scheduler replica to talk to. A client, the CLI or an agent may be given several
scheduler addresses (`host:port,host:port`); only the leader serves. A standby answers
UNAVAILABLE with the leader's address in the trailing metadata (`powerplane-leader`), and
`Targets.follow` moves to it; without a hint (a replica down, or no leader known yet) it
moves to the next address in the list. Callers retry after following, with their own
backoff."""

from __future__ import annotations

import grpc

LEADER_KEY = "powerplane-leader"  # trailing metadata of a standby's UNAVAILABLE: the leader's host:port ("" if unknown)


def leader_hint(err: grpc.RpcError) -> str:
    """The leader's address a standby named in its refusal, or ""."""
    trailing = getattr(err, "trailing_metadata", None)
    pairs = trailing() if callable(trailing) else None
    for key, value in pairs or ():
        if key == LEADER_KEY:
            return value if isinstance(value, str) else value.decode()
    return ""


class Targets:
    """The addresses a caller may reach the scheduler at, and the one it uses now."""

    def __init__(self, targets: str):
        self.addresses = [t.strip() for t in targets.split(",") if t.strip()]
        if not self.addresses:
            raise ValueError("no scheduler address given")
        self.index = 0

    @property
    def current(self) -> str:
        return self.addresses[self.index]

    def follow(self, err: grpc.RpcError) -> bool:
        """After a failed call: move to the leader it named, else to the next address.
        Returns whether the call is worth retrying elsewhere (UNAVAILABLE only)."""
        if err.code() != grpc.StatusCode.UNAVAILABLE:
            return False
        hint = leader_hint(err)
        if hint and hint != self.current:
            if hint not in self.addresses:
                self.addresses.append(hint)  # a leader the caller was not told of: it is one of them now
            self.index = self.addresses.index(hint)
        else:
            self.index = (self.index + 1) % len(self.addresses)
        return True
