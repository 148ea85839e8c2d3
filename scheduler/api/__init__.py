"""The wire layer: generated protobuf modules in `v1/` (never edited; run
scripts/gen_proto.py) and `convert`, the one module that maps them to core types."""
