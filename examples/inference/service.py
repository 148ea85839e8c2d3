"""A CPU stand-in for an LLM inference service on Ray Serve: `examples.inference.service:app`.

Each request says how long its prompt is and how many tokens to generate (as the
Azure LLM inference trace records them); the replica "runs" it for as long as a
GPU would: a fixed overhead, a prefill cost per prompt token and a decode cost per
generated token (about 40 ms for the trace's median conversation request, at most
`MAX_MS`). The time is spent waiting, not computing, as a GPU-bound server's CPU
would, so many replicas fit on a small machine; each replica runs at most `SLOTS`
requests at once (its batch), so more replicas really serve more.

    POST /<job id>  {"prompt_tokens": 1020, "max_tokens": 129}   (or {"prompt": "some text"})
    -> {"generated_tokens": 129, "latency_ms": 38.3, "replica": "...", "run": "JOB-r1"}

Its job spec: kind INFERENCE, serve.import_path "examples.inference.service:app",
serve.min_replicas / max_replicas / target_rps_per_replica (see docs/inference.md).
"""

from __future__ import annotations

import asyncio
import os
import time

from ray import serve

OVERHEAD_MS = 2.0
PREFILL_MS_PER_TOKEN = 0.004
DECODE_MS_PER_TOKEN = 0.25
MAX_MS = 120.0
SLOTS = 2  # requests a replica runs at once
MAX_TOKENS = 4096


def service_time_ms(prompt_tokens: int, generated_tokens: int) -> float:
    """How long a GPU-served LLM would take for this request (ms)."""
    return min(MAX_MS, OVERHEAD_MS + PREFILL_MS_PER_TOKEN * prompt_tokens + DECODE_MS_PER_TOKEN * generated_tokens)


@serve.deployment(max_ongoing_requests=8, ray_actor_options={"num_cpus": 0})
class StandInLLM:
    def __init__(self):
        self.slots = asyncio.Semaphore(SLOTS)
        self.run_id = os.environ.get("POWERPLANE_RUN_ID", "")

    async def __call__(self, request) -> dict:
        body = {}
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = {}
        prompt = body.get("prompt")
        prompt_tokens = len(str(prompt).split()) if prompt is not None else int(body.get("prompt_tokens", 0))
        wanted = int(body.get("max_tokens", 16))
        prompt_tokens, wanted = max(0, min(prompt_tokens, 32 * MAX_TOKENS)), max(0, min(wanted, MAX_TOKENS))
        started = time.perf_counter()
        async with self.slots:
            await asyncio.sleep(service_time_ms(prompt_tokens, wanted) / 1000)
        return {
            "generated_tokens": wanted,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "replica": serve.get_replica_context().replica_id.unique_id,
            "run": self.run_id,
        }


app = StandInLLM.bind()
