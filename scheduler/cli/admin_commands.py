"""`powerplane admin`: maintenance of the scheduler's store, run beside the scheduler on
its config file; no scheduler connection and no token needed, but for `reload`.

    powerplane admin migrate --config scheduler.yaml    # schema to the newest version (idempotent)
    powerplane admin backup --config scheduler.yaml --to backup.db
    powerplane admin certs --out certs/ --sites us-1,eu-1 --clients ops --server-names scheduler.example
    powerplane admin hash-token < token.txt              # prints sha256:<hex>, for the config's token maps
    powerplane admin reload --scheduler a:50051,b:50051 [--dry-run]   # with an operator token: every
                                                         # replica listed reads its config file again

`reload` (docs/reload.md) prints per replica what changed, or why nothing was applied (the
fields only a restart changes); exit code 1 if any replica refused or was not reached.

`certs` writes a CA (reused when --out already holds one), the scheduler's server
certificate and a client certificate per site and per user for mutual TLS (docs/security.md).

`backup` copies a SQLite database online (SQLite's backup API: consistent while the
scheduler writes). For PostgreSQL it prints the pg_dump command to use and exits 2.
Exit codes: 0 done, 1 the store failed, 2 bad config or nothing this command can do.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def add_parser(sub, client_parent: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Register `admin` and its subcommands on the `powerplane` subcommands (`client_parent`:
    the client options, --scheduler, --token and TLS, which `admin reload` takes)."""
    p = sub.add_parser("admin", help="maintain the scheduler's store (migrate, backup), write mTLS certificates (certs), reload its config")
    admin = p.add_subparsers(dest="admin_command", required=True, metavar="ADMIN_COMMAND")
    m = admin.add_parser("migrate", help="bring the store's schema to this release's version (the scheduler also does at start)")
    m.add_argument("--config", type=Path, required=True, help="scheduler config file (YAML)")
    m.set_defaults(run=migrate)
    b = admin.add_parser("backup", help="copy a SQLite store, online; for PostgreSQL, print the pg_dump command")
    b.add_argument("--config", type=Path, required=True, help="scheduler config file (YAML)")
    b.add_argument("--to", type=Path, required=True, help="the new backup file (must not exist)")
    b.set_defaults(run=backup)
    c = admin.add_parser("certs", help="write a CA, the scheduler's certificate and site/user client certificates for mutual TLS")
    c.add_argument("--out", type=Path, required=True, help="folder for the PEM files (keys 0600); an existing ca.crt/ca.key there is reused")
    c.add_argument("--sites", default="", help="comma-separated site ids: one client certificate each (spiffe://powerplane/site/<id>)")
    c.add_argument("--clients", default="", help="comma-separated tenant/operator user names: one client certificate each")
    c.add_argument("--server-names", default="", help="comma-separated DNS names or IPs of the scheduler, besides 127.0.0.1 and localhost")
    c.add_argument("--days", type=int, default=365, help="validity of the issued certificates")
    c.add_argument("--new-ca", action="store_true", help="make a new CA even if --out holds one")
    c.set_defaults(run=certs)
    h = admin.add_parser("hash-token", help="print the hash (sha256:<hex>) of a bearer token read from stdin, to give in the config in its place")
    h.set_defaults(run=hash_token)
    r = admin.add_parser(
        "reload",
        parents=[client_parent] if client_parent is not None else [],
        help="make the scheduler read its config file again and apply what changes live (each replica in --scheduler; operator token)",
    )
    r.add_argument("--dry-run", action="store_true", help="show what would change and what only a restart changes; apply nothing")
    r.set_defaults(func=reload)
    return p


def reload_line(response) -> str:
    """One replica's answer, as `admin reload` prints it."""
    version = f"config {response.config_sha256[:12]}"
    changed = ", ".join(response.changed_sections)
    if response.refused:  # a dry run: a reload would be refused
        return f"{version}: would be refused (restart to change): " + "; ".join(response.refused)
    if not changed:
        return f"{version}: nothing changed"
    if not response.HasField("applied_at"):
        return f"{version}: would change {changed}"
    from scheduler.cli.render import when

    return f"{version}: {changed} changed, applied at {when(response.applied_at)} UTC"


def reload(client, args) -> int:
    import grpc
    from google.protobuf.json_format import MessageToDict

    addresses = client.targets.addresses
    failed = 0
    for address in addresses:
        replica = client if len(addresses) == 1 else client.replica(address)
        where = f"{address}: " if len(addresses) > 1 else ""
        try:
            response = replica.reload_config(args.dry_run)
        except grpc.RpcError as err:
            print(f"powerplane admin reload: {where}{err.code().name}: {err.details()}", file=sys.stderr)
            failed += 1
            continue
        finally:
            if replica is not client:
                replica.close()
        if args.output == "json":
            print(json.dumps({"scheduler": address, **MessageToDict(response, preserving_proto_field_name=True)}))
        else:
            print(where + reload_line(response))
        failed += bool(response.refused)
    return 1 if failed else 0


def hash_token(args) -> int:
    from scheduler.server.tokens import token_hash

    token = sys.stdin.readline().strip()
    if len(token) < 16:
        print("powerplane admin hash-token: give the token (at least 16 characters) on stdin", file=sys.stderr)
        return 2
    print(token_hash(token))
    return 0


def certs(args) -> int:
    from scheduler.server.certs import write_cert_set

    def listed(text: str) -> list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]

    made = write_cert_set(args.out, listed(args.sites), listed(args.clients), listed(args.server_names), args.days, args.new_ca)
    print(f"CA {made.ca_cert}; scheduler {made.server[0]}")
    for who, (cert, _key) in [*made.sites.items(), *made.clients.items()]:
        print(f"{who}: {cert}")
    return 0


def _config(args, command: str):
    from scheduler.server.config import load_config

    try:
        return load_config(args.config)
    except (OSError, ValueError) as err:
        print(f"powerplane admin {command}: bad config {args.config}: {err}", file=sys.stderr)
        return None


def migrate(args) -> int:
    from scheduler.server.stores import describe_store, open_store
    from scheduler.store.base import StoreError

    config = _config(args, "migrate")
    if config is None:
        return 2
    try:
        store = open_store(config, migrate=False)
        try:
            report = store.migrate()
        finally:
            store.close()
    except (OSError, StoreError) as err:
        print(f"powerplane admin migrate: {err}", file=sys.stderr)
        return 1
    print(f"{describe_store(config)}: {report.line()}")
    return 0


def backup(args) -> int:
    from scheduler.store.base import StoreError
    from scheduler.store.sqlite import backup as backup_sqlite

    config = _config(args, "backup")
    if config is None:
        return 2
    postgres = config.store.postgres
    if postgres is not None:
        dsn = f'"$(cat {shlex.quote(str(postgres.dsn_file))})"'
        print(
            "powerplane admin backup: the store is PostgreSQL; back it up with pg_dump (online, consistent):\n"
            f"  pg_dump --format=custom --file={shlex.quote(str(args.to))} --dbname={dsn}\n"
            "and restore with pg_restore --dbname=... (docs/store.md)",
            file=sys.stderr,
        )
        return 2
    try:
        backup_sqlite(config.database, args.to)
    except (OSError, StoreError) as err:
        print(f"powerplane admin backup: {err}", file=sys.stderr)
        return 1
    print(f"backed up {config.database} to {args.to}")
    return 0
