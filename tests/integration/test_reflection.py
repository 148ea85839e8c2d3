"""Any gRPC client can use Powerplane through server reflection: this one knows no
generated code, only what the server describes (as grpcurl or Postman would)."""

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

pytestmark = pytest.mark.integration


class ReflectionClient:
    def __init__(self, channel: grpc.Channel, token: str):
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def services(self) -> list[str]:
        return self.database.get_services()

    def _method(self, full_method: str):
        service_name, method_name = full_method.rsplit(".", 1)
        method = self.pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        path = f"/{service_name}/{method_name}"
        return method, request_cls, response_cls, path

    def call(self, full_method: str, body: dict) -> dict:
        method, request_cls, response_cls, path = self._method(full_method)
        request = json_format.ParseDict(body, request_cls())
        if method.server_streaming:
            stub = self.channel.unary_stream(path, request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString)
            return stub(request, metadata=self.metadata, timeout=10)
        stub = self.channel.unary_unary(path, request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString)
        return json_format.MessageToDict(stub(request, metadata=self.metadata, timeout=10), preserving_proto_field_name=True)


def test_health_is_serving_for_every_service(bare_scheduler):
    with grpc.insecure_channel(bare_scheduler.cluster.scheduler_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "powerplane.v1.TenantService", "powerplane.v1.AgentService", "powerplane.v1.OperatorService"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_a_reflection_client_submits_lists_watches_and_cancels(bare_scheduler):
    token = bare_scheduler.cluster.tenant_token("acme")
    with grpc.insecure_channel(bare_scheduler.cluster.scheduler_target) as channel:
        client = ReflectionClient(channel, token)
        assert {"powerplane.v1.TenantService", "powerplane.v1.AgentService", "powerplane.v1.OperatorService", "grpc.health.v1.Health"} <= set(client.services())
        spec = {"kind": "JOB_KIND_TRAINING", "entrypoint": "python train.py", "resources": {"gpus": 4}, "allowed_regions": ["us"]}
        submitted = client.call("powerplane.v1.TenantService.SubmitJob", {"client_request_id": "reflect-1", "spec": spec})
        job_id = submitted["job"]["job_id"]
        assert submitted["created"] is True and submitted["job"]["state"] == "JOB_STATE_PENDING"
        listed = client.call("powerplane.v1.TenantService.ListJobs", {"states": ["JOB_STATE_PENDING"]})
        assert job_id in [j["job_id"] for j in listed["jobs"]]
        cancelled = client.call("powerplane.v1.TenantService.CancelJob", {"job_id": job_id, "reason": "via reflection"})
        assert cancelled["state"] == "JOB_STATE_CANCELLED"
        stream = client.call("powerplane.v1.TenantService.WatchJobs", {"job_id": job_id})
        states = []
        for event in stream:
            states.append(json_format.MessageToDict(event)["toState"])
            if len(states) == 2:
                stream.cancel()
                break
        assert states == ["JOB_STATE_PENDING", "JOB_STATE_CANCELLED"]
