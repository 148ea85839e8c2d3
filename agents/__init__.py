"""Powerplane's site agent: one stream to the scheduler (`session`), AI runs on the
site's Ray cluster through the Ray Jobs API (`ray_runner`), and the site's power
(`site_power`: its profile from `site_config`, miner fleets behind `miners.fleet_driver`'s
interface, GPU power from `gpu_power`, and `power_guard`, which holds the cap locally).
The core works on plain types (the scheduler core's `JobSpec`, `RunReport`, orders and
`Fleet`); protobuf is converted once, at the session boundary, by `wire`."""

__version__ = "0.1.0"
