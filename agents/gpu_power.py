"""The site's GPU power, as a fake NVML: what the GPU nodes draw given the runs on
them and each run's power cap.

The contract (see RunPowerCap, scheduler/core/ledger.py): a run's GPUs are capped to
a fraction of their load power, so

    GPU IT power = all GPUs x gpu_idle_w + for each active run: gpus x (gpu_load_w x fraction - gpu_idle_w)

A fraction is clamped to [gpu_idle_w / gpu_load_w, 1]: a capped GPU draws no less
than idle, as NVML's lowest power limit. Real power limits (nvmlDeviceSetPowerManagementLimit)
come later; this model makes the heartbeat carry what the scheduler expects.
"""

from __future__ import annotations

from collections.abc import Iterable


def gpu_it_power_w(total_gpus: int, gpu_load_w: float, gpu_idle_w: float, runs: Iterable[tuple[int, float]]) -> float:
    """IT power of the GPU nodes: `runs` are (gpus, power_fraction) of the active runs."""
    lowest = gpu_idle_w / gpu_load_w if gpu_load_w > 0 else 0.0
    power = max(0, total_gpus) * gpu_idle_w
    for gpus, fraction in runs:
        fraction = min(1.0, max(lowest, fraction))
        power += max(0, gpus) * (gpu_load_w * fraction - gpu_idle_w)
    return power


class EmulatedGpus:
    """Per-run GPU counts and power caps of one site; power of the runs that are active."""

    def __init__(self, gpu_load_w: float, gpu_idle_w: float, total_gpus: int = 0):
        self.gpu_load_w = gpu_load_w
        self.gpu_idle_w = gpu_idle_w
        self.total_gpus = total_gpus
        self.run_gpus: dict[str, int] = {}
        self.fractions: dict[str, float] = {}

    def add_run(self, run_id: str, gpus: int) -> None:
        self.run_gpus[run_id] = max(0, int(gpus))

    def set_power_fraction(self, run_id: str, fraction: float) -> None:
        """Cap a run's GPUs (kept even if the run is not known yet: its start may follow)."""
        self.fractions[run_id] = fraction

    def forget(self, run_id: str) -> None:
        self.run_gpus.pop(run_id, None)
        self.fractions.pop(run_id, None)

    def power_w(self, active_run_ids: Iterable[str]) -> float:
        runs = [(self.run_gpus.get(r, 0), self.fractions.get(r, 1.0)) for r in active_run_ids]
        return gpu_it_power_w(self.total_gpus, self.gpu_load_w, self.gpu_idle_w, runs)
