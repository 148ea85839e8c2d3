"""The checkpoint contract between a training run, its site agent and the scheduler.

A training run learns everything through its environment, so any Ray Train or plain
PyTorch job can follow it (docs/checkpoints.md):

- ``POWERPLANE_CHECKPOINT_DIR``: where its checkpoints live, a path or a URI that
  fsspec opens (``file://``, ``s3://``...). The same for every run of the job, on
  whichever site it runs.
- ``POWERPLANE_RESUME_FROM`` / ``POWERPLANE_RESUME_STEP``: the latest checkpoint
  when the run starts ("" / 0: start from scratch).
- ``POWERPLANE_PREEMPT_FILE``: appears when the run must checkpoint now and exit;
  the agent stops it after the job's grace period in any case.

In the directory the run writes ``step-<N>-r<A>/`` (anything it wants), then
``latest-r<A>.json`` (``{"step", "path", "at", "attempt"}``) once that checkpoint is
complete: a checkpoint no latest file points at does not exist. It also writes
``progress-r<A>.json`` (``{"step", "at", "attempt"}``) as it trains, so the agent can
report how far it got and how much work a stop would lose. ``A`` is the run's attempt
(from ``POWERPLANE_RUN_ID``, ``<job>-r<A>``); a run started outside Powerplane has
attempt 0 and writes ``step-<N>/``, ``latest.json`` and ``progress.json``.

The fence by attempt: a run writes and deletes only files of its own attempt (and,
once it committed a checkpoint, older attempts' step directories), and readers take
the newest attempt's latest file. So a stale run (an older attempt still running on
a site that was lost) can never overwrite or delete a newer run's checkpoint, nor be
resumed from once the newer run has checkpointed.

`RunCheckpoints` is the run's side; `read_state` and `request_preemption` are the
agent's. Plain files through fsspec: no Ray, no scheduler imports.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass

import fsspec

ENV_DIR = "POWERPLANE_CHECKPOINT_DIR"
ENV_RESUME_FROM = "POWERPLANE_RESUME_FROM"
ENV_RESUME_STEP = "POWERPLANE_RESUME_STEP"
ENV_PREEMPT_FILE = "POWERPLANE_PREEMPT_FILE"
ENV_RUN_ID = "POWERPLANE_RUN_ID"
KEEP_CHECKPOINTS = 2
_LATEST = re.compile(r"^latest(?:-r(\d+))?\.json$")
_PROGRESS = re.compile(r"^progress(?:-r(\d+))?\.json$")
_STEP = re.compile(r"^step-(\d+)(?:-r(\d+))?$")


def _suffix(attempt: int) -> str:
    return f"-r{attempt}" if attempt else ""


def attempt_of(run_id: str) -> int:
    """The attempt in a run id (``<job>-r<A>``); 0 for anything else."""
    match = re.search(r"-r(\d+)$", run_id or "")
    return int(match.group(1)) if match else 0


def _join(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def _write_json(uri: str, doc: dict) -> None:
    """Write `doc` so that a reader sees the old or the new content, never half of it."""
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open(tmp, "w") as out:
            json.dump(doc, out)
        os.replace(tmp, path)
    else:  # object stores: one PUT is atomic
        with fs.open(path, "w") as out:
            json.dump(doc, out)


def _read_json(uri: str) -> dict | None:
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        with fs.open(path, "r") as src:
            doc = json.load(src)
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(frozen=True)
class CheckpointState:
    """What a job's checkpoint directory says: progress and the latest checkpoint (0: none)."""

    step: int = 0
    step_at: float = 0.0
    checkpoint_step: int = 0
    checkpoint_at: float = 0.0
    checkpoint_path: str = ""


def _names(uri: str) -> list[str]:
    """The names in a job's directory ([] if it is not there)."""
    fs, base = fsspec.core.url_to_fs(uri)
    try:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)]
    except (FileNotFoundError, OSError):
        return []


def _newest(uri: str, names: list[str], pattern: re.Pattern) -> dict:
    """The file among `names` of the newest attempt whose name matches `pattern`, read ({} if none)."""
    found = [(int(m.group(1) or 0), name) for name in names if (m := pattern.match(name))]
    if not found:
        return {}
    return _read_json(_join(uri, max(found)[1])) or {}


def read_state(uri: str) -> CheckpointState:
    """The agent's view of a job's directory (the newest attempt's files); missing or
    unreadable files read as zero."""
    names = _names(uri)
    latest = _newest(uri, names, _LATEST)
    progress = _newest(uri, names, _PROGRESS)
    try:
        ckpt_step, ckpt_at = int(latest.get("step", 0)), float(latest.get("at", 0.0))
        step, step_at = int(progress.get("step", 0)), float(progress.get("at", 0.0))
    except (TypeError, ValueError):
        return CheckpointState()
    if step < ckpt_step:  # progress not written since the checkpoint (or not at all)
        step, step_at = ckpt_step, ckpt_at
    return CheckpointState(max(0, step), step_at, max(0, ckpt_step), ckpt_at, str(latest.get("path", "")))


def preempt_file(uri: str, run_id: str) -> str:
    """The request file of one run (per run: a resumed run never sees an old request)."""
    return _join(uri, f"preempt-{run_id}")


def request_preemption(uri: str, run_id: str, reason: str) -> None:
    """Ask a run to checkpoint and exit (the agent's side)."""
    fs, path = fsspec.core.url_to_fs(preempt_file(uri, run_id))
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "w") as out:
        json.dump({"reason": reason, "at": time.time()}, out)


class RunCheckpoints:
    """The run's side of the contract. Typical loop (rank 0 writes):

    ckpt = RunCheckpoints.from_env()
    step = ckpt.resume_step            # load ckpt.resume_path if step > 0
    while step < total:
        train one step; step += 1
        ckpt.progress(step)
        if step % every == 0 or ckpt.preempt_requested():
            save into ckpt.path_for(step); ckpt.commit(step)
        if ckpt.preempt_requested(): exit 0
    """

    def __init__(self, uri: str, resume_from: str = "", resume_step: int = 0, preempt_uri: str = "", progress_every_s: float = 0.5, attempt: int = 0):
        if not uri:
            raise ValueError(f"no checkpoint directory: set {ENV_DIR}")
        self.uri = uri.rstrip("/")
        self.attempt = max(0, attempt)  # this run's attempt: the only files it writes are its own
        self.resume_path = resume_from
        self.resume_step = max(0, resume_step)
        self.preempt_uri = preempt_uri
        self.progress_every_s = progress_every_s
        self._last_progress = 0.0
        self._preempted = False
        self._last_poll = 0.0
        fs, path = fsspec.core.url_to_fs(self.uri)
        fs.makedirs(path, exist_ok=True)

    @classmethod
    def from_env(cls, default_dir: str = "") -> RunCheckpoints:
        """From the POWERPLANE_* environment; outside Powerplane, `default_dir` and the
        latest checkpoint found there."""
        uri = os.environ.get(ENV_DIR, default_dir)
        resume_from = os.environ.get(ENV_RESUME_FROM)
        attempt = attempt_of(os.environ.get(ENV_RUN_ID, ""))
        if resume_from is None and uri:  # not started by an agent: find the latest ourselves
            state = read_state(uri)
            return cls(uri, state.checkpoint_path, state.checkpoint_step, attempt=attempt)
        return cls(uri, resume_from or "", int(os.environ.get(ENV_RESUME_STEP, "0") or 0), os.environ.get(ENV_PREEMPT_FILE, ""), attempt=attempt)

    def _own(self, name: str) -> str:
        return _join(self.uri, f"{name}{_suffix(self.attempt)}")

    def path_for(self, step: int) -> str:
        """Where the checkpoint of `step` goes (created); write into it, then commit(step)."""
        path = self._own(f"step-{step:012d}")
        fs, local = fsspec.core.url_to_fs(path)
        fs.makedirs(local, exist_ok=True)
        return path

    def commit(self, step: int) -> None:
        """Mark the checkpoint of `step` complete and this attempt's latest; drop this
        attempt's older ones and older attempts' (never a newer attempt's)."""
        now = time.time()
        _write_json(self._own("latest") + ".json", {"step": step, "path": self._own(f"step-{step:012d}"), "at": now, "attempt": self.attempt})
        self._write_progress(step, now)
        fs, base = fsspec.core.url_to_fs(self.uri)
        mine, older = [], []
        for path in fs.ls(base, detail=False):
            match = _STEP.match(path.rstrip("/").rsplit("/", 1)[-1])
            if match:
                attempt = int(match.group(2) or 0)
                (mine if attempt == self.attempt else older if attempt < self.attempt else []).append((int(match.group(1)), path))
        for _, old in sorted(mine)[:-KEEP_CHECKPOINTS] + older:
            fs.rm(old, recursive=True)

    def progress(self, step: int, force: bool = False) -> None:
        """Record how far training got (throttled to one write per `progress_every_s`)."""
        now = time.time()
        if force or now - self._last_progress >= self.progress_every_s:
            self._write_progress(step, now)

    def _write_progress(self, step: int, now: float) -> None:
        _write_json(self._own("progress") + ".json", {"step": step, "at": now, "attempt": self.attempt})
        self._last_progress = now

    def preempt_requested(self, poll_every_s: float = 0.2) -> bool:
        """True once the agent asked this run to checkpoint and exit (sticky)."""
        if self._preempted or not self.preempt_uri:
            return self._preempted
        now = time.monotonic()
        if now - self._last_poll >= poll_every_s:
            self._last_poll = now
            fs, path = fsspec.core.url_to_fs(self.preempt_uri)
            self._preempted = fs.exists(path)
        return self._preempted


__all__ = ["CheckpointState", "RunCheckpoints", "attempt_of", "preempt_file", "read_state", "request_preemption"]
