"""The simulator: replays price, hashprice, job and grid-event traces through the pure
core (placement, dispatch, ladder, admission) on a fake clock, against a physical
model of each site (fleets ramping at their model's rates, an agent that applies
orders and returns readings late). No Ray, no gRPC, no network, no wall clock.

Modules: files (input errors, YAML with line numbers, times), traces (prices and
hashprice), zeus (the Zeus measurements behind the capped-training speed curve),
scenario (sites, events, job arrivals), services (how training checkpoints, what
inference services serve), workload (jobs generated from the Azure trace), physics
(what a site really draws, stops with checkpoint grace), engine (the tick loop),
tally (running job counts, so finished jobs can be dropped), report (summary and
streamed time series), plot (power.png), cli (`powerplane simulate`).
"""
