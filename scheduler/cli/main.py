"""`powerplane` entry point: parses the command line and dispatches.

Client commands read the scheduler address from --scheduler or $POWERPLANE_SCHEDULER
and the bearer token from --token or $POWERPLANE_TOKEN. gRPC errors are shown as
one line with their status code; the exit code is 1 for them, 2 for usage errors.

This module is the composition root: the only production module that wires the
scheduler's side to the agent's (`agent`, `agent discover`: agents.main) and to the dev-only package
(`demo`: powerplane_dev.demo, imported lazily, absent from the container image). The
import-linter contracts in pyproject.toml allow exactly these imports, here only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import grpc

from scheduler.cli import admin_commands, grid_commands, operator_commands, tenant_commands, top, usage_commands
from scheduler.cli.logs import FORMATS, configure_logging
from scheduler.sim.cli import add_parser as add_simulate_parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="powerplane", description="Powerplane: power-aware scheduling of AI jobs and mining.")
    parser.add_argument("--log-level", default=os.environ.get("POWERPLANE_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=os.environ.get("POWERPLANE_LOG_FORMAT", "text"),
        help="text lines, or one JSON object per line with job, run, site and grid event ids as fields",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("scheduler", help="run the central scheduler")
    p.add_argument("--config", type=Path, required=True, help="scheduler config file (YAML)")
    p.set_defaults(server="scheduler")

    from agents.main import add_arguments as add_agent_arguments
    from agents.main import add_discover_arguments

    p = sub.add_parser("agent", help="run a site agent (`powerplane agent discover CIDR`: list the miners on a subnet)")
    add_agent_arguments(p)
    p.set_defaults(server="agent")
    p = sub.add_parser("agent-discover", help="list the miners pyasic_rs finds on a subnet (also `powerplane agent discover CIDR`)")
    add_discover_arguments(p)

    p = sub.add_parser("demo", help="run the whole system locally: Ray, scheduler, two sites, two tenants")
    p.add_argument("--workdir", type=Path, default=Path(".powerplane-demo"), help="where the demo keeps its database, config and logs")
    p.add_argument("--timeout-s", type=float, default=300.0, help="give up if the demo's training job is not done by then")
    p.set_defaults(server="demo")
    add_simulate_parser(sub)

    client_parent = argparse.ArgumentParser(add_help=False)
    client_parent.add_argument("--scheduler", default=os.environ.get("POWERPLANE_SCHEDULER", "127.0.0.1:50051"), help="host:port, or several comma-separated (scheduler replicas: a standby names the leader) (or $POWERPLANE_SCHEDULER)")
    client_parent.add_argument("--token", default=os.environ.get("POWERPLANE_TOKEN", ""), help="bearer token (or $POWERPLANE_TOKEN)")
    client_parent.add_argument("--tls-ca", type=Path, help="CA certificate, for a scheduler serving TLS")
    client_parent.add_argument("--tls-cert", type=Path, help="client certificate, for a scheduler requiring mutual TLS (with --tls-key)")
    client_parent.add_argument("--tls-key", type=Path, help="the key of --tls-cert")
    client_parent.add_argument("--output", "-o", choices=["table", "json", "csv"], default="table", help="csv: `usage` only (others show a table)")
    admin_commands.add_parser(sub, client_parent)  # needs no scheduler (admin migrate, admin backup), but admin reload
    client_sub = _ClientSubparsers(sub, client_parent)
    tenant_commands.add_parsers(client_sub)
    operator_commands.add_parsers(client_sub)
    grid_commands.add_parsers(client_sub)
    top.add_parsers(client_sub)
    usage_commands.add_parsers(client_sub)
    return parser


class _ClientSubparsers:
    """Adds the shared client options to every client command."""

    def __init__(self, sub, parent):
        self.sub = sub
        self.parent = parent

    def add_parser(self, name, **kwargs):
        return self.sub.add_parser(name, parents=[self.parent], **kwargs)


def _run_server(args) -> int:
    if args.server == "scheduler":
        from scheduler.server.app import serve
        from scheduler.server.config import load_config

        try:
            config = load_config(args.config)
        except (OSError, ValueError) as err:
            print(f"powerplane scheduler: bad config {args.config}: {err}", file=sys.stderr)
            return 2
        from scheduler.store.base import StoreError

        try:
            return asyncio.run(serve(config, args.config))
        except (OSError, StoreError) as err:  # e.g. the port is taken, the database is not writable or has a newer schema
            print(f"powerplane scheduler: {err}", file=sys.stderr)
            return 1
    if args.server == "agent":
        from agents.main import run_agent

        try:
            asyncio.run(run_agent(args))
        except ConnectionError as err:  # Ray never became reachable
            print(f"powerplane agent: {err}", file=sys.stderr)
            return 1
        return 0
    try:
        from powerplane_dev.demo import run_demo
    except ModuleNotFoundError as err:
        if err.name not in ("powerplane_dev", "powerplane_dev.demo"):
            raise
        print("powerplane demo: needs a checkout of the repository (./scripts/demo.sh); this install has no powerplane_dev", file=sys.stderr)
        return 2
    return run_demo(args.workdir, args.timeout_s)


GLOBAL_OPTIONS_WITH_VALUES = ("--log-level", "--log-format")


def agent_subcommand(argv: list[str]) -> list[str]:
    """`powerplane [global options] agent discover ...` -> `... agent-discover ...`: `discover`
    is a subcommand of `agent` only as the first word after it (the agent itself takes no
    positional argument), so `powerplane agent --site ...` parses exactly as before."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in GLOBAL_OPTIONS_WITH_VALUES else 1
    if argv[i : i + 2] == ["agent", "discover"]:
        return [*argv[:i], "agent-discover", *argv[i + 2 :]]
    return argv


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(agent_subcommand(sys.argv[1:] if argv is None else list(argv)))
    site = getattr(args, "site", None) if getattr(args, "server", None) == "agent" else None
    configure_logging(args.log_level, args.log_format, **({"site_id": site} if site else {}))
    if getattr(args, "server", None):
        return _run_server(args)
    if getattr(args, "run", None):  # needs no scheduler (simulate, admin)
        return args.run(args)
    if not args.token:
        print("powerplane: no token; pass --token or set POWERPLANE_TOKEN", file=sys.stderr)
        return 2
    from scheduler.client import Client

    tls_ca = args.tls_ca.read_bytes() if args.tls_ca else None
    if (args.tls_cert is None) != (args.tls_key is None):
        print("powerplane: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    identity = (args.tls_key.read_bytes(), args.tls_cert.read_bytes()) if args.tls_cert else None
    try:
        with Client(args.scheduler, args.token, tls_ca, tls_identity=identity) as client:
            return args.func(client, args)
    except grpc.RpcError as err:
        print(f"powerplane {args.command}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
