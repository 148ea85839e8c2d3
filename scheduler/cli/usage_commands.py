"""`powerplane usage`: a tenant's usage over a window (docs/usage.md) as a table, JSON or
CSV (one row per job, then a TOTAL row), to stdout or to a file with --csv. A tenant
token reads its own usage, an operator token any tenant's."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from datetime import UTC, datetime

from scheduler.cli import render

CSV_COLUMNS = (
    "job_id",
    "gpu_hours",
    "capped_gpu_hours",
    "it_mwh",
    "meter_mwh",
    "curtailed_mwh",
    "power_caps",
    "preemptions",
    "preempted_gpu_hours",
)


def add_parsers(sub) -> None:
    p = sub.add_parser("usage", help="a tenant's GPU-hours, energy, cost, power caps, preemptions and credits over a window")
    p.add_argument("--tenant", required=True, help="the tenant (a tenant token: its own)")
    p.add_argument("--from", dest="start", required=True, type=_instant, help="window start: YYYY-MM-DD or ISO 8601 (UTC unless it names a zone)")
    p.add_argument("--to", dest="end", required=True, type=_instant, help="window end (excluded); past now, the report ends now")
    p.add_argument("--jobs", type=int, default=100, metavar="N", help="list the N jobs with the most GPU-hours (at most 1000)")
    p.add_argument("--csv", type=argparse.FileType("w"), metavar="FILE", help="write CSV here ('-': stdout) instead of the table or JSON")
    p.set_defaults(func=usage)


def _instant(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or ISO 8601 time: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _row(job_id: str, f) -> list:
    return [
        job_id,
        f"{f.gpu_hours:.3f}",
        f"{f.capped_gpu_hours:.3f}",
        f"{f.it_mwh:.6f}",
        f"{f.meter_mwh:.6f}",
        f"{f.curtailed_mwh:.6f}",
        f.power_caps,
        f.preemptions,
        f"{f.preempted_gpu_hours:.3f}",
    ]


def usage_csv(report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for job in report.jobs:
        writer.writerow(_row(job.job_id, job.figures))
    writer.writerow(_row("TOTAL", report.totals))
    return out.getvalue()


def usage_table(report) -> str:
    t = report.totals
    head = [
        f"tenant {report.tenant}: {render.when(getattr(report, 'from'))} to {render.when(report.to)} UTC",
        f"GPU-hours {t.gpu_hours:.2f} (capped {t.capped_gpu_hours:.2f})   energy at the meter {t.meter_mwh:.3f} MWh (IT {t.it_mwh:.3f})",
        f"cost {report.cost_usd:,.2f} USD at {report.price_usd_per_mwh:g} USD/MWh   "
        f"credits {report.credits_usd:,.2f} USD ({t.curtailed_mwh:.3f} MWh curtailed at {report.credit_usd_per_mwh:g} USD/MWh)",
        f"power caps {t.power_caps}   preemptions {t.preemptions} ({t.preempted_gpu_hours:.2f} GPU-hours of preempted runs)",
    ]
    if not report.history_complete:
        head.append("note: retention compacted part of the event log away; earlier runs may be missing")
    if report.unknown_sites:
        head.append(f"note: energy not counted on sites with unknown power settings: {', '.join(report.unknown_sites)}")
    rows = [_row(j.job_id, j.figures) for j in report.jobs]
    shown = f"jobs: {len(report.jobs)} of {report.jobs_total}"
    headers = ["JOB", "GPU-H", "CAPPED GPU-H", "IT MWH", "METER MWH", "CURTAILED MWH", "CAPS", "PREEMPTIONS", "PREEMPTED GPU-H"]
    return "\n".join([*head, "", render.table(headers, rows), shown])


def usage(client, args) -> int:
    if args.end <= args.start:
        print("powerplane usage: --to must be after --from", file=sys.stderr)
        return 2
    report = client.usage(args.tenant, args.start, args.end, args.jobs)
    if args.csv is not None:
        args.csv.write(usage_csv(report))
        if args.csv is not sys.stdout:
            args.csv.close()
        return 0
    if args.output == "csv":
        sys.stdout.write(usage_csv(report))
    elif args.output == "json":
        print(render.as_json(report))
    else:
        print(usage_table(report))
    return 0
