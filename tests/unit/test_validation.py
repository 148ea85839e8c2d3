"""Bad input is refused with a message that names the problem."""

import dataclasses

import pytest

from scheduler.core.errors import InvalidArgument
from scheduler.core.jobs import JobKind, JobSpec, Resources
from scheduler.core.validation import validate_submission

REGIONS = frozenset({"us", "eu"})
GOOD = JobSpec(kind=JobKind.TRAINING, entrypoint="python train.py", resources=Resources(gpus=8, cpus=16, memory_bytes=64 << 30), allowed_regions=("eu",))


def test_a_good_spec_passes():
    assert validate_submission("req-1", GOOD, REGIONS) is None


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"entrypoint": "  "}, "entrypoint is required"),
        ({"entrypoint": "x" * 20000}, "entrypoint is 20000 bytes; at most 16384 allowed"),
        ({"resources": Resources(gpus=0)}, "resources.gpus must be at least 1"),
        ({"resources": Resources(gpus=5000)}, "resources.gpus is 5000; at most 1024 per replica allowed"),
        ({"resources": Resources(gpus=1, cpus=-1)}, "resources.cpus must be between 0 and 4096"),
        ({"resources": Resources(gpus=1, cpus=float("nan"))}, "resources.cpus must be between 0 and 4096"),
        ({"resources": Resources(gpus=1, memory_bytes=1 << 60)}, "resources.memory_bytes must be between"),
        ({"allowed_regions": ("mars",)}, "unknown region(s) mars; known: eu, us"),
        ({"priority": 5000}, "priority must be between -1000 and 1000"),
        ({"replicas": 3}, "replicas applies to INFERENCE jobs only"),
        ({"kind": JobKind.INFERENCE, "replicas": 1000, "resources": Resources(gpus=1024)}, "job needs 1024000 GPUs in all"),
        ({"name": "n" * 200}, "name is 200 characters; at most 128 allowed"),
        ({"env": {"1BAD": "x"}}, "env key '1BAD' is not a valid name"),
        ({"env": {f"K{i}": "v" for i in range(65)}}, "env has 65 entries; at most 64 allowed"),
        ({"labels": {"team": "x" * 300}}, "labels[team] is 300 characters; at most 256 allowed"),
        ({"max_runtime_s": 10**9}, "max_runtime_s must be between 0 and"),
    ],
)
def test_each_problem_is_named(changes, message):
    with pytest.raises(InvalidArgument) as err:
        validate_submission("req-1", dataclasses.replace(GOOD, **changes), REGIONS)
    assert message in str(err.value)


def test_missing_request_id_and_several_problems_are_reported_together():
    bad = dataclasses.replace(GOOD, entrypoint="", resources=Resources(gpus=0))
    with pytest.raises(InvalidArgument) as err:
        validate_submission("", bad, REGIONS)
    text = str(err.value)
    assert "client_request_id is required" in text and "entrypoint is required" in text and "resources.gpus must be at least 1" in text
