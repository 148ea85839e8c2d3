"""The scheduler's config file: defaults, tokens file, and clear refusals."""

import pytest
import yaml

from scheduler.server.config import load_config


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_tokens_file_is_merged_and_paths_are_relative_to_the_config(tmp_path):
    write(tmp_path / "tokens.yaml", {"tenants": {"acme": "a" * 32}, "sites": {"us-1": "s" * 32}})
    config = load_config(write(tmp_path / "s.yaml", {"database": "db/pp.db", "tokens_file": "tokens.yaml", "operators": {"ops": "o" * 32}}))
    assert config.database == tmp_path / "db/pp.db"
    assert config.token_owners() == {"a" * 32: ("tenant", "acme"), "s" * 32: ("site", "us-1"), "o" * 32: ("operator", "ops")}
    assert config.site_timeout_s == 30.0 and config.regions == ["us", "eu"]


@pytest.mark.parametrize(
    "data,message",
    [
        ({"tenants": {"acme": "short"}}, "shorter than 16 characters"),
        ({"tenants": {"acme": "x" * 20}, "sites": {"us-1": "x" * 20}}, "the same token is given to"),
        ({"regions": ["US East"]}, "must be lowercase"),
        ({"site_timeout_s": 4, "heartbeat_interval_s": 5}, "at most half of site_timeout_s"),
        ({"listn": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configs_are_refused(tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        load_config(write(tmp_path / "s.yaml", data))
