"""Where the data sets are: the one resolver of the simulator, the demo's inference load,
the examples, the benchmarks and the tests.

`data_dir()` is `$POWERPLANE_DATA_DIR` when it is set (used as given, even if it does not
exist: a missing file then says so); else `../shared/data` beside the repository when it
is there (a checkout with the full data); else the sample shipped in the package,
`sample_data/` (two weeks of the ERCOT trace, 30 minutes of the Azure traces, the Zeus
files whole; its SOURCES.md says what was taken from where). `find(folder, pattern)`
is the last file of a kind in a folder, else `MissingData`, whose message names the
options and the variable that choose another (`choose`).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "POWERPLANE_DATA_DIR"
REPO = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO.parent / "shared" / "data"
SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"

ERCOT = "ercot_hb_south_15min_*.csv"  # ERCOT HB_SOUTH prices (full trace: ..._2024-06_2025-03.csv)
AZURE = "azure_llm_inference_*.csv"  # Azure LLM inference arrivals, conversation and code
AZURE_CONVERSATION = "azure_llm_inference_conv_*.csv"
ZEUS = "zeus_*_power_limit_vs_epoch_time.csv"  # Zeus power limit vs epoch time, per GPU


class MissingData(FileNotFoundError):
    """A data file that is not there; its message names how to choose another."""


def data_dir() -> Path:
    """$POWERPLANE_DATA_DIR, else ../shared/data when it is there, else the shipped sample."""
    chosen = os.environ.get(ENV)
    if chosen:
        return Path(chosen)
    return SHARED_DIR if SHARED_DIR.is_dir() else SAMPLE_DIR


def is_sample(path: Path) -> bool:
    """Whether `path` is the shipped sample or a file in it."""
    path = Path(path).resolve()
    return path == SAMPLE_DIR or SAMPLE_DIR in path.parents


def find_all(folder: Path, pattern: str) -> list[Path]:
    return sorted(Path(folder).glob(pattern))


def choose(data_flag: str = "", default: bool = True) -> str:
    """How to choose the data folder: `data_flag` (a command's option, e.g. --data-dir) or
    the variable; `default`: and what is used without them."""
    how = f"{data_flag} or ${ENV}" if data_flag else f"${ENV}"
    tail = f" (default: ../shared/data beside the repository, else the sample in {SAMPLE_DIR})" if default else ""
    return f"choose the data folder with {how}{tail}"


def find(folder: Path, pattern: str, file_flag: str = "", data_flag: str = "") -> Path:
    """The last file (by name) matching `pattern` in `folder`; MissingData naming
    `file_flag` (the command's option for this very file, if any) and how to choose the
    data folder (`data_flag`, the command's option for it, if any, and the variable)."""
    found = find_all(folder, pattern)
    if found:
        return found[-1]
    where = "the folder does not exist" if not Path(folder).is_dir() else "no such file there"
    own = f"give the file with {file_flag}, or " if file_flag else ""
    raise MissingData(f"no {pattern} in {folder} ({where}): {own}{choose(data_flag)}")
