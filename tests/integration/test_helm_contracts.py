"""The chart's `scheduler.contracts` and `scheduler.fairShare` values, rendered into
scheduler.yaml's `contracts:` and `fair_share:` and loaded by the real load_config into the
core's TenancyPolicy; left at their defaults, neither is rendered."""

from __future__ import annotations

import yaml

from tests.integration.helm_support import load_rendered_config, render, rendered, scheduler_config, template


def test_contracts_and_weights_are_rendered_and_load(tmp_path):
    from scheduler.server.config import tenancy_policy

    values = tmp_path / "contracts.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "scheduler": {
                    "contracts": [
                        {"tenant": "acme", "region": "us", "firm_gpus": 512, "firm_mw": 0.8, "burst_gpus": 128, "class": "firm"},
                        {"tenant": "labs", "region": "eu", "firm_gpus": 64, "class": "interruptible"},
                    ],
                    "fairShare": {"weights": {"acme": 2}, "reclaimGraceSeconds": 300, "cutOrder": ["borrowed", "interruptible", "firm"]},
                }
            }
        )
    )
    docs = rendered(template(values=(values,)))
    cfg = scheduler_config(docs)
    assert cfg["contracts"][0] == {"tenant": "acme", "region": "us", "firm_gpus": 512, "firm_mw": 0.8, "burst_gpus": 128, "class": "firm"}
    assert cfg["fair_share"] == {"weights": {"acme": 2}, "reclaim_grace_s": 300, "cut_order": ["borrowed", "interruptible", "firm"]}
    policy = tenancy_policy(load_rendered_config(docs, tmp_path))
    assert policy.contract("acme", "us").burst_gpus == 128 and policy.contract("labs", "eu").service_class == "interruptible"
    assert policy.weight("acme") == 2.0 and policy.reclaim_grace_s == 300


def test_defaults_render_no_contracts_and_a_bad_class_is_refused():
    cfg = scheduler_config(render("default"))
    assert "contracts" not in cfg and "fair_share" not in cfg
    result = template(sets=("scheduler.contracts[0].tenant=acme", "scheduler.contracts[0].region=us", "scheduler.contracts[0].class=gold"))
    assert result.returncode != 0 and "class" in result.stderr
