"""Writing results: atomic files (temp + rename) so that a killed run never leaves half a CSV."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import yaml


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV with fixed float formatting, so that identical results give identical bytes."""
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


def write_json(data: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_yaml(data: dict, path: Path) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
