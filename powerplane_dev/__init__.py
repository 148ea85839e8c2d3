"""Dev-only code: a whole Powerplane on one machine (`cluster`: local Ray, the scheduler
and site agents as subprocesses on loopback) and the live demo built on it (`demo`).

Used by the integration tests, the benchmarks and `powerplane demo`. The production
packages (`scheduler`, `agents`) never import it; the one exception is the CLI's `demo`
command, the composition root, which imports `powerplane_dev.demo` lazily. The container
image does not ship it (see the Dockerfile). The import-linter contracts in pyproject.toml
hold this.
"""
