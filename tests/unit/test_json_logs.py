"""`--log-format json`: one JSON object per line, with the ids of what a record is about
as fields (scheduler/cli/logs.py): a job's transitions carry its job, run, site and
tenant; a grid event's records carry its id and site; an agent stamps its site on all."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys

from scheduler.cli.logs import log_handler
from scheduler.core.grid import GridEvent, GridEventKind
from tests.builders import NOW
from tests.unit.test_metrics import running_site


def records_of(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_controllers_records_carry_job_site_and_grid_event_ids(tmp_path):
    stream = io.StringIO()
    handler = log_handler("json", stream)
    logger = logging.getLogger("scheduler.server.controller")
    logger.addHandler(handler)
    old_level, logger.level = logger.level, logging.INFO
    try:

        async def main():
            controller, _ = await running_site(tmp_path)  # a job submitted, a cap cut posted
            try:
                await controller.schedule_once()
                await controller.post_grid_event(GridEvent("ercot-1", GridEventKind.EMERGENCY, start=NOW, end=NOW + 60, site_id="tx-1"))
            finally:
                await controller.stop()

        asyncio.run(main())
    finally:
        logger.removeHandler(handler)
        logger.level = old_level
    records = records_of(stream)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    placed = [r for r in records if r.get("job_id") and "PENDING -> SCHEDULED" in r["message"]]
    assert placed and placed[0]["site_id"] == "tx-1" and placed[0]["tenant"] == "acme" and placed[0]["run_id"].startswith(placed[0]["job_id"])
    posted = [r for r in records if r.get("grid_event_id") == "ercot-1"]
    assert posted and all(r["site_id"] == "tx-1" for r in posted)


def test_the_agent_stamps_its_site_and_a_bad_format_is_refused():
    stream = io.StringIO()
    handler = log_handler("json", stream, site_id="eu-1")
    logger = logging.getLogger("powerplane.test")
    logger.addHandler(handler)
    try:
        logger.warning("run %s stopped", "job-1-r2", extra={"run_id": "job-1-r2", "job_id": "job-1"})
    finally:
        logger.removeHandler(handler)
    (record,) = records_of(stream)
    assert (record["site_id"], record["run_id"], record["job_id"], record["level"]) == ("eu-1", "job-1-r2", "job-1", "WARNING")
    result = subprocess.run([sys.executable, "-m", "scheduler.cli.main", "--log-format", "xml", "sites"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice: 'xml'" in result.stderr
