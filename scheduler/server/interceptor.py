"""One server interceptor for authentication and for mapping domain errors.

Authentication: every Powerplane method needs `authorization: Bearer <token>`;
the token's role must match the service (TenantService: a tenant token,
OperatorService: an operator token, AgentService: a site token). Health and
reflection are open (Kubernetes probes and tooling use them).
A missing or unknown token is UNAUTHENTICATED; a valid token of the wrong role, or of an
access level that may not call the method (scheduler/server/permissions.py: a tenant viewer
may not submit, a read-only operator may not post grid events), is PERMISSION_DENIED.
Static tokens are looked up by their SHA-256 digest (scheduler/server/tokens.py); with
config `jwt`, a bearer JWT is checked against a JWKS file (scheduler/server/jwt_tokens.py). With mutual TLS (`agent_peer_check`), an AgentService call also needs
a client certificate naming the token's site (scheduler/server/mtls.py); the token stays
required beside it.
Errors: a `PowerplaneError` raised by a handler becomes its status code with the
exception's message; anything else becomes INTERNAL without internals.
Requests: grpc turns a deserializer's exception into UNKNOWN before any handler runs,
so a unary request reaches the wrapped handler as bytes and is parsed there; bytes
that are not the request message are INVALID_ARGUMENT naming the message type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from scheduler.api.leader import LEADER_KEY
from scheduler.core import errors
from scheduler.server import permissions
from scheduler.server.jwt_tokens import JwtVerifier, looks_like_jwt
from scheduler.server.tokens import TokenTable

log = logging.getLogger(__name__)

STATUS_OF = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
}
SERVED_BY_STANDBYS = frozenset({"/powerplane.v1.OperatorService/ReloadConfig"})  # each replica reloads its own config file
ROLE_OF_SERVICE = {
    "powerplane.v1.TenantService": "tenant",
    "powerplane.v1.OperatorService": "operator",
    "powerplane.v1.AgentService": "site",
}


@dataclass(frozen=True)
class Principal:
    role: str  # the service it may call: tenant, operator or site
    name: str
    access: str = ""  # its access level within that role (permissions.py): member, viewer, operator, read_only, site


def bearer_token(metadata) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return ""


class Authenticator:
    """`token_owners`: SHA-256 digest of each static token -> (role, name, access level)
    (config.token_owners(); scheduler/server/tokens.py); `jwt`: a JwtVerifier for bearer
    JWTs (scheduler/server/jwt_tokens.py), or None."""

    def __init__(self, token_owners: dict[bytes, tuple[str, str, str]], jwt=None):
        self._owners = TokenTable(token_owners)
        self._jwt = jwt

    def use_tokens(self, token_owners: dict[bytes, tuple[str, str, str]]) -> None:
        """From the next call on, these static tokens and no others (a config reload: reload.py)."""
        self._owners = TokenTable(token_owners)  # one assignment: a call sees the old table or the new

    def use_jwt(self, jwt) -> None:
        self._jwt = jwt

    @classmethod
    def from_config(cls, config) -> Authenticator:
        """The config's tokens (a WARNING names those given in plaintext) and JWT settings."""
        plain = config.plaintext_tokens()
        if plain:
            log.warning(
                "tokens given in plaintext for %s; give their hashes instead (`powerplane admin hash-token`, docs/security.md)",
                ", ".join(plain),
            )
        return cls(config.token_owners(), JwtVerifier(config.jwt) if config.jwt is not None else None)

    def principal(self, metadata, role: str, method: str = "") -> Principal:
        """The token's owner if it may call `role`'s service (and, given `method`, that
        method: permissions.py); Unauthenticated or PermissionDenied otherwise."""
        token = bearer_token(metadata)
        if not token:
            raise errors.Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        owner = self._owners.owner(token)
        if owner is None and self._jwt is not None and looks_like_jwt(token):
            owner = self._jwt.principal(token)
        if owner is None:
            raise errors.Unauthenticated(f"token is not a valid {role} token")
        if owner[0] != role:
            raise errors.PermissionDenied(f"{owner[0]} tokens may not call this service; it takes {role} tokens")
        if method:
            permissions.check(*owner, method)
        return Principal(*owner)

    def of(self, context: grpc.aio.ServicerContext, role: str) -> Principal:
        return self.principal(context.invocation_metadata(), role)


def _status_of(err: errors.PowerplaneError) -> grpc.StatusCode:
    for cls in type(err).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


async def _abort_with(context, err: Exception, method: str) -> None:
    """End the call with the status a handler's exception stands for."""
    if isinstance(err, errors.PowerplaneError):
        await context.abort(_status_of(err), str(err))
    log.error("%s failed", method, exc_info=err)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the scheduler's log")


def checked_parser(deserializer: Callable | None) -> Callable:
    """`deserializer` (a message class's FromString), raising InvalidArgument for bytes that
    are not that message (bad UTF-8 in a string, a truncated body, a corrupt length...)."""
    if deserializer is None:
        return lambda raw: raw
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    what = descriptor.full_name if descriptor is not None else "request message"

    def parse(raw: bytes):
        try:
            return deserializer(raw)
        except DecodeError:
            raise errors.InvalidArgument(f"request is not a valid {what}") from None

    return parse


def _wrap_unary(behavior: Callable, method: str, parse: Callable | None = None, check: Callable | None = None):
    """`parse`: for a unary request, which arrives as bytes; None: already parsed.
    `check(context)`: raises a PowerplaneError to refuse the call before it runs."""

    async def wrapper(request, context):
        try:
            if check is not None:
                check(context)
            if parse is not None:
                request = parse(request)
            return await behavior(request, context)
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as err:
            await _abort_with(context, err, method)

    return wrapper


def _wrap_stream(behavior: Callable, method: str, parse: Callable | None = None, check: Callable | None = None):
    async def wrapper(request, context):
        try:
            if check is not None:
                check(context)
            if parse is not None:
                request = parse(request)
            async for response in behavior(request, context):
                yield response
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as err:
            await _abort_with(context, err, method)

    return wrapper


def _rejecting_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str, trailing: tuple = ()) -> grpc.RpcMethodHandler:
    """Ends the call with `code` without parsing the request (bytes are not read as a message)."""

    async def reject_unary(request, context):
        if trailing:
            context.set_trailing_metadata(trailing)
        await context.abort(code, message)

    async def reject_stream(request, context):
        if trailing:
            context.set_trailing_metadata(trailing)
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    kw = dict(request_deserializer=None, response_serializer=handler.response_serializer)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(reject_stream, **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(reject_stream, **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(reject_unary, **kw)
    return grpc.unary_unary_rpc_method_handler(reject_unary, **kw)


class PowerplaneInterceptor(grpc.aio.ServerInterceptor):
    """`leader`: with several replicas, whether this one serves and where the leader is
    (scheduler/server/leadership.py); a standby refuses every Powerplane call UNAVAILABLE,
    naming the leader in the trailing metadata (scheduler/api/leader.py), but those of
    SERVED_BY_STANDBYS (ReloadConfig: each replica reloads its own config file).
    `agent_peer_check(context, site)`: with mutual TLS, refuses an AgentService call whose
    client certificate is not the token's site's (scheduler/server/mtls.py)."""

    def __init__(self, authenticator: Authenticator, leader=None, agent_peer_check: Callable | None = None):
        self.authenticator = authenticator
        self.leader = leader
        self.agent_peer_check = agent_peer_check
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # method -> error-mapping handler, built once

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        service = method.strip("/").split("/")[0]
        role = ROLE_OF_SERVICE.get(service)
        if handler is None or role is None:
            return handler
        try:
            self.authenticator.principal(handler_call_details.invocation_metadata, role, method)
        except (errors.Unauthenticated, errors.PermissionDenied) as err:
            return _rejecting_handler(handler, _status_of(err), str(err))
        if self.leader is not None and not self.leader.serving() and method not in SERVED_BY_STANDBYS:
            where = self.leader.leader_address
            if self.leader.leading.is_set():
                message = "this scheduler replica has just taken over and is loading its store; try again shortly"
            else:
                message = f"this scheduler replica is a standby; the leader is at {where}" if where else "this scheduler replica is a standby; no leader is known yet"
            return _rejecting_handler(handler, grpc.StatusCode.UNAVAILABLE, message, ((LEADER_KEY, where),))
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            check = self._peer_check if role == "site" and self.agent_peer_check is not None else None
            wrapped = self._wrapped[method] = self._wrap(handler, method, check)
        return wrapped

    def _peer_check(self, context) -> None:
        self.agent_peer_check(context, self.authenticator.of(context, "site").name)

    @staticmethod
    def _wrap(handler: grpc.RpcMethodHandler, method: str, check: Callable | None = None) -> grpc.RpcMethodHandler:
        parse = checked_parser(handler.request_deserializer)
        raw = dict(request_deserializer=None, response_serializer=handler.response_serializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary, method, parse, check), **raw)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(handler.unary_stream, method, parse, check), **raw)
        # A request stream's messages are parsed as the handler reads them: a bad one raises there.
        kw = dict(request_deserializer=parse, response_serializer=handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(_wrap_stream(handler.stream_stream, method, check=check), **kw)
        return grpc.stream_unary_rpc_method_handler(_wrap_unary(handler.stream_unary, method, check=check), **kw)
