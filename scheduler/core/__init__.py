"""Pure decision logic: job model and state machine, validation, placement,
site liveness and run reconciliation. No I/O, no clock, no grpc, no ray here:
every function takes `now` (seconds) as an argument where time matters."""
