"""Job logs, read on demand: the scheduler asks a run's agent for the end of its Ray job
logs (`FetchRunLogs`, an order that changes nothing) and the agent answers (`RunLogs`);
`tail` is the one rule for what "the end" is, applied by the agent and checked again by
the scheduler. docs/jobs.md "Logs" says the rest (scheduler/server/log_requests.py waits
for the answer; agents/session.py reads Ray).

`tail(text, lines, max_bytes)`: the last `lines` lines (0: every line), then at most
`max_bytes` bytes of UTF-8, dropping whole lines from the front; only when the last line
alone is longer than that is it cut inside, at a character boundary. `truncated` says
whether anything was left out."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TAIL_LINES = 1000
DEFAULT_MAX_BYTES = 1024 * 1024
MAX_BYTES = 2 * 1024 * 1024  # within gRPC's 4 MiB message limit, with room for the rest
MAX_ERROR = 2000


@dataclass(frozen=True)
class FetchRunLogs:
    """Ask `site_id`'s agent for the end of run `run_id`'s logs; answered by request id."""

    site_id: str
    request_id: str
    run_id: str
    tail_lines: int
    max_bytes: int


@dataclass(frozen=True)
class RunLogs:
    """An agent's answer: the text, or `error` (`missing`: Ray has no job for the run)."""

    request_id: str
    run_id: str
    text: str = ""
    truncated: bool = False
    error: str = ""
    missing: bool = False


def tail(text: str, lines: int, max_bytes: int) -> tuple[str, bool]:
    """(the end of `text`: at most `lines` lines, 0: all, and `max_bytes` bytes; whether anything was left out)."""
    max_bytes = max(1, max_bytes)
    truncated = False
    if lines > 0:
        cut = len(text) - 1 if text.endswith("\n") else len(text)  # a final newline ends the last line, it starts none
        for _ in range(lines):
            cut = text.rfind("\n", 0, cut)
            if cut < 0:
                break
        if cut >= 0:
            text, truncated = text[cut + 1 :], True
    if len(text) <= max_bytes // 4:  # no character is over 4 bytes: it fits without encoding
        return text, truncated
    data = text.encode()
    if len(data) <= max_bytes:
        return text, truncated
    start = len(data) - max_bytes
    end = data[start:]
    newline = -1 if data[start - 1] == ord("\n") else end.find(b"\n")  # -1: it starts a line already
    if 0 <= newline < len(end) - 1:
        end = end[newline + 1 :]  # whole lines only
    # else the last line alone is longer than max_bytes: its end, from a character boundary
    return end.decode(errors="ignore"), True
