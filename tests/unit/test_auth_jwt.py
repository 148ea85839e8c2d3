"""Bearer JWTs (scheduler/server/jwt_tokens.py) with keys made here by `cryptography` and
tokens signed by PyJWT: a valid token names its tenant and role; an expired one, one for
another audience or issuer, one signed by an unknown key id or by the wrong key is
UNAUTHENTICATED; a viewer may list but not submit, an operator claim calls the operator
service; a replaced JWKS file is read again (key rotation); over real gRPC too."""

from __future__ import annotations

import asyncio
import json
import os
import time

import grpc
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scheduler.api.v1 import operator_pb2, operator_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from scheduler.core import errors
from scheduler.server.app import SchedulerServer
from scheduler.server.config import JwtConfig, load_config
from scheduler.server.interceptor import Authenticator
from scheduler.server.jwt_tokens import JwtVerifier

ISSUER, AUDIENCE = "https://idp.example", "powerplane"
SUBMIT, LIST = "/powerplane.v1.TenantService/SubmitJob", "/powerplane.v1.TenantService/ListJobs"
POST, SITES = "/powerplane.v1.OperatorService/PostGridEvent", "/powerplane.v1.OperatorService/ListSites"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_jwks(path, keys: dict) -> None:
    """kid -> private key; writes the public keys as a JWKS, replacing the file (a new inode)."""
    found = []
    for kid, key in keys.items():
        algorithm = jwt.algorithms.ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else jwt.algorithms.RSAAlgorithm
        jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
        found.append({**jwk, "kid": kid, "use": "sig", "alg": "ES256" if algorithm is jwt.algorithms.ECAlgorithm else "RS256"})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": found}))
    os.replace(tmp, path)


def token(key, kid: str, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 300, "tenant": "acme", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


def bearer(text: str) -> list:
    return [("authorization", f"Bearer {text}")]


@pytest.fixture(scope="module")
def keys():
    return {"k1": rsa_key(), "k2": ec.generate_private_key(ec.SECP256R1()), "other": rsa_key()}


@pytest.fixture
def auth(tmp_path, keys):
    write_jwks(tmp_path / "jwks.json", {"k1": keys["k1"], "k2": keys["k2"]})
    return Authenticator({}, JwtVerifier(JwtConfig(jwks_file=tmp_path / "jwks.json", issuer=ISSUER, audience=AUDIENCE)))


def test_a_valid_token_names_its_tenant_and_role(auth, keys):
    member = auth.principal(bearer(token(keys["k1"], "k1")), "tenant", SUBMIT)
    assert (member.role, member.name, member.access) == ("tenant", "acme", "member")
    viewer = token(keys["k2"], "k2", tenant="globex", powerplane_role="viewer")  # ES256
    assert auth.principal(bearer(viewer), "tenant", LIST).name == "globex"
    with pytest.raises(errors.PermissionDenied, match="tenant 'globex' has role viewer, which may not call SubmitJob"):
        auth.principal(bearer(viewer), "tenant", SUBMIT)


def test_an_operator_claim_calls_the_operator_service_and_read_only_cannot_post(auth, keys):
    ops = token(keys["k1"], "k1", sub="alice", tenant=None, powerplane_role="operator")
    assert auth.principal(bearer(ops), "operator", POST).name == "alice"
    with pytest.raises(errors.PermissionDenied, match="operator tokens may not call this service"):
        auth.principal(bearer(ops), "tenant", LIST)
    reader = token(keys["k1"], "k1", sub="bob", powerplane_role="read_only")
    assert auth.principal(bearer(reader), "operator", SITES).access == "read_only"
    with pytest.raises(errors.PermissionDenied, match="role read_only, which may not call PostGridEvent"):
        auth.principal(bearer(reader), "operator", POST)
    with pytest.raises(errors.PermissionDenied, match="powerplane_role must be one of"):
        auth.principal(bearer(token(keys["k1"], "k1", powerplane_role="admin")), "tenant", LIST)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda k: token(k["k1"], "k1", exp=int(time.time()) - 60), "expired"),
        (lambda k: token(k["k1"], "k1", nbf=int(time.time()) + 600), "not yet valid"),
        (lambda k: token(k["k1"], "k1", aud="another-service"), "Audience doesn.t match"),
        (lambda k: token(k["k1"], "k1", iss="https://evil.example"), "Invalid issuer"),
        (lambda k: token(k["k1"], "k9"), "unknown key id 'k9'"),
        (lambda k: token(k["other"], "k1"), "Signature verification failed"),
        (lambda k: token(k["k1"], "k1", exp=None), "exp"),
        (lambda k: token(k["k1"], "k1", tenant=None), "no claim tenant"),
        (lambda k: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60, "tenant": "acme"}, "s" * 32, algorithm="HS256", headers={"kid": "k1"}), "alg value is not allowed"),
    ],
)
def test_invalid_tokens_are_unauthenticated_with_the_reason(auth, keys, make, reason):
    with pytest.raises(errors.Unauthenticated, match=reason):
        auth.principal(bearer(make(keys)), "tenant", LIST)


def test_a_replaced_jwks_file_is_read_again(tmp_path, auth, keys):
    rotated = rsa_key()
    with pytest.raises(errors.Unauthenticated, match="unknown key id 'k3'"):
        auth.principal(bearer(token(rotated, "k3")), "tenant", LIST)
    write_jwks(tmp_path / "jwks.json", {"k3": rotated})
    assert auth.principal(bearer(token(rotated, "k3")), "tenant", LIST).name == "acme"
    with pytest.raises(errors.Unauthenticated, match="unknown key id 'k1'"):  # the retired key is gone
        auth.principal(bearer(token(keys["k1"], "k1")), "tenant", LIST)


def test_a_verified_token_is_kept_until_its_exp_and_only_while_its_key_file_stands(tmp_path, keys):
    now = [time.time()]
    write_jwks(tmp_path / "jwks.json", {"k1": keys["k1"]})
    verifier = JwtVerifier(JwtConfig(jwks_file=tmp_path / "jwks.json", issuer=ISSUER, audience=AUDIENCE), clock=lambda: now[0])
    good = token(keys["k1"], "k1", exp=int(now[0]) + 300)
    assert [verifier.principal(good) for _ in range(3)] == [("tenant", "acme", "member")] * 3
    assert verifier.verifications == 1  # checked once, then kept
    with pytest.raises(errors.Unauthenticated):
        verifier.principal(token(keys["other"], "k1"))  # a refused token is never kept
    with pytest.raises(errors.Unauthenticated):
        verifier.principal(token(keys["other"], "k1"))
    assert verifier.verifications == 3
    now[0] += 301  # past its exp by the clock the cache keeps: checked again
    verifier.principal(good)
    assert verifier.verifications == 4
    now[0] -= 301
    assert verifier.principal(good) and verifier.verifications == 4  # kept again, within its exp
    write_jwks(tmp_path / "jwks.json", {"k3": rsa_key()})  # k1 taken out of the file: its tokens stop at once
    with pytest.raises(errors.Unauthenticated, match="unknown key id 'k1'"):
        verifier.principal(good)


def test_a_bad_jwks_file_is_refused_at_load(tmp_path):
    (tmp_path / "jwks.json").write_text("{not json")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"jwt": {"jwks_file": "jwks.json", "issuer": ISSUER, "audience": AUDIENCE}}))
    with pytest.raises(ValueError, match="jwt.jwks_file: .*jwks.json is not a usable JWKS"):
        load_config(tmp_path / "s.yaml")


def test_jwts_over_grpc(tmp_path, keys):
    write_jwks(tmp_path / "jwks.json", {"k1": keys["k1"]})
    jwt_section = {"jwks_file": "jwks.json", "issuer": ISSUER, "audience": AUDIENCE}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"listen": "127.0.0.1:0", "database": "pp.db", "regions": ["us"], "jwt": jwt_section}))
    config = load_config(tmp_path / "s.yaml")

    async def main():
        server = SchedulerServer(config)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                tenant, operator = tenant_pb2_grpc.TenantServiceStub(channel), operator_pb2_grpc.OperatorServiceStub(channel)
                await tenant.ListJobs(tenant_pb2.ListJobsRequest(), metadata=bearer(token(keys["k1"], "k1")), timeout=10)
                ops = token(keys["k1"], "k1", sub="alice", powerplane_role="operator")
                await operator.ListSites(operator_pb2.ListSitesRequest(), metadata=bearer(ops), timeout=10)
                viewer = token(keys["k1"], "k1", powerplane_role="viewer")
                for call, code in [
                    (tenant.SubmitJob(tenant_pb2.SubmitJobRequest(), metadata=bearer(viewer), timeout=10), grpc.StatusCode.PERMISSION_DENIED),
                    (tenant.ListJobs(tenant_pb2.ListJobsRequest(), metadata=bearer(token(keys["k1"], "k1", exp=int(time.time()) - 60)), timeout=10), grpc.StatusCode.UNAUTHENTICATED),
                ]:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await call
                    assert refused.value.code() == code, refused.value.details()
        finally:
            await server.stop(0)

    asyncio.run(main())
