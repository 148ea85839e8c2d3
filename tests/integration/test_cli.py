"""The `powerplane` CLI as a tenant and an operator use it, against a real scheduler."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
POWERPLANE = str(Path(sys.executable).parent / "powerplane")


def run(system, *args, token=None, expect=0):
    env = {
        "POWERPLANE_SCHEDULER": system.cluster.scheduler_target,
        "POWERPLANE_TOKEN": token if token is not None else system.cluster.tenant_token("acme"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run([POWERPLANE, *args], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def test_submit_list_show_cancel_and_watch(bare_scheduler):
    submitted = json.loads(
        run(
            bare_scheduler,
            "submit",
            "--gpus",
            "4",
            "--region",
            "us",
            "--name",
            "cli-job",
            "--env",
            "EPOCHS=3",
            "--request-id",
            "cli-1",
            "-o",
            "json",
            "--",
            "python",
            "train.py",
            "--epochs",
            "3",
        ).stdout
    )
    job_id = submitted["job"]["job_id"]
    assert submitted["created"] is True
    assert submitted["job"]["spec"]["entrypoint"] == "python train.py --epochs 3"
    assert submitted["job"]["spec"]["env"] == {"EPOCHS": "3"}
    again = run(bare_scheduler, "submit", "--gpus", "4", "--request-id", "cli-1", "--", "python", "train.py").stdout
    assert again.startswith(f"{job_id}  already submitted")

    table = run(bare_scheduler, "jobs").stdout.splitlines()
    assert table[0].split() == ["JOB", "NAME", "KIND", "STATE", "GPUS", "SITE", "REASON"]
    row = next(line for line in table if line.startswith(job_id))
    assert "cli-job" in row and "TRAINING" in row and "PENDING" in row

    detail = run(bare_scheduler, "job", job_id).stdout
    assert "state           PENDING" in detail and "regions         us" in detail

    assert "CANCELLED: from the cli" in run(bare_scheduler, "cancel", job_id, "--reason", "from the cli").stdout
    watched = run(bare_scheduler, "watch", "--job", job_id, "--until-done", expect=1).stdout.splitlines()
    assert [line.split()[6] for line in watched] == ["PENDING", "CANCELLED"]  # "(new) -> PENDING", "PENDING -> CANCELLED"
    assert len(json.loads(run(bare_scheduler, "jobs", "--state", "cancelled", "-o", "json").stdout)) >= 1


def test_errors_are_one_line_with_their_status(bare_scheduler):
    result = run(bare_scheduler, "submit", "--priority", "5000", "--", "python", "x.py", expect=1)
    assert result.stderr.strip() == "powerplane submit: INVALID_ARGUMENT: priority must be between -1000 and 1000, got 5000"
    result = run(bare_scheduler, "job", "job-nope", expect=1)
    assert result.stderr.strip() == "powerplane job: NOT_FOUND: job 'job-nope' not found"
    result = run(bare_scheduler, "jobs", token="wrong-token-wrong-token", expect=1)
    assert "UNAUTHENTICATED" in result.stderr
    result = run(bare_scheduler, "jobs", token="", expect=2)
    assert "no token" in result.stderr
    result = run(bare_scheduler, "sites", expect=1)  # a tenant token on an operator command
    assert result.stderr.strip() == "powerplane sites: PERMISSION_DENIED: tenant tokens may not call this service; it takes operator tokens"


STATES = "pending, scheduled, starting, running, cancelling, succeeded, failed, cancelled, preempted"


@pytest.mark.parametrize(
    "args,message",
    [
        (["submit", "--gpus", "-1", "--", "x"], "powerplane submit: --gpus must be at least 1, got -1"),
        (["submit", "--memory-gb", "-1", "--", "x"], "powerplane submit: --memory-gb must be a number >= 0, got -1"),
        (["submit", "--cpus", "nan", "--", "x"], "powerplane submit: --cpus must be a number >= 0, got nan"),
        (["submit", "--replicas", "0", "--", "x"], "powerplane submit: --replicas must be at least 1, got 0"),
        (["submit", "--kind", "inference", "--replicas", "0", "--", "x"], "powerplane submit: --replicas must be at least 1, got 0"),
        (["submit", "--replicas", "2", "--", "x"], "powerplane submit: --replicas applies to inference jobs only; a training job is one gang"),
        (["submit", "--max-retries", "-1", "--", "x"], "powerplane submit: --max-retries must be at least 0, got -1"),
        (["submit", "--priority", str(2**31), "--", "x"], f"powerplane submit: --priority must be at most {2**31 - 1}, got {2**31}"),
        (["jobs", "--state", "bogus"], f"powerplane jobs: unknown state 'bogus'; valid states: {STATES}"),
    ],
)
def test_bad_options_are_one_line_and_nothing_is_sent(bare_scheduler, args, message):
    def job_ids():
        return [j["job_id"] for j in json.loads(run(bare_scheduler, "jobs", "-o", "json").stdout)]

    before = job_ids()
    result = run(bare_scheduler, *args, expect=2)
    assert result.stderr.strip() == message and not result.stdout
    assert job_ids() == before


def test_a_bad_scheduler_config_is_one_line_without_the_token(tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text("tenants: {acme: sh0rt-t0ken}\nsite_timeout_s: -1\n")
    result = subprocess.run([POWERPLANE, "scheduler", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and not result.stdout
    assert result.stderr.strip() == (
        f"powerplane scheduler: bad config {config}: tenants: token of 'acme' is shorter than 16 characters; site_timeout_s: Input should be greater than 0"
    )


def test_operator_sites_command(bare_scheduler):
    out = run(bare_scheduler, "sites", token=bare_scheduler.cluster.operator_token).stdout
    assert out.split() == ["SITE", "REGION", "STATE", "GPUS", "FREE", "RUNS", "CAP", "MW", "METER", "MW", "AI", "MW", "MINING", "MW", "LAST", "HEARD", "NOTE"]
    assert json.loads(run(bare_scheduler, "sites", "-o", "json", token=bare_scheduler.cluster.operator_token).stdout) == []


def test_grid_events_posted_and_listed_from_the_cli(bare_scheduler):
    ops = bare_scheduler.cluster.operator_token
    posted = json.loads(
        run(bare_scheduler, "grid-event", "price", "--id", "cli-p1", "--node", "HB_WEST", "--usd-per-mwh", "42.5", "-o", "json", token=ops).stdout
    )
    assert posted["event"]["event_id"] == "cli-p1" and posted["state"] == "GRID_EVENT_STATE_ACTIVE"
    again = run(bare_scheduler, "grid-event", "price", "--id", "cli-p1", "--node", "HB_WEST", "--usd-per-mwh", "42.5", token=ops).stdout
    assert again.splitlines()[1].split()[:2] == ["cli-p1", "-"]  # the same event, not a second one
    listed = run(bare_scheduler, "grid-events", token=ops).stdout.splitlines()
    assert listed[0].split()[:4] == ["EVENT", "SITE", "WHAT", "STATE"]
    assert sum(line.startswith("cli-p1 ") for line in listed) == 1 and "price 42.50 USD/MWh @ HB_WEST" in listed[1]
    result = run(bare_scheduler, "grid-event", "cap", "--site", "nowhere", "--cap-mw", "5", token=ops, expect=1)
    assert result.stderr.strip() == "powerplane grid-event: INVALID_ARGUMENT: site 'nowhere' is not a site this scheduler knows"
    result = run(bare_scheduler, "grid-event", "price", "--id", "cli-p1", "--node", "HB_WEST", "--usd-per-mwh", "99", token=ops, expect=1)
    assert "FAILED_PRECONDITION" in result.stderr and "different content" in result.stderr
