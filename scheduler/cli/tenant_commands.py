"""Tenant commands: submit, jobs, job, cancel (one job, or by label), reprioritize, watch, logs."""

from __future__ import annotations

import argparse
import math
import sys
import uuid

import grpc

from scheduler.api.v1 import types_pb2
from scheduler.cli import render

KINDS = {"training": types_pb2.JOB_KIND_TRAINING, "inference": types_pb2.JOB_KIND_INFERENCE}
TERMINAL = {types_pb2.JOB_STATE_SUCCEEDED, types_pb2.JOB_STATE_FAILED, types_pb2.JOB_STATE_CANCELLED}
STATES = [name.removeprefix("JOB_STATE_").lower() for name in types_pb2.JobState.keys() if name != "JOB_STATE_UNSPECIFIED"]
UINT32 = 2**32 - 1
INT32 = 2**31 - 1


def refuse(command: str, message: str):
    """A usage error found after parsing: one line on stderr, exit code 2, nothing sent."""
    print(f"powerplane {command}: {message}", file=sys.stderr)
    raise SystemExit(2)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    result = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"powerplane: {what} {item!r} must look like KEY=VALUE")
        result[key] = value
    return result


def _state(name: str) -> int:
    if name.lower() not in STATES:
        refuse("jobs", f"unknown state {name!r}; valid states: {', '.join(STATES)}")
    return types_pb2.JobState.Value("JOB_STATE_" + name.upper())


def _check_numbers(args) -> None:
    """Refuse numbers that are wrong on their face or that the job spec cannot carry (the
    scheduler judges the rest); --replicas 0 would reach it as "unset"."""
    whole = [
        ("--gpus", args.gpus, 1, UINT32),
        ("--replicas", args.replicas, 1, UINT32),
        ("--priority", args.priority, -INT32 - 1, INT32),
        ("--max-runtime-s", args.max_runtime_s, 0, UINT32),
        ("--max-retries", args.max_retries, 0, UINT32),
        ("--slowdown-tolerance", args.slowdown_tolerance, 0, UINT32),
        ("--checkpoint-grace", args.checkpoint_grace, 0, UINT32),
        ("--min-replicas", args.min_replicas, 0, UINT32),
        ("--max-replicas", args.max_replicas, 0, UINT32),
    ]
    for flag, value, low, high in whole:
        if value is not None and value < low:
            refuse("submit", f"{flag} must be at least {low}, got {value}")
        if value is not None and value > high:
            refuse("submit", f"{flag} must be at most {high}, got {value}")
    for flag, value in (("--cpus", args.cpus), ("--memory-gb", args.memory_gb), ("--target-rps", args.target_rps)):
        if not (math.isfinite(value) and value >= 0):
            refuse("submit", f"{flag} must be a number >= 0, got {value:g}")
    if args.memory_gb * 1024**3 > 2**64 - 1:
        refuse("submit", f"--memory-gb is too large, got {args.memory_gb:g}")
    if args.replicas is not None and args.replicas != 1 and args.kind == "training":
        refuse("submit", "--replicas applies to inference jobs only; a training job is one gang")


def add_parsers(sub) -> None:
    p = sub.add_parser("submit", help="submit an AI job", description="Submit a job; the command after -- is the Ray entrypoint.")
    p.add_argument("--kind", choices=sorted(KINDS), default="training")
    p.add_argument("--name", default="")
    p.add_argument("--gpus", type=int, default=1, help="GPUs (per replica for inference)")
    p.add_argument("--cpus", type=float, default=0.0)
    p.add_argument("--memory-gb", type=float, default=0.0)
    p.add_argument("--replicas", type=int, default=None, help="inference replicas (default 1)")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--region", action="append", default=[], help="allowed region (repeatable; default any)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--max-runtime-s", type=int, default=0)
    p.add_argument("--max-retries", type=int, default=None)
    p.add_argument(
        "--slowdown-tolerance",
        type=int,
        default=0,
        metavar="PCT",
        help="training: how much slower it may run when power-capped in a grid event (0..50; default 0: preempted instead)",
    )
    p.add_argument("--checkpoint-uri", default="", help="training: where its checkpoints live (default: the scheduler's checkpoint_root/TENANT/JOB)")
    p.add_argument("--checkpoint-grace", type=int, default=None, metavar="S", help="training: seconds to checkpoint when preempted (default 30)")
    p.add_argument("--serve", default="", metavar="MODULE:APP", help="inference on Ray Serve: the application to serve (see docs/inference.md)")
    p.add_argument("--min-replicas", type=int, default=0, help="with --serve: fewest replicas (default 1)")
    p.add_argument("--max-replicas", type=int, default=0, help="with --serve: most replicas (default: --min-replicas)")
    p.add_argument("--target-rps", type=float, default=0.0, help="with --serve: requests/s one replica serves within its latency goal")
    p.add_argument("--request-id", default="", help="idempotency key (default: a new random one)")
    p.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    p.set_defaults(func=submit)

    p = sub.add_parser("jobs", help="list your jobs, newest first")
    p.add_argument("--state", action="append", type=_state, default=[], help=f"filter by state (repeatable): {', '.join(STATES)}")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=jobs)

    p = sub.add_parser("job", help="show one job")
    p.add_argument("job_id")
    p.set_defaults(func=job)

    p = sub.add_parser("cancel", help="cancel a job, or your jobs carrying labels (--label)")
    p.add_argument("job_id", nargs="?", default="")
    p.add_argument("--reason", default="")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="instead of JOB: cancel your jobs carrying every such label (repeatable; at most 1000 a call)",
    )
    p.add_argument(
        "--state", action="append", type=_state, default=[], help="with --label: only jobs in this state (repeatable; default every unfinished state)"
    )
    p.add_argument("--dry-run", action="store_true", help="with --label: list the jobs it would cancel, change nothing")
    p.set_defaults(func=cancel)

    p = sub.add_parser("reprioritize", help="change a job's priority (a pending job moves in the queue at once)")
    p.add_argument("job_id")
    p.add_argument("priority", type=int)
    p.set_defaults(func=reprioritize)

    p = sub.add_parser("watch", help="follow job events live (Ctrl-C to stop)")
    p.add_argument("--job", default="", help="only this job")
    p.add_argument("--after", type=int, default=0, help="resume after this event id")
    p.add_argument("--until-done", action="store_true", help="with --job: stop when the job ends")
    p.set_defaults(func=watch)

    p = sub.add_parser("logs", help="print the Ray job logs of a job's current (or latest) run, read through its site's agent")
    p.add_argument("job_id")
    p.add_argument("--tail", type=int, default=1000, metavar="N", help="the last N lines (default 1000; 0: every line, within --max-bytes)")
    p.add_argument("--max-bytes", type=int, default=0, metavar="B", help="at most B bytes, whole lines (default 1 MiB; at most 2 MiB)")
    p.set_defaults(func=logs)


def submit(client, args) -> int:
    _check_numbers(args)
    command = args.entrypoint[1:] if args.entrypoint[:1] == ["--"] else args.entrypoint
    fields = dict(
        name=args.name,
        kind=KINDS[args.kind],
        entrypoint=" ".join(command),
        env=_pairs(args.env, "--env"),
        labels=_pairs(args.label, "--label"),
        resources=types_pb2.Resources(gpus=args.gpus, cpus=args.cpus, memory_bytes=int(args.memory_gb * 1024**3)),
        replicas=args.replicas or 0,
        priority=args.priority,
        allowed_regions=args.region,
        max_runtime_s=args.max_runtime_s,
        slowdown_tolerance_pct=args.slowdown_tolerance,
    )
    if args.max_retries is not None:
        fields["max_retries"] = args.max_retries
    if args.checkpoint_uri:
        fields["checkpoint_uri"] = args.checkpoint_uri
    if args.checkpoint_grace is not None:
        fields["checkpoint_grace_s"] = args.checkpoint_grace
    if args.serve:
        fields["serve"] = types_pb2.ServeSpec(
            import_path=args.serve, min_replicas=args.min_replicas, max_replicas=args.max_replicas, target_rps_per_replica=args.target_rps
        )
        fields["entrypoint"] = fields["entrypoint"] or f"serve {args.serve}"
    response = client.submit(types_pb2.JobSpec(**fields), args.request_id or uuid.uuid4().hex)
    if args.output == "json":
        print(render.as_json(response))
    else:
        note = "submitted" if response.created else "already submitted (same request id)"
        print(f"{response.job.job_id}  {note}, {render.state_name(response.job.state)}")
    return 0


def jobs(client, args) -> int:
    found = []
    for job in client.list_all(args.state, page_size=min(args.limit, 1000) or 1):
        found.append(job)
        if len(found) >= args.limit:
            break
    print(render.as_json(found) if args.output == "json" else render.jobs_table(found))
    return 0


def job(client, args) -> int:
    found = client.get(args.job_id)
    print(render.as_json(found) if args.output == "json" else render.job_detail(found))
    return 0


def cancel(client, args) -> int:
    if bool(args.job_id) == bool(args.label):
        refuse("cancel", "name one JOB, or --label KEY=VALUE (repeatable) to cancel your jobs carrying those labels")
    if (args.state or args.dry_run) and not args.label:
        refuse("cancel", "--state and --dry-run go with --label")
    if args.label:
        return _cancel_by_label(client, args)
    found = client.cancel(args.job_id, args.reason)
    print(render.as_json(found) if args.output == "json" else f"{found.job_id}  {render.state_name(found.state)}: {found.reason}")
    return 0


def _cancel_by_label(client, args) -> int:
    response = client.cancel_jobs(_pairs(args.label, "--label"), args.state, args.reason, args.dry_run)
    if args.output == "json":
        print(render.as_json(response))
        return 0
    if response.jobs:
        print(render.jobs_table(response.jobs))
    done = "would cancel" if args.dry_run else "cancelled"
    more = f"; {response.matched - len(response.jobs)} more match" + ("" if args.dry_run else ": run it again") if response.more else ""
    print(f"{done} {len(response.jobs)} of {response.matched} matching job{'s' if response.matched != 1 else ''}{more}")
    return 0


def reprioritize(client, args) -> int:
    if not -INT32 - 1 <= args.priority <= INT32:
        refuse("reprioritize", f"PRIORITY must be a 32-bit integer, got {args.priority}")
    found = client.reprioritize(args.job_id, args.priority)
    print(render.as_json(found) if args.output == "json" else f"{found.job_id}  priority {found.spec.priority}, {render.state_name(found.state)}")
    return 0


def logs(client, args) -> int:
    """The logs on stdout as they are; which job, run and site they are from on stderr."""
    if not 0 <= args.tail <= UINT32:
        refuse("logs", f"--tail must be between 0 and {UINT32}, got {args.tail}")
    if not 0 <= args.max_bytes <= UINT32:
        refuse("logs", f"--max-bytes must be between 0 and {UINT32}, got {args.max_bytes}")
    found = client.logs(args.job_id, args.tail, args.max_bytes)
    if args.output == "json":
        print(render.as_json(found))
        return 0
    note = " (its end: earlier output left out)" if found.truncated else ""
    print(f"job {found.job_id}, run {found.run_id} on site {found.site_id}{note}", file=sys.stderr)
    sys.stdout.write(found.text if not found.text or found.text.endswith("\n") else found.text + "\n")
    return 0


def watch(client, args) -> int:
    if args.until_done and not args.job:
        raise SystemExit("powerplane watch: --until-done needs --job")
    stream = client.watch(args.after, args.job)
    try:
        for event in stream:
            print(render.as_json(event).replace("\n", " ") if args.output == "json" else render.event_line(event), flush=True)
            if args.until_done and event.to_state in TERMINAL:
                return 0 if event.to_state == types_pb2.JOB_STATE_SUCCEEDED else 1
    except KeyboardInterrupt:
        stream.cancel()
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            raise
    print("watch ended", file=sys.stderr)
    return 0
