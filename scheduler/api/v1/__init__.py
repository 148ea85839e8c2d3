"""Generated from proto/powerplane/v1 by scripts/gen_proto.py. Do not edit."""
