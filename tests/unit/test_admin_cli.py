"""`powerplane admin` and the config's `store` section: migrate reports from -> to and is
idempotent on both stores, backup copies a live SQLite store and names pg_dump for
PostgreSQL, the DSN file is resolved like other paths and never printed."""

import shutil
from pathlib import Path

import pytest
import yaml

from scheduler.cli.main import main
from scheduler.server.config import load_config
from scheduler.server.stores import describe_store, open_store
from scheduler.store.sqlite import MIGRATIONS, SqliteStore
from tests.builders import a_job

NEWEST = MIGRATIONS[-1].version
RELEASE_0_1_0 = Path(__file__).parent.parent / "fixtures" / "store-0.1.0.sqlite"


def write_config(tmp_path, **fields) -> Path:
    path = tmp_path / "scheduler.yaml"
    path.write_text(yaml.safe_dump({"database": "db/pp.db", **fields}))
    return path


def postgres_config(tmp_path, dsn: str) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pg.dsn").write_text(dsn + "\n")
    return write_config(tmp_path, store={"postgres": {"dsn_file": "secrets/pg.dsn", "pool_size": 2}})


def test_without_a_store_section_the_store_is_sqlite_at_database(tmp_path):
    config = load_config(write_config(tmp_path))
    assert config.store.postgres is None
    assert describe_store(config) == f"SQLite at {tmp_path / 'db/pp.db'}"
    store = open_store(config)
    assert isinstance(store, SqliteStore) and store.path == str(tmp_path / "db/pp.db")
    store.close()


def test_the_dsn_file_is_resolved_against_the_config_and_checked(tmp_path):
    config = load_config(postgres_config(tmp_path, "host=db.example password=s3cret-pw"))
    assert config.store.postgres.dsn_file == tmp_path / "secrets" / "pg.dsn"
    assert config.store.postgres.read_dsn() == "host=db.example password=s3cret-pw"
    assert describe_store(config) == f"PostgreSQL (DSN from {tmp_path / 'secrets' / 'pg.dsn'})"
    assert "s3cret" not in repr(config) + describe_store(config)


@pytest.mark.parametrize(
    "store,message",
    [
        ({"postgres": {"dsn_file": "missing.dsn"}}, "store.postgres.dsn_file: {tmp}/missing.dsn not found"),
        ({"postgres": {"dsn_file": "empty.dsn"}}, "store.postgres.dsn_file: {tmp}/empty.dsn is empty"),
        ({"postgres": {}}, "store.postgres.dsn_file: Field required"),
        ({"postgres": {"dsn_file": "empty.dsn", "pool_size": 0}}, "store.postgres.pool_size: Input should be greater than or equal to 1"),
        ({"mysql": {}}, "store.mysql: Extra inputs are not permitted"),
    ],
)
def test_a_bad_store_section_is_a_one_line_config_error(tmp_path, store, message):
    (tmp_path / "empty.dsn").write_text("\n")
    with pytest.raises(ValueError) as refused:
        load_config(write_config(tmp_path, store=store))
    assert str(refused.value) == message.format(tmp=tmp_path)


def test_admin_migrate_upgrades_a_release_0_1_0_database_and_is_idempotent(tmp_path, capsys):
    config = write_config(tmp_path)
    (tmp_path / "db").mkdir()
    shutil.copy(RELEASE_0_1_0, tmp_path / "db" / "pp.db")
    assert main(["admin", "migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"SQLite at {tmp_path / 'db/pp.db'}: schema version 1 (adopted: written before schema versions) -> {NEWEST}\n"
    assert main(["admin", "migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out.endswith(f": schema at version {NEWEST}: up to date\n")


def test_admin_migrate_on_postgres_and_a_newer_schema_refused(postgres_dsn, tmp_path, capsys):
    config = postgres_config(tmp_path, postgres_dsn)
    assert main(["admin", "migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"PostgreSQL (DSN from {tmp_path / 'secrets' / 'pg.dsn'}): schema version 0 -> {NEWEST}\n"
    assert main(["admin", "migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out.endswith(f"schema at version {NEWEST}: up to date\n")
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 'from the future', 0)", (NEWEST + 1,))
    assert main(["admin", "migrate", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"powerplane admin migrate: PostgreSQL database: schema version {NEWEST + 1} is newer than this powerplane knows ({NEWEST})")
    assert err.count("\n") == 1


def test_admin_backup_copies_a_sqlite_store_while_it_is_open(tmp_path, capsys):
    config = write_config(tmp_path)
    live = SqliteStore(tmp_path / "db" / "pp.db")  # the scheduler, still running
    job = a_job().build()
    live.commit([job], [], [])
    try:
        assert main(["admin", "backup", "--config", str(config), "--to", str(tmp_path / "b" / "copy.db")]) == 0
        assert capsys.readouterr().out == f"backed up {tmp_path / 'db/pp.db'} to {tmp_path / 'b' / 'copy.db'}\n"
        live.commit([a_job().build()], [], [])  # the live store goes on
        assert main(["admin", "backup", "--config", str(config), "--to", str(tmp_path / "b" / "copy.db")]) == 1
        assert "exists: back up to a new file" in capsys.readouterr().err
    finally:
        live.close()
    copy = SqliteStore(tmp_path / "b" / "copy.db")
    assert copy.load().jobs == [job]
    assert copy.schema_version() == (NEWEST, False)
    copy.close()


def test_admin_backup_of_a_missing_sqlite_database_creates_nothing(tmp_path, capsys):
    assert main(["admin", "backup", "--config", str(write_config(tmp_path)), "--to", str(tmp_path / "copy.db")]) == 1
    assert capsys.readouterr().err == f"powerplane admin backup: no database at {tmp_path / 'db/pp.db'}\n"
    assert not (tmp_path / "db").exists() and not (tmp_path / "copy.db").exists()


def test_admin_backup_of_postgres_names_pg_dump_and_never_the_dsn(tmp_path, capsys):
    config = postgres_config(tmp_path, "host=db.example user=pp password=s3cret-pw")
    assert main(["admin", "backup", "--config", str(config), "--to", "pp.dump"]) == 2
    out = capsys.readouterr()
    assert f'pg_dump --format=custom --file=pp.dump --dbname="$(cat {tmp_path / "secrets" / "pg.dsn"})"' in out.err
    assert "s3cret" not in out.out + out.err


def test_admin_commands_need_no_token(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("POWERPLANE_TOKEN", raising=False)
    assert main(["admin", "migrate", "--config", str(write_config(tmp_path))]) == 0
    assert main(["admin", "migrate", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "powerplane admin migrate: bad config" in capsys.readouterr().err


def test_the_scheduler_refuses_to_start_on_a_newer_schema_in_one_line(tmp_path, capsys):
    config = write_config(tmp_path, listen="256.0.0.1:1")  # were the store to open, serving would fail at once, not run on
    store = SqliteStore(tmp_path / "db" / "pp.db")
    store._db.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    store.close()
    assert main(["scheduler", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"powerplane scheduler: {tmp_path / 'db/pp.db'}: schema version 99 is newer than this powerplane knows ({NEWEST}); "
        "run the powerplane that wrote it (or newer), or restore a backup taken before the upgrade\n"
    )
