"""Powerplane's site agent: one stream to the scheduler (`session`), AI runs on the
site's Ray cluster through the Ray Jobs API (`ray_runner`)."""

__version__ = "0.1.0"
