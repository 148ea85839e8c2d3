"""Operator commands: sites (with their power; `--watch` follows them live), site, drain,
undrain."""

from __future__ import annotations

import os
import sys

import grpc

from scheduler.api.v1 import types_pb2
from scheduler.cli import render


def add_parsers(sub) -> None:
    p = sub.add_parser("sites", help="list sites, or show one with --site")
    p.add_argument("--site", default="", help="show this site's inventory and runs (with --watch: only its row)")
    p.add_argument("--watch", action="store_true", help="print the table again whenever it changes, from a live stream (Ctrl-C stops)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="with --watch: at most one table per S seconds (default 1)")
    p.set_defaults(func=sites)
    p = sub.add_parser("drain", help="stop placing new work on a site (its runs go on)")
    p.add_argument("site_id")
    p.add_argument("--reason", default="")
    p.set_defaults(func=drain)
    p = sub.add_parser("undrain", help="let a drained site take new work again")
    p.add_argument("site_id")
    p.set_defaults(func=undrain)


def _site_state(value: int) -> str:
    return render.state_name(value, types_pb2.SiteState)


def _mw(watts: float) -> str:
    return f"{watts / 1e6:.3f}"


def sites_table(sites) -> str:
    rows = []
    for s in sites:
        power = [_mw(s.power.cap_w), _mw(s.power.measured_w), _mw(s.power.ai_w), _mw(s.power.mining_w)] if s.HasField("power") else ["-"] * 4
        rows.append(
            [
                s.site_id,
                s.region,
                _site_state(s.state),
                f"{s.gpus_free}/{s.gpus_total}",
                s.active_runs,
                *power,
                render.when(s.last_heartbeat),
                s.drain_reason or "",
            ]
        )
    headers = ["SITE", "REGION", "STATE", "GPUS FREE", "RUNS", "CAP MW", "METER MW", "AI MW", "MINING MW", "LAST HEARD", "NOTE"]
    return render.table(headers, rows)


def sites(client, args) -> int:
    if args.watch:
        return watch_sites(client, args)
    if args.site:
        detail = client.site(args.site)
        if args.output == "json":
            print(render.as_json(detail))
            return 0
        print(sites_table([detail.site]))
        print()
        print(render.table(["NODE", "GPU MODEL", "GPUS", "CPUS"], [[n.node_id[:16], n.gpu_model, n.gpus, f"{n.cpus:g}"] for n in detail.inventory.gpu_nodes]))
        print()
        runs = [[r.run_id, r.job_id, r.tenant, render.state_name(r.state), r.gpus, f"{r.power_fraction:.0%}"] for r in detail.runs]
        print(render.table(["RUN", "JOB", "TENANT", "STATE", "GPUS", "GPU POWER"], runs))
        if detail.site.HasField("power"):
            fleets = [[f.fleet_id, _mw(f.measured_w), _mw(f.target_w)] for f in detail.site.power.fleets]
            print()
            print(render.table(["FLEET", "MEASURED MW (IT)", "TARGET MW (IT)"], fleets))
        return 0
    found = list(client.sites().sites)
    print(render.as_json(found) if args.output == "json" else sites_table(found))
    return 0


def check_interval(command: str, interval_s: float) -> None:
    """--interval as WatchSites takes it (0.1 s to an hour); a usage error otherwise."""
    if not 0.1 <= interval_s <= 3600:  # NaN fails too
        print(f"powerplane {command}: --interval must be between 0.1 and 3600 seconds, got {interval_s:g}", file=sys.stderr)
        raise SystemExit(2)


def watch_sites(client, args) -> int:
    """`sites --watch`: the sites table (or one JSON line) again for every snapshot of the
    WatchSites stream that changes it, as plain lines for a terminal, a log or a pipe. Ends with
    exit 0 on Ctrl-C; a stream lost after it started is one line on stderr and exit 1 (an
    error before the first snapshot, e.g. a tenant token, is reported as for every command)."""
    check_interval("sites", args.interval)
    if args.site:
        client.site(args.site)  # NOT_FOUND for a site the scheduler does not know, before any table
    stream = client.watch_sites(min_interval_s=args.interval)
    last, seen = None, False
    try:
        for snapshot in stream:
            seen = True
            found = [d.site for d in snapshot.sites if not args.site or d.site.site_id == args.site]
            text = render.as_json(found).replace("\n", " ") if args.output == "json" else sites_table(found)
            if text == last:
                continue
            last = text
            if args.output != "json":
                text = f"# {render.when(snapshot.at)} UTC  version {snapshot.version}\n{text}\n"
            print(text, flush=True)
    except KeyboardInterrupt:
        stream.cancel()
        return 0
    except BrokenPipeError:  # `... | head`: the reader is gone, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        stream.cancel()
        return 0
    except grpc.RpcError as err:
        if not seen:
            raise
        print(f"powerplane sites: the watch was lost: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    print("powerplane sites: the watch was lost: the scheduler ended the stream", file=sys.stderr)
    return 1


def drain(client, args) -> int:
    site = client.drain(args.site_id, args.reason)
    print(render.as_json(site) if args.output == "json" else f"{site.site_id}  {_site_state(site.state)}")
    return 0


def undrain(client, args) -> int:
    site = client.undrain(args.site_id)
    print(render.as_json(site) if args.output == "json" else f"{site.site_id}  {_site_state(site.state)}")
    return 0
