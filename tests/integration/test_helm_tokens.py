"""The chart's tokens: hashes (sha256:<hex>) and {token, role} entries for tenants and
operators render into the scheduler's tokens.yaml as given, which the scheduler accepts
(the hashed tenant authenticates with its token, the viewer and read-only operator get
their roles); a role the scheduler does not know is refused by the chart's schema."""

from __future__ import annotations

import pytest
import yaml

from scheduler.server.config import Tokens
from scheduler.server.interceptor import Authenticator
from scheduler.server.tokens import token_hash
from tests.integration.helm_support import rendered, template, tokens_file

pytestmark = pytest.mark.integration

ACME = "acme-token-0123456789abcdef"


def values(tmp_path, tokens: dict):
    path = tmp_path / "tokens-values.yaml"
    path.write_text(yaml.safe_dump({"tokens": {"existingSecret": "", "sites": {"us-1": "us-1-site-token-0123456789"}, **tokens}}))
    return [path]


def test_hashed_tokens_and_roles_render_into_a_tokens_file_the_scheduler_takes(tmp_path):
    tokens = {
        "tenants": {"acme": token_hash(ACME), "acme-view": {"token": token_hash("view-token-0123456789"), "role": "viewer"}},
        "operators": {"ops": token_hash("ops-token-0123456789"), "audit": {"token": token_hash("audit-token-0123456789"), "role": "read_only"}},
    }
    docs = rendered(template(values(tmp_path, tokens)))
    file = tokens_file(docs)
    assert file["tenants"] == {**tokens["tenants"], "globex": "dev-globex-token-CHANGE-ME"} and file["operators"] == tokens["operators"]
    auth = Authenticator(Tokens.model_validate(file).token_owners())
    assert auth.principal([("authorization", f"Bearer {ACME}")], "tenant").name == "acme"
    assert auth.principal([("authorization", "Bearer view-token-0123456789")], "tenant").access == "viewer"
    assert auth.principal([("authorization", "Bearer audit-token-0123456789")], "operator").access == "read_only"


def test_an_unknown_role_is_refused_by_the_schema(tmp_path):
    result = template(values(tmp_path, {"tenants": {"acme": {"token": token_hash(ACME), "role": "read_only"}}, "operators": {}}))
    assert result.returncode != 0 and "role" in result.stderr, result.stderr
