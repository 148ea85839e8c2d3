"""Kill -9 the scheduler in the middle of a stream of submissions: every job it
acknowledged is there after the restart, and resubmitting is still idempotent."""

import threading
import time

import grpc
import pytest

from scheduler.client import Client, spec

pytestmark = pytest.mark.integration


def test_every_acknowledged_job_survives_a_crash(bare_scheduler):
    cluster = bare_scheduler.cluster
    acknowledged: dict[str, str] = {}
    errors: list[grpc.StatusCode] = []
    stop = threading.Event()

    def submitter(worker: int) -> None:
        with Client(cluster.scheduler_target, cluster.tenant_token("acme"), timeout_s=5) as client:
            for i in range(2000):
                if stop.is_set():
                    return
                request_id = f"crash-{worker}-{i}"
                try:
                    acknowledged[request_id] = client.submit(spec("echo"), request_id).job.job_id
                except grpc.RpcError as err:
                    errors.append(err.code())
                    return

    threads = [threading.Thread(target=submitter, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    cluster.scheduler.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(acknowledged) >= 200
    cluster.start_scheduler()
    with Client(cluster.scheduler_target, cluster.tenant_token("acme")) as client:
        stored = {j.client_request_id: j.job_id for j in client.list_all()}
        missing = {r: j for r, j in acknowledged.items() if stored.get(r) != j}
        assert not missing, f"{len(missing)} acknowledged jobs lost"
        request_id, job_id = next(iter(acknowledged.items()))
        again = client.submit(spec("echo"), request_id)
        assert not again.created and again.job.job_id == job_id
