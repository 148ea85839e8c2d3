"""The `powerplane` command line: servers (scheduler, agent, demo) and the tenant
and operator commands. `main()` is the console script."""
