"""Numpy arrays kept once per machine in the cache folder, so each process maps or reads them
instead of redoing the work that produced them (unpacking, rebuilding tables).

Simplifies: one folder per entry, written under a temporary name and renamed, so a reader sees a
complete folder or none; when several processes write at once, the first complete folder wins.
Failures are silent: the caller then does the slow work itself, as it would without a cache.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_META = "meta.json"


def load(folder: Path, names: Collection[str], mapped: Collection[str] = ()) -> dict[str, Any] | None:
    """The arrays `names` (those in `mapped` memory-mapped), or None when the folder is missing
    or unreadable."""
    try:
        return {n: np.load(folder / f"{n}.npy", mmap_mode="r" if n in mapped else None) for n in names}
    except (OSError, ValueError):
        return None


def load_meta(folder: Path) -> Any:
    """What `save` was given as `meta`, or None."""
    try:
        return json.loads((folder / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def save(folder: Path, arrays: Mapping[str, np.ndarray], meta: Any = None) -> None:
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for name, value in arrays.items():
            np.save(tmp / f"{name}.npy", value, allow_pickle=False)
        if meta is not None:
            (tmp / _META).write_text(json.dumps(meta), encoding="utf-8")
        tmp.replace(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
