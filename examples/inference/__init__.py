"""An example Serve inference service (see service.py and docs/inference.md)."""
