"""`powerplane agent`: wires settings, the site's power profile (--site-config), the
Ray runner and the session, and runs until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", required=True, help="this site's id (must match its token)")
    parser.add_argument("--region", required=True, help="region the site is in, e.g. us or eu")
    parser.add_argument("--scheduler", default=os.environ.get("POWERPLANE_SCHEDULER", "127.0.0.1:50051"), help="scheduler host:port, or several comma-separated (replicas: the agent follows the one a standby names as leader)")
    parser.add_argument("--token-file", type=Path, help="file holding the site's bearer token (else $POWERPLANE_AGENT_TOKEN)")
    parser.add_argument(
        "--ray-address", default=os.environ.get("RAY_DASHBOARD_ADDRESS", "http://127.0.0.1:8265"), help="the site's Ray dashboard (Jobs API) address"
    )
    parser.add_argument("--ray-site-resource", default="", help="custom Ray resource marking this site's nodes when several sites share one Ray cluster")
    parser.add_argument("--gpu-model", default="unknown", help="GPU model reported in the inventory, e.g. H100-SXM")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate to verify the scheduler's TLS certificate")
    parser.add_argument("--tls-cert", type=Path, help="this site's client certificate, for a scheduler requiring mutual TLS (read again on every reconnect)")
    parser.add_argument("--tls-key", type=Path, help="the key of --tls-cert")
    parser.add_argument("--ray-wait-s", type=float, default=120.0, help="how long to wait for Ray at start-up")
    parser.add_argument(
        "--ray-gcs-address",
        default=os.environ.get("POWERPLANE_RAY_GCS_ADDRESS", ""),
        help="the site's Ray cluster (host:port of its GCS): miner groups then run as Ray actors there; without it the agent drives them itself",
    )
    parser.add_argument(
        "--miner-groups-in-agent", action="store_true", help="drive miner groups from the agent's process even with --ray-gcs-address (Serve still uses Ray)"
    )
    parser.add_argument("--serve-http-host", default="127.0.0.1", help="where Ray Serve's HTTP proxy listens (if this agent starts Serve on the cluster)")
    parser.add_argument("--serve-http-port", type=int, default=int(os.environ.get("POWERPLANE_SERVE_HTTP_PORT", "8000")), help="Ray Serve's HTTP port")
    parser.add_argument(
        "--serve-demand-window-s",
        type=float,
        default=10.0,
        help="Serve demand (requests/s) is averaged over this window (a few of Ray's metrics report intervals)",
    )
    parser.add_argument(
        "--metrics-listen",
        default=os.environ.get("POWERPLANE_AGENT_METRICS_LISTEN", ""),
        help="host:port for /metrics, /healthz and /readyz (e.g. 0.0.0.0:9465; port 0: any free port); empty: off",
    )
    parser.add_argument(
        "--site-config", type=Path, help="the site's power profile and miner fleets (YAML, see agents/site_config.py); without it: no fleets, no cap"
    )


def add_discover_arguments(parser: argparse.ArgumentParser) -> None:
    """`powerplane agent discover CIDR`: the miners pyasic_rs finds (agents/miners/discover.py)."""
    from agents.miners import discover

    discover.add_arguments(parser)


def site_power_from(args: argparse.Namespace):
    """The site's power side, from --site-config; a bad file ends the agent with one line.
    Miner groups run as Ray actors when --ray-gcs-address is given (see agents/miners/ray_groups.py)."""
    from agents.site_config import SiteConfigError, load_site_config
    from agents.site_power import SitePowerControl

    try:
        config = load_site_config(getattr(args, "site_config", None))
    except SiteConfigError as err:
        raise SystemExit(f"powerplane agent: bad site config {err}") from None
    gcs = getattr(args, "ray_gcs_address", "")
    if not (gcs and config.has_miner_addresses) or getattr(args, "miner_groups_in_agent", False):
        return SitePowerControl(config)
    from agents.miners.driver import site_fleet_driver
    from agents.miners.ray_groups import RayMinerGroup, ensure_ray

    log.info("connecting to the site's Ray cluster at %s for its miner groups", gcs)
    ensure_ray(gcs)

    def ray_group(group_id, addresses, model, auth=None):
        return RayMinerGroup(args.site, group_id, addresses, model, site_resource=args.ray_site_resource, auth=auth)

    return SitePowerControl(config, driver=site_fleet_driver(config, group_factory=ray_group))


def serve_runner_from(args: argparse.Namespace, jobs=None):
    """Serve inference runs need a Ray driver connection: with --ray-gcs-address, else none."""
    gcs = getattr(args, "ray_gcs_address", "")
    if not gcs:
        return None
    from agents.serve_runner import ServeRunner

    over_http = None
    if jobs is not None:  # list Serve runs through the dashboard until the driver connection is up

        def over_http() -> dict:
            response = jobs.client._do_request("GET", "/api/serve/applications/")
            response.raise_for_status()
            return response.json()

    runner = ServeRunner(gcs, args.site, args.ray_site_resource, args.serve_http_host, args.serve_http_port, args.serve_demand_window_s, over_http)
    threading.Thread(target=runner.connect, name="ray-connect", daemon=True).start()  # off the registration path
    return runner


def settings_from(args: argparse.Namespace):
    from agents.session import AgentSettings

    if args.token_file:
        token = args.token_file.read_text().strip()
    else:
        token = os.environ.get("POWERPLANE_AGENT_TOKEN", "")
    if not token:
        raise SystemExit("powerplane agent: no token; pass --token-file or set POWERPLANE_AGENT_TOKEN")
    tls_cert, tls_key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if (tls_cert is None) != (tls_key is None):
        raise SystemExit("powerplane agent: --tls-cert and --tls-key go together")
    for path in (args.tls_ca, tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise SystemExit(f"powerplane agent: {path} not found")
    return AgentSettings(
        site_id=args.site, region=args.region, scheduler=args.scheduler, token=token, tls_ca_file=args.tls_ca, tls_cert_file=tls_cert, tls_key_file=tls_key
    )


async def run_agent(args: argparse.Namespace) -> None:
    # Imported here so that merely building the CLI does not import ray.
    from agents.ray_runner import RayRunner
    from agents.session import SiteAgent

    settings = settings_from(args)
    power = site_power_from(args)
    runner = RayRunner(address=args.ray_address, site_id=args.site, gpu_model=args.gpu_model, site_resource=args.ray_site_resource)
    log.info("waiting for Ray at %s", args.ray_address)
    await asyncio.to_thread(runner.wait_until_ready, args.ray_wait_s)
    agent = SiteAgent(settings, runner, power, serve_runner_from(args, runner))
    endpoint = None
    if getattr(args, "metrics_listen", ""):
        from agents.metrics import AgentEndpoint
        from scheduler.core.validation import split_host_port

        try:
            host, port = split_host_port(args.metrics_listen)
        except ValueError as err:
            raise SystemExit(f"powerplane agent: --metrics-listen {err}") from None
        endpoint = AgentEndpoint(agent)
        bound = await endpoint.start(host, port)
        log.info("metrics and probes on http://%s:%d/metrics (/healthz, /readyz)", host, bound)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.stop)
    try:
        await agent.run_forever()
    finally:
        if endpoint is not None:
            await endpoint.close()
