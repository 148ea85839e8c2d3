"""Reading the simulator's input files: one error type naming the file and the line
or field at fault, YAML that remembers line numbers, CSV rows with their line numbers,
and times (ISO timestamps, epoch seconds, or offsets such as `+1d14h` from the start).

Naive timestamps are read as UTC: the ERCOT trace's timestamps are evenly spaced
every 15 minutes with no daylight-saving jumps, so they are a fixed-offset clock.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


class InputError(Exception):
    """A bad input file: the message names the file and where in it."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, field: str = ""):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")
        self.path, self.line, self.field = str(path), line, field


class LineDict(dict):
    """A YAML mapping that remembers the line of each of its keys (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    mapping = LineDict(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise InputError(path, f"bad YAML: {err.problem or err.context}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise InputError(path, f"bad YAML: {err}") from None


def line_of(mapping: Any, key: str | None = None) -> int | None:
    if not isinstance(mapping, LineDict):
        return None
    return mapping.key_lines.get(key, mapping.line) if key else mapping.line


def read_csv(path: Path, required: tuple[str, ...] = ()) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and (line number, row) pairs of a CSV file; refuses missing columns."""
    try:
        handle = Path(path).open(newline="")
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from None
    reader = csv.DictReader(handle)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        handle.close()
        raise InputError(path, "empty file: expected a CSV header line", 1)
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        handle.close()
        raise InputError(path, f"missing column(s) {', '.join(missing)} (header has: {', '.join(header)})", 1)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with handle:
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue
                yield reader.line_num, row

    return header, rows()


def number(path: Path, line: int | None, field: str, text: Any, integer: bool = False, minimum: float | None = None) -> float:
    """`text` as a finite number (an int when `integer`), or an InputError naming where."""
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        raise InputError(path, f"expected a number, got {text!r}", line, field) from None
    if not math.isfinite(value):
        raise InputError(path, f"expected a finite number, got {text!r}", line, field)
    if integer:
        if value != int(value):
            raise InputError(path, f"expected a whole number, got {text!r}", line, field)
        value = int(value)
    if minimum is not None and value < minimum:
        raise InputError(path, f"must be >= {minimum:g}, got {text!r}", line, field)
    return value


_OFFSET = re.compile(r"^\+\s*((?:\d+(?:\.\d+)?\s*[dhms]\s*)+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_time(text: Any, start: float | None = None) -> float:
    """Epoch seconds of an ISO timestamp (naive: UTC), of a number (epoch seconds, or
    seconds after `start` when `start` is given), or of an offset like `+1d14h30m`
    (after `start`). Raises ValueError."""
    if isinstance(text, dt.datetime):
        return (text if text.tzinfo else text.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(text, dt.date):
        return dt.datetime(text.year, text.month, text.day, tzinfo=dt.UTC).timestamp()
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text) + (start or 0.0)
    s = str(text).strip()
    offset = _OFFSET.match(s)
    if offset:
        if start is None:
            raise ValueError(f"{s!r} is an offset but there is no start to count from")
        return start + sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(offset.group(1)))
    try:
        return float(s) + (start or 0.0)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"not a time: {s!r} (use an ISO timestamp, seconds, or an offset like +1d6h)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def iso(t: float) -> str:
    """An epoch time as the naive ISO timestamp the traces use."""
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
