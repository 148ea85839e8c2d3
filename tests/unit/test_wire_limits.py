"""What the server does with input it must refuse, without a server: values quoted in
errors are cut short, ids have a length limit, Timestamps protobuf cannot hold are
InvalidArgument naming their field (every path that reads one), undecodable bytes are
InvalidArgument naming the message type, and a token's role decides PERMISSION_DENIED.
The same cases over real gRPC: tests/integration/test_bad_input.py."""

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from scheduler.api import convert
from scheduler.api.v1 import agent_pb2, tenant_pb2, types_pb2
from scheduler.core import errors
from scheduler.core.validation import MAX_ID, check_ids
from scheduler.server.agent_service import reading_from_proto
from scheduler.server.config import SchedulerConfig
from scheduler.server.interceptor import Authenticator, checked_parser

BAD_TIMESTAMPS = [Timestamp(seconds=10**15), Timestamp(seconds=-(10**15)), Timestamp(seconds=1, nanos=2 * 10**9), Timestamp(seconds=1, nanos=-1)]


def test_shown_quotes_short_values_whole_and_cuts_long_ones():
    assert errors.shown("job-nope") == "'job-nope'"
    cut = errors.shown("x" * 1_000_000)
    assert cut == repr("x" * 63 + "…") and len(cut) == errors.SHOWN_CHARS + 2


def test_ids_up_to_the_limit_pass_and_longer_ones_are_refused_with_the_limit():
    check_ids(job_id="j" * MAX_ID, site_id="")
    with pytest.raises(errors.InvalidArgument, match=f"^site_id is {MAX_ID + 1} characters; at most {MAX_ID} allowed$"):
        check_ids(job_id="j", site_id="s" * (MAX_ID + 1))


@pytest.mark.parametrize("ts", BAD_TIMESTAMPS, ids=lambda t: f"{t.seconds}-{t.nanos}")
def test_a_timestamp_protobuf_cannot_hold_is_invalid_argument_on_every_path(ts):
    with pytest.raises(errors.InvalidArgument, match="^start is not a valid timestamp"):
        convert.seconds(ts, 0.0, field="start")
    status = agent_pb2.RunStatus(run_id="r", state=agent_pb2.RUN_STATE_RUNNING, checkpoint=types_pb2.Checkpoint(step=1, step_at=ts))
    with pytest.raises(errors.InvalidArgument, match="^checkpoint.step_at is not a valid timestamp"):
        convert.run_report_from_proto(status)
    beat = agent_pb2.Heartbeat(local_actions=[agent_pb2.LocalAction(at=ts, what="paused")])
    with pytest.raises(errors.InvalidArgument, match="^local_actions.at is not a valid timestamp"):
        reading_from_proto(beat, [])


def test_the_timestamp_range_ends_are_read_and_written_back():
    latest = Timestamp(seconds=convert.MAX_TIMESTAMP_S, nanos=999_999_999)
    assert convert.timestamp(convert.seconds(latest)).seconds == convert.MAX_TIMESTAMP_S  # the float rounds up past it
    assert convert.timestamp(convert.seconds(Timestamp(seconds=convert.MIN_TIMESTAMP_S))).seconds == convert.MIN_TIMESTAMP_S
    assert convert.seconds(Timestamp(), 7.0) == 7.0


def test_undecodable_bytes_are_invalid_argument_naming_the_message_type():
    parse = checked_parser(tenant_pb2.GetJobRequest.FromString)
    assert parse(tenant_pb2.GetJobRequest(job_id="job-1").SerializeToString()).job_id == "job-1"
    with pytest.raises(errors.InvalidArgument, match=r"^request is not a valid powerplane\.v1\.GetJobRequest$"):
        parse(b"\x0a\x02\xff\xfe")
    assert checked_parser(None)(b"raw") == b"raw"


def test_an_unknown_token_is_unauthenticated_and_a_known_one_of_another_role_permission_denied():
    auth = Authenticator(SchedulerConfig(tenants={"acme": "t" * 32}).token_owners())
    assert auth.principal([("authorization", "Bearer " + "t" * 32)], "tenant").name == "acme"
    with pytest.raises(errors.Unauthenticated):
        auth.principal([("authorization", "Bearer " + "u" * 32)], "tenant")
    with pytest.raises(errors.PermissionDenied, match="^tenant tokens may not call this service; it takes operator tokens$"):
        auth.principal([("authorization", "Bearer " + "t" * 32)], "operator")


@pytest.mark.parametrize("text", ["nan", "inf", "1e20", "-5", "+99999999999999h", "soon"])
def test_the_cli_refuses_a_grid_event_time_a_timestamp_cannot_hold(text):
    from scheduler.cli.grid_commands import when

    assert when("+90s", 100.0) == 190.0 and when("1700000000", 0.0) == 1700000000.0
    with pytest.raises(SystemExit, match="is not a time"):
        when(text, 100.0)
