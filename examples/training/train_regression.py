"""Example training workload: a small PyTorch model trained with Ray Train (CPU here),
checkpointing every N steps through Powerplane's checkpoint contract.

    python examples/training/train_regression.py --steps 200 --checkpoint-every 20

Data-parallel over `--workers` Ray Train workers (gloo on CPU, DDP). Step k's batch is
generated from seed k, so a run resumed from a checkpoint trains exactly as an
uninterrupted run would: the final weights are the same, bit for bit.

On a Powerplane site (docs/checkpoints.md) it resumes from POWERPLANE_RESUME_FROM,
writes checkpoints under POWERPLANE_CHECKPOINT_DIR and, when POWERPLANE_PREEMPT_FILE
appears, writes a checkpoint at once and exits 0. Rank 0 writes; every rank agrees on
stopping at the same step (an all-reduce of the flag), so DDP never hangs half-way.

Outside Powerplane, `--checkpoint-dir` names the directory. At the end it writes
`result.json` (steps, final loss, a hash of the weights) into the checkpoint directory,
and each run appends a line to `history.jsonl` (where it started, on which site).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import ray
import ray.train
import torch
import torch.distributed as dist
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from powerplane_sdk.checkpoints import RunCheckpoints

FEATURES = 32


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))


def batch(step: int, rank: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step `step`'s shard for `rank`: deterministic, so a resumed run sees the same data."""
    gen = torch.Generator().manual_seed(step * 1000 + rank)
    x = torch.randn(size, FEATURES, generator=gen)
    true_w = torch.linspace(-1, 1, FEATURES)
    y = (x @ true_w).unsqueeze(1) + 0.1 * torch.randn(size, 1, generator=gen)
    return x, y


def weights_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def train_loop(config: dict) -> None:
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    # Progress every step (a small local file): the work a hard stop loses is then known to the step.
    ckpt = RunCheckpoints(config["dir"], config["resume_from"], config["resume_step"], config["preempt_file"], progress_every_s=0.0)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = 0
    if ckpt.resume_step and ckpt.resume_path:
        state = torch.load(os.path.join(ckpt.resume_path, "state.pt"), weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    ddp = ray.train.torch.prepare_model(model)
    if rank == 0:
        with open(os.path.join(ckpt.uri, "history.jsonl"), "a") as out:
            out.write(json.dumps({"run": config["run_id"], "site": config["site"], "start_step": step, "at": time.time()}) + "\n")
    loss_value = float("nan")
    while step < config["steps"]:
        x, y = batch(step, rank, config["batch"])
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(ddp(x), y)
        loss.backward()
        optimizer.step()
        step += 1
        loss_value = loss.item()
        if config["step_sleep_s"]:
            time.sleep(config["step_sleep_s"])  # stands in for a bigger model's step time
        stop = torch.tensor([1.0 if ckpt.preempt_requested(poll_every_s=0.0) else 0.0])
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)  # every rank stops at the same step
        preempted = stop.item() > 0
        if rank == 0:
            ckpt.progress(step)
            if step % config["every"] == 0 or preempted or step == config["steps"]:
                path = ckpt.path_for(step)
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, os.path.join(path, "state.pt"))
                ckpt.commit(step)
        if step % config["every"] == 0 or preempted:
            ray.train.report({"step": step, "loss": loss_value})
        if preempted:
            print(f"preemption requested: checkpointed step {step}, exiting", flush=True)
            return
    if rank == 0:
        result = {"steps": step, "loss": loss_value, "weights": weights_hash(model)}
        with open(os.path.join(ckpt.uri, "result.json"), "w") as out:
            json.dump(result, out)
        print(f"finished: {result}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--step-sleep-s", type=float, default=0.05)
    parser.add_argument("--checkpoint-dir", default="", help="outside Powerplane: where checkpoints go")
    args = parser.parse_args(argv)
    ckpt = RunCheckpoints.from_env(args.checkpoint_dir)  # resolves the resume point on the driver
    if not ckpt.uri.startswith("/") and not ckpt.uri.startswith("file://"):
        raise SystemExit("this example writes with local file APIs: use a local checkpoint directory")
    run_id = os.environ.get("POWERPLANE_RUN_ID", "local")
    site_resource = os.environ.get("POWERPLANE_SITE_RESOURCE", "")
    per_worker: dict[str, float] = {"CPU": 0.25}
    if site_resource:
        per_worker[site_resource] = 0.001  # train on this site's nodes
    uri = ckpt.uri.removeprefix("file://")
    config = {
        "dir": uri,
        "resume_from": ckpt.resume_path.removeprefix("file://"),
        "resume_step": ckpt.resume_step,
        "preempt_file": ckpt.preempt_uri,
        "steps": args.steps,
        "every": max(1, args.checkpoint_every),
        "batch": args.batch,
        "step_sleep_s": args.step_sleep_s,
        "run_id": run_id,
        "site": os.environ.get("POWERPLANE_SITE", ""),
    }
    print(f"run {run_id}: resuming from step {ckpt.resume_step}" if ckpt.resume_step else f"run {run_id}: starting from scratch", flush=True)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=False, resources_per_worker=per_worker),
        run_config=RunConfig(storage_path=os.path.join(uri, "ray_train"), name=run_id),
    )
    trainer.fit()


if __name__ == "__main__":
    main()
