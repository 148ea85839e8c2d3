"""Wire transport of the emulated miners: HTTP/1.1 on port 80 and the cgminer-style
JSON RPC on port 4028, with the faults that act on a whole miner.

HTTP: one request after another on a connection (keep-alive, as `reqwest` in
pyasic_rs uses it), bodies by Content-Length or chunked, JSON answers. RPC: one JSON
command per connection (`{"command": "...", "parameter": "..."}`), one JSON answer,
then the miner closes the connection, as cgminer/bosminer do.

Faults (`Faults`), checked on every request:
- `offline`: the miner's listeners are closed (the owner closes them): connections are refused;
- `hang`: connections are accepted and requests read, but never answered (a frozen
  control board); clients see their own timeouts. A request that arrived during the
  hang is dropped, never carried out, and its connection closed when the hang ends;
- `delay_s`: every answer comes this late;
- `refuse`: firmware commands (named by the personality) answered with the
  firmware's error instead of being carried out; the personality applies it.

The handlers are plain callables so the transport knows nothing of any firmware.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024


@dataclass
class Faults:
    """What is wrong with one miner now (all clear by default)."""

    offline: bool = False
    hang: bool = False
    delay_s: float = 0.0
    refuse: frozenset[str] = frozenset()


@dataclass
class HttpRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body as JSON (None when empty); ValueError when it is not JSON."""
        if not self.body.strip():
            return None
        return json.loads(self.body)


@dataclass
class HttpResponse:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes/str sent as they are
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


WebHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]
RpcHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Gate:
    """Applies a miner's hang and delay faults before each answer."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._answering = asyncio.Event()
        self._answering.set()

    def update(self, faults: Faults) -> None:
        self.faults = faults
        if faults.hang:
            self._answering.clear()
        else:
            self._answering.set()

    async def admit(self) -> bool:
        """Wait out the delay; False for a request that arrived while the miner hung:
        it is dropped unanswered and never carried out, even if the miner recovers."""
        if not self._answering.is_set():
            await self._answering.wait()
            return False
        if self.faults.delay_s > 0:
            await asyncio.sleep(self.faults.delay_s)
        return True


async def read_http_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on the connection; None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as err:
        raise ValueError("request head too long") from err
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError(f"bad request line {lines[0]!r}")
    method, target, _version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        length = int(headers.get("content-length", "0") or "0")
        if length > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return HttpRequest(method.upper(), path, query, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # the empty trailer
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY_BYTES:
            raise ValueError("request body too large")


def http_bytes(response: HttpResponse, keep_alive: bool) -> bytes:
    body = response.encoded()
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Status"
    lines = [f"HTTP/1.1 {response.status} {reason}", f"Content-Type: {response.content_type}", f"Content-Length: {len(body)}"]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: Gate, handle: WebHandler) -> None:
    """One HTTP connection: answer requests until the client closes it."""
    try:
        while True:
            try:
                request = await read_http_request(reader)
            except ValueError:
                writer.write(http_bytes(HttpResponse(400, {"message": "bad request"}), keep_alive=False))
                await writer.drain()
                return
            if request is None:
                return
            if not await gate.admit():
                return
            try:
                response = await handle(request)
            except Exception as err:  # a bug in a handler answers 500, like a real web server
                response = HttpResponse(500, {"message": f"internal error: {err}"})
            keep_alive = request.headers.get("connection", "").lower() != "close"
            writer.write(http_bytes(response, keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def read_rpc_command(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """One JSON command: read until it parses or the client stops sending."""
    data = b""
    while len(data) < MAX_BODY_BYTES:
        chunk = await reader.read(4096)
        if not chunk:
            break
        data += chunk
        try:
            parsed = json.loads(data.rstrip(b"\x00"))
        except ValueError:
            continue
        return parsed if isinstance(parsed, dict) else None
    try:
        parsed = json.loads(data.rstrip(b"\x00")) if data else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def serve_rpc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: Gate, handle: RpcHandler, invalid: dict[str, Any]) -> None:
    """One RPC connection: one command, one answer, close (`invalid` answers garbage)."""
    try:
        command = await read_rpc_command(reader)
        if not await gate.admit():
            return
        answer = invalid if command is None else await handle(command)
        writer.write(json.dumps(answer, separators=(",", ":")).encode() + b"\x00")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()
