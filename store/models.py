"""Fitted shared models kept between runs: one ``.npz`` file per model in a directory beside the data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


class ModelFiles:
    """``ModelStore`` on files. A save replaces the file atomically, so a reader sees the old model or the new."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.npz"

    def save(self, name: str, arrays: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{name}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(self.path(name))

    def load(self, name: str) -> dict[str, Any] | None:
        path = self.path(name)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
