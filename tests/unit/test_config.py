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
    assert sorted(config.token_owners().values()) == [("operator", "ops", "operator"), ("site", "us-1", "site"), ("tenant", "acme", "member")]
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


@pytest.mark.parametrize(
    "text,message",
    [
        ("tenants: {acme: sh0rt-t0ken}\nlistn: 1\n", "tenants: token of 'acme' is shorter than 16 characters; listn: Extra inputs are not permitted"),
        ("tenants: {acme: [1\n", "not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
        ("- 1\n", "Input should be a valid dictionary or instance of SchedulerConfig"),
        ("tokens_file: t.yaml\n", "tokens_file t.yaml: sites: token of 's-1' is shorter than 16 characters"),
    ],
)
def test_a_refusal_is_one_line_naming_the_field_and_never_quoting_a_token(tmp_path, text, message):
    (tmp_path / "t.yaml").write_text("sites: {s-1: sh0rt-t0ken}\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert str(err.value) == message
