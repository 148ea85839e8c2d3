"""Who may call what: every Powerplane RPC's required permission (one table, METHODS) and
the permissions each access level grants (GRANTS); `check` refuses a principal whose level
lacks the method's permission with PERMISSION_DENIED. A method missing from the table is
refused for everyone (tests/unit/test_auth_roles.py checks that every RPC is in it).

Access levels: a tenant is a `member` (submits and cancels its own jobs) or a `viewer`
(reads them); an operator is an `operator` or `read_only`; an agent is a `site`."""

from __future__ import annotations

from scheduler.core import errors

TENANT_READ, TENANT_WRITE = "tenant.read", "tenant.write"
OPERATOR_READ, OPERATOR_WRITE = "operator.read", "operator.write"
SITE = "site"

_T, _O, _A = "/powerplane.v1.TenantService/", "/powerplane.v1.OperatorService/", "/powerplane.v1.AgentService/"
METHODS: dict[str, str] = {
    _T + "SubmitJob": TENANT_WRITE,
    _T + "CancelJob": TENANT_WRITE,
    _T + "CancelJobs": TENANT_WRITE,  # by label; dry_run too (it is how a cancel is prepared)
    _T + "ReprioritizeJob": TENANT_WRITE,
    _T + "GetJob": TENANT_READ,
    _T + "ListJobs": TENANT_READ,
    _T + "WatchJobs": TENANT_READ,
    _T + "GetUsage": TENANT_READ,
    _T + "GetJobLogs": TENANT_READ,  # through the job's site agent (log_requests.py)
    _O + "ListSites": OPERATOR_READ,
    _O + "GetSite": OPERATOR_READ,
    _O + "ListGridEvents": OPERATOR_READ,
    _O + "WatchSites": OPERATOR_READ,
    _O + "GetTenantUsage": OPERATOR_READ,
    _O + "GetJobLogs": OPERATOR_READ,  # any tenant's job's (log_requests.py)
    _O + "DrainSite": OPERATOR_WRITE,
    _O + "UndrainSite": OPERATOR_WRITE,
    _O + "PostGridEvent": OPERATOR_WRITE,
    _O + "EndGridEvent": OPERATOR_WRITE,
    _O + "ReloadConfig": OPERATOR_WRITE,  # dry_run too: read-only operators may not see the config's changes
    _A + "Connect": SITE,
}

# role (the service a token may call) -> its access levels, the default first
LEVELS: dict[str, tuple[str, ...]] = {"tenant": ("member", "viewer"), "operator": ("operator", "read_only"), "site": ("site",)}
GRANTS: dict[str, frozenset[str]] = {
    "member": frozenset({TENANT_READ, TENANT_WRITE}),
    "viewer": frozenset({TENANT_READ}),
    "operator": frozenset({OPERATOR_READ, OPERATOR_WRITE}),
    "read_only": frozenset({OPERATOR_READ}),
    "site": frozenset({SITE}),
}


def default_level(role: str) -> str:
    return LEVELS[role][0]


def check(role: str, name: str, level: str, method: str) -> None:
    """Raises PermissionDenied unless access level `level` may call `method` (a gRPC path)."""
    needed = METHODS.get(method)
    short = method.rsplit("/", 1)[-1]
    if needed is None:
        raise errors.PermissionDenied(f"{short} is not in the scheduler's permission table; nobody may call it")
    if needed not in GRANTS.get(level, frozenset()):
        raise errors.PermissionDenied(f"{role} {name!r} has role {level}, which may not call {short} (it needs {needed})")
