"""Bad input over the wire, sent as raw bytes where it must be, always gets a clear status:
undecodable requests, out-of-range timestamps and oversized ids are INVALID_ARGUMENT
naming what is wrong (never UNKNOWN or INTERNAL, never an internal class name), echoed
values are cut short, and a valid token of the wrong role is PERMISSION_DENIED."""

import random
import secrets

import grpc
import pytest
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from powerplane_dev.cluster import LocalCluster
from scheduler.api.v1 import agent_pb2, operator_pb2, tenant_pb2, types_pb2
from scheduler.client import Client, spec

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def raw_call(target: str, method: str, payload: bytes, token: str, streaming: bool = False):
    """Send `payload` as the request body of `method`, unparsed; returns (code, details)."""
    with grpc.insecure_channel(target) as channel:
        metadata = (("authorization", f"Bearer {token}"),)
        try:
            if streaming:
                list(channel.unary_stream(method, request_serializer=None, response_deserializer=None)(payload, metadata=metadata, timeout=30))
            else:
                channel.unary_unary(method, request_serializer=None, response_deserializer=None)(payload, metadata=metadata, timeout=30)
        except grpc.RpcError as err:
            return err.code(), err.details()
    return grpc.StatusCode.OK, ""


def code_of(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def _random_bytes(message_type) -> bytes:
    rng = random.Random(7)
    while True:  # the first seeded draw that is not a valid message of this type
        payload = rng.randbytes(64)
        try:
            message_type.FromString(payload)
        except DecodeError:
            return payload


BAD_BODIES = {
    "invalid utf-8 in a string": lambda msg: b"\x0a\x02\xff\xfe",  # field 1 is a string in all three
    "truncated body": lambda msg: msg.SerializeToString()[:-3],
    "corrupt length prefix": lambda msg: b"\x0a\xff\xff\xff\xff\x0f" + msg.SerializeToString(),
    "random bytes": lambda msg: _random_bytes(type(msg)),
}
METHODS = {
    "SubmitJob": ("/powerplane.v1.TenantService/SubmitJob", tenant_pb2.SubmitJobRequest(client_request_id="raw-1", spec=spec("echo raw")), "tenant"),
    "GetJob": ("/powerplane.v1.TenantService/GetJob", tenant_pb2.GetJobRequest(job_id="job-0123456789abcdef"), "tenant"),
    "PostGridEvent": ("/powerplane.v1.OperatorService/PostGridEvent", operator_pb2.GridEvent(event_id="raw-event", reason="raw bytes"), "operator"),
}


def token_for(system, role: str) -> str:
    return system.cluster.tenant_token("acme") if role == "tenant" else system.cluster.operator_token


@pytest.mark.parametrize("body", sorted(BAD_BODIES))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_undecodable_requests_are_invalid_argument_naming_the_request_type(bare_scheduler, method, body):
    path, valid, role = METHODS[method]
    payload = BAD_BODIES[body](valid)
    with pytest.raises(DecodeError):  # the payload really is undecodable
        type(valid).FromString(payload)
    code, details = raw_call(bare_scheduler.cluster.scheduler_target, path, payload, token_for(bare_scheduler, role))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert details == f"request is not a valid {valid.DESCRIPTOR.full_name}"


def test_the_valid_bodies_behind_the_bad_ones_are_accepted(bare_scheduler):
    # The same route taking raw bytes works for a well-formed body: the bad ones fail for their bytes alone.
    target = bare_scheduler.cluster.scheduler_target
    path, valid, role = METHODS["SubmitJob"]
    assert raw_call(target, path, valid.SerializeToString(), token_for(bare_scheduler, role))[0] == grpc.StatusCode.OK
    path, valid, role = METHODS["GetJob"]
    assert raw_call(target, path, valid.SerializeToString(), token_for(bare_scheduler, role))[0] == grpc.StatusCode.NOT_FOUND


def test_undecodable_request_on_a_server_stream_is_invalid_argument(bare_scheduler):
    code, details = raw_call(
        bare_scheduler.cluster.scheduler_target,
        "/powerplane.v1.TenantService/WatchJobs",
        b"\x12\x02\xff\xfe",
        token_for(bare_scheduler, "tenant"),
        streaming=True,
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "request is not a valid powerplane.v1.WatchJobsRequest"


def test_undecodable_request_without_credentials_is_still_unauthenticated(bare_scheduler):
    target = bare_scheduler.cluster.scheduler_target
    assert raw_call(target, "/powerplane.v1.TenantService/GetJob", b"\x0a\x02\xff\xfe", "nobody-nobody-nobody")[0] == grpc.StatusCode.UNAUTHENTICATED
    code, _ = raw_call(target, "/powerplane.v1.OperatorService/PostGridEvent", b"\x0a\x02\xff\xfe", token_for(bare_scheduler, "tenant"))
    assert code == grpc.StatusCode.PERMISSION_DENIED


BAD_TIMES = [
    ("start", Timestamp(seconds=10**15)),
    ("end", Timestamp(seconds=-(10**15))),
    ("start", Timestamp(seconds=1, nanos=2 * 10**9)),
    ("end", Timestamp(seconds=1, nanos=-1)),
    ("respond_by", Timestamp(seconds=10**15)),
]


@pytest.mark.parametrize("field,ts", BAD_TIMES, ids=[f"{f}-{t.seconds}-{t.nanos}" for f, t in BAD_TIMES])
def test_grid_event_timestamps_out_of_range_are_invalid_argument_naming_the_field(bare_scheduler, field, ts):
    event = operator_pb2.GridEvent(
        event_id=f"bad-time-{field}-{ts.seconds}-{ts.nanos}", kind=operator_pb2.GRID_EVENT_KIND_PRICE, market_node="HB_WEST", usd_per_mwh=30
    )
    getattr(event, field).CopyFrom(ts)
    code, details = code_of(lambda: bare_scheduler.ops.post_grid_event(event))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith(f"{field} is not a valid timestamp")
    assert event.event_id not in {s.event.event_id for s in bare_scheduler.ops.grid_events().events}


def test_the_latest_timestamp_protobuf_holds_is_accepted_and_answered(bare_scheduler):
    # Read as float seconds it rounds up past 9999-12-31T23:59:59.999999999: the answer must still encode.
    event = operator_pb2.GridEvent(
        event_id="latest-end",
        kind=operator_pb2.GRID_EVENT_KIND_PRICE,
        market_node="HB_WEST",
        usd_per_mwh=30,
        end=Timestamp(seconds=253402300799, nanos=999999999),
    )
    status = bare_scheduler.ops.post_grid_event(event)
    assert status.event.end.seconds == 253402300799


def test_oversized_ids_are_refused_with_the_limit_and_never_echoed(bare_scheduler):
    acme, ops = bare_scheduler.acme, bare_scheduler.ops
    huge = "j" * MiB
    calls = {
        "job_id": [lambda: acme.get(huge), lambda: acme.cancel(huge), lambda: list(acme.watch(0, huge, timeout_s=10))],
        "site_id": [
            lambda: ops.site(huge),
            lambda: ops.drain(huge),
            lambda: ops.undrain(huge),
            lambda: ops.grid_events(huge),
            lambda: ops.post_grid_event(operator_pb2.GridEvent(event_id="e", kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT, site_id=huge, cap_w=1)),
        ],
        "event_id": [
            lambda: ops.post_grid_event(operator_pb2.GridEvent(event_id=huge, kind=operator_pb2.GRID_EVENT_KIND_PRICE, market_node="N", usd_per_mwh=1))
        ],
        "client_request_id": [lambda: acme.submit(spec("echo"), huge)],
        "page_token": [lambda: acme.list(page_token="9" * 5000)],
    }
    for field, field_calls in calls.items():
        for call in field_calls:
            code, details = code_of(call)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (field, code, details[:200])
            assert details.startswith(f"{field} is ") and "at most 128" in details, details[:200]
            assert len(details) < 200


def test_values_quoted_in_errors_are_cut_short(bare_scheduler):
    long_id = "job-" + "x" * 124  # within the id limit, so it is looked up and not found
    code, details = code_of(lambda: bare_scheduler.acme.get(long_id))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == f"job {'job-' + 'x' * 59 + '…'!r} not found"
    site = "s" * 128
    code, details = code_of(
        lambda: bare_scheduler.ops.post_grid_event(operator_pb2.GridEvent(event_id="cap-x", kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT, site_id=site, cap_w=1))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and site not in details and "s" * 63 + "…" in details


def test_a_valid_token_of_the_wrong_role_is_permission_denied(bare_scheduler):
    code, details = code_of(lambda: bare_scheduler.acme.sites())  # a tenant token on the operator API
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == "tenant tokens may not call this service; it takes operator tokens"
    code, details = code_of(lambda: bare_scheduler.ops.list())  # an operator token on the tenant API
    assert code == grpc.StatusCode.PERMISSION_DENIED and "it takes tenant tokens" in details
    with grpc.insecure_channel(bare_scheduler.cluster.scheduler_target) as channel:  # and on the agent's stream
        connect = channel.stream_stream("/powerplane.v1.AgentService/Connect", request_serializer=None, response_deserializer=None)
        call = connect(iter([b""]), metadata=(("authorization", f"Bearer {bare_scheduler.cluster.tenant_token('acme')}"),), timeout=30)
        code, details = code_of(lambda: list(call))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "it takes site tokens" in details


@pytest.fixture(scope="module")
def site_scheduler(tmp_path_factory):
    """A scheduler that knows one site's token (no agent, no Ray): for the agent stream."""
    tokens = {"tenants": {"acme": secrets.token_hex(16)}, "operators": {"ops": secrets.token_hex(16)}, "sites": {"s-1": secrets.token_hex(16)}}
    cluster = LocalCluster(tmp_path_factory.mktemp("site-token"), [], tokens=tokens)
    try:
        cluster.start_scheduler()
        yield cluster
    finally:
        cluster.stop()


def connect(cluster: LocalCluster, messages: list[bytes]) -> list[bytes]:
    """Send `messages` on AgentService.Connect as site s-1, then half-close; every reply, raw."""
    with grpc.insecure_channel(cluster.scheduler_target) as channel:
        call = channel.stream_stream("/powerplane.v1.AgentService/Connect", request_serializer=None, response_deserializer=None)
        return list(call(iter(messages), metadata=(("authorization", f"Bearer {cluster.tokens['sites']['s-1']}"),), timeout=30))


def register(region: str) -> bytes:
    inventory = types_pb2.Inventory(gpu_nodes=[types_pb2.GpuNode(node_id="n1", gpu_model="H100", gpus=1, cpus=8)])
    return agent_pb2.AgentMessage(register=agent_pb2.Register(site_id="s-1", region=region, inventory=inventory)).SerializeToString()


def test_undecodable_message_on_the_agent_stream_is_invalid_argument(site_scheduler):
    code, details = code_of(lambda: connect(site_scheduler, [b"\x0a\x05\x0a\x03\xff\xfe\xfd"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "request is not a valid powerplane.v1.AgentMessage"


def test_the_agent_stream_still_works_with_well_formed_messages(site_scheduler):
    code, details = code_of(lambda: connect(site_scheduler, [register("mars")]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "region 'mars' is not one of" in details
    replies = [agent_pb2.SchedulerMessage.FromString(raw) for raw in connect(site_scheduler, [register("us")])]
    assert replies[0].WhichOneof("body") == "registered"
    with Client(site_scheduler.scheduler_target, site_scheduler.operator_token) as ops:
        assert [s.site_id for s in ops.sites().sites] == ["s-1"]
