"""TenantService and OperatorService behaviour over real gRPC, no Ray needed:
authentication, bad input, idempotency, isolation between tenants, paging, watching."""

import re
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from scheduler.api.v1 import types_pb2
from scheduler.client import Client, spec
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_missing_or_wrong_credentials_are_unauthenticated_and_the_wrong_role_permission_denied(bare_scheduler):
    target = bare_scheduler.cluster.scheduler_target
    with Client(target, "") as nobody, Client(target, "not-a-real-token-at-all") as wrong:
        assert code_of(lambda: nobody.list())[0] == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: wrong.submit(spec("echo hi"), "r"))[0] == grpc.StatusCode.UNAUTHENTICATED
    code, details = code_of(lambda: bare_scheduler.acme.sites())  # a tenant token on the operator API
    assert code == grpc.StatusCode.PERMISSION_DENIED and "it takes operator tokens" in details
    code, _ = code_of(lambda: bare_scheduler.ops.list())  # an operator token on the tenant API
    assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    "bad,message",
    [
        (spec("", gpus=1), "entrypoint is required"),
        (spec("echo", gpus=0), "resources.gpus must be at least 1"),
        (spec("echo", gpus=1, cpus=-2.0), "resources.cpus must be between 0 and 4096"),
        (spec("echo", gpus=100000), "resources.gpus is 100000"),
        (spec("echo", allowed_regions=["mars"]), "unknown region(s) mars"),
        (spec("echo", name="x" * 500), "name is 500 characters"),
        (types_pb2.JobSpec(entrypoint="echo", resources=types_pb2.Resources(gpus=1)), "spec.kind must be"),
    ],
)
def test_bad_input_is_invalid_argument_and_writes_nothing(bare_scheduler, bad, message):
    acme = bare_scheduler.acme
    before = len(list(acme.list_all()))
    code, details = code_of(lambda: acme.submit(bad, f"bad-{message[:10]}"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    assert len(list(acme.list_all())) == before


def test_oversized_request_is_refused(bare_scheduler):
    code, _ = code_of(lambda: bare_scheduler.acme.submit(spec("x" * (5 * 1024 * 1024)), "huge"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_resubmitting_the_same_request_id_returns_the_same_job(bare_scheduler):
    acme = bare_scheduler.acme
    first = acme.submit(spec("echo once", gpus=2), "idem-1")
    again = acme.submit(spec("echo once", gpus=2), "idem-1")
    assert first.created and not again.created
    assert again.job.job_id == first.job.job_id
    with ThreadPoolExecutor(8) as pool:
        racing = list(pool.map(lambda _: acme.submit(spec("echo race"), "idem-race"), range(8)))
    assert len({r.job.job_id for r in racing}) == 1
    assert sum(r.created for r in racing) == 1
    # The same request id from another tenant is another job.
    other = bare_scheduler.globex.submit(spec("echo once", gpus=2), "idem-1")
    assert other.created and other.job.job_id != first.job.job_id


def test_a_tenant_never_sees_another_tenants_job(bare_scheduler):
    job = bare_scheduler.acme.submit(spec("echo secret"), "secret-1").job
    globex = bare_scheduler.globex
    for call in (lambda: globex.get(job.job_id), lambda: globex.cancel(job.job_id), lambda: list(globex.watch(0, job.job_id, timeout_s=5))):
        code, details = code_of(call)
        assert code == grpc.StatusCode.NOT_FOUND and job.job_id in details
    assert job.job_id not in {j.job_id for j in globex.list_all()}
    assert all(e.tenant == "globex" for e in bare_scheduler.events(globex, ""))
    assert bare_scheduler.acme.get(job.job_id).state == types_pb2.JOB_STATE_PENDING


def test_a_pending_job_says_why(bare_scheduler):
    job = bare_scheduler.acme.submit(spec("echo", gpus=8, allowed_regions=["eu"]), "why-1").job
    found = wait_until(lambda: (j := bare_scheduler.acme.get(job.job_id)).pending_reason and j, 30, "a pending reason")
    assert found.state == types_pb2.JOB_STATE_PENDING
    # its place in the queue (other tests' jobs wait for eu in this scheduler too), then why
    assert re.fullmatch(r"(\d+ jobs? ahead; )?no site in region eu", found.pending_reason), found.pending_reason


def test_cancel_of_a_pending_job_and_its_events(bare_scheduler):
    acme = bare_scheduler.acme
    job = acme.submit(spec("echo"), "cancel-1").job
    cancelled = acme.cancel(job.job_id, "changed my mind")
    assert cancelled.state == types_pb2.JOB_STATE_CANCELLED and cancelled.reason == "changed my mind"
    assert acme.cancel(job.job_id).state == types_pb2.JOB_STATE_CANCELLED  # idempotent
    events = bare_scheduler.events(acme, job.job_id)
    assert [(e.from_state, e.to_state) for e in events] == [(0, types_pb2.JOB_STATE_PENDING), (types_pb2.JOB_STATE_PENDING, types_pb2.JOB_STATE_CANCELLED)]
    assert events[1].reason == "changed my mind"


def test_list_jobs_pages_newest_first_and_filters_by_state(bare_scheduler):
    client = Client(bare_scheduler.cluster.scheduler_target, bare_scheduler.cluster.tenant_token("acme"))
    ids = [client.submit(spec("echo"), f"page-{i}").job.job_id for i in range(7)]
    client.cancel(ids[0])
    seen, token = [], ""
    while True:
        page = client.list(page_size=3, page_token=token)
        assert len(page.jobs) <= 3
        seen += [j.job_id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert [i for i in seen if i in ids] == list(reversed(ids))
    cancelled = {j.job_id for j in client.list_all([types_pb2.JOB_STATE_CANCELLED])}
    assert ids[0] in cancelled and not set(ids[1:]) & cancelled
    code, _ = code_of(lambda: client.list(page_size=5000))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: client.list(page_token="garbage"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_watch_resumes_after_an_event_id_without_gaps(bare_scheduler):
    acme = bare_scheduler.acme
    all_before = bare_scheduler.events(acme, "")
    mark = all_before[-1].event_id if all_before else 0
    jobs = [acme.submit(spec("echo"), f"watch-{i}").job.job_id for i in range(3)]
    for job_id in jobs:
        acme.cancel(job_id)
    stream = acme.watch(mark, timeout_s=10)
    got = []
    for event in stream:
        got.append(event)
        if len(got) == 6:
            stream.cancel()
            break
    assert [e.job_id for e in got] == [jobs[0], jobs[1], jobs[2], jobs[0], jobs[1], jobs[2]]
    assert [e.event_id for e in got] == sorted(e.event_id for e in got) and got[0].event_id > mark
    resumed = acme.watch(got[2].event_id, timeout_s=10)
    rest = []
    for event in resumed:
        rest.append(event)
        if len(rest) == 3:
            resumed.cancel()
            break
    assert [e.event_id for e in rest] == [e.event_id for e in got[3:]]


def test_watch_delivers_live_events(bare_scheduler):
    acme = bare_scheduler.acme
    job = acme.submit(spec("echo"), "live-1").job
    stream = acme.watch(0, job.job_id, timeout_s=10)
    first = next(stream)
    assert first.to_state == types_pb2.JOB_STATE_PENDING
    acme.cancel(job.job_id, "live")
    second = next(stream)
    stream.cancel()
    assert second.to_state == types_pb2.JOB_STATE_CANCELLED and second.reason == "live"


def test_operator_sees_no_sites_and_unknown_site_is_not_found(bare_scheduler):
    assert list(bare_scheduler.ops.sites().sites) == []
    code, _ = code_of(lambda: bare_scheduler.ops.site("nowhere"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(lambda: bare_scheduler.ops.drain("nowhere"))
    assert code == grpc.StatusCode.NOT_FOUND
