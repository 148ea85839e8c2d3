"""What a workload running under Powerplane may import: the run's side of its contracts
(checkpoints: powerplane_sdk.checkpoints). Small, with no scheduler or Ray imports."""
