"""Powerplane's central scheduler: pure decisions in `core`, wire types in `api`,
persistence in `store`, the gRPC shell in `server`."""

__version__ = "0.1.0"
