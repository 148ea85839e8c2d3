"""docs/observability.md lists every metric series the scheduler and an agent export, and
names none they do not (a renamed metric breaks its docs, dashboards and alerts alike)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.exported_metrics import exported_metric_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def documented() -> set[str]:
    text = DOC.read_text()
    section = text[text.index("## Metrics") : text.index("## Logs")]
    return set(re.findall(r"`(powerplane_[a-z_]+)`", section))


def test_the_docs_name_every_exported_metric_and_no_other():
    exported = {n for n in exported_metric_names() if not n.endswith(("_bucket", "_sum", "_count", "_created"))}
    assert exported - documented() == set(), "exported but not documented"
    assert documented() - exported == set(), "documented but not exported"
