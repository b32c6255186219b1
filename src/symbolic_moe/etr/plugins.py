"""Expert tokens as plug-in files (ETR paper 3.6): one small `.npz` per expert holding its row of
W_E, its name and the meta model it was trained for. A directory of them, in the order listed by
its `experts.json`, is the expert head; adding an expert is writing one file and appending its
name, with nothing else retrained or rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

INDEX = "experts.json"


@dataclass(frozen=True)
class ExpertToken:
    name: str
    row: np.ndarray  # (d,) float32
    meta_model: str
    info: dict[str, Any] = field(default_factory=dict)  # query-set size, training settings, engine spec


def _file_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{safe}.npz"


def save_token(token: ExpertToken, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"name": token.name, "meta_model": token.meta_model, "info": token.info})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, row=np.asarray(token.row, dtype=np.float32), meta=np.array(meta))
    tmp.replace(path)
    return path


def load_token(path: str | Path) -> ExpertToken:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            row, meta = data["row"], json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not an expert-token plug-in file ({exc})") from exc
    if row.ndim != 1:
        raise DataError(f"{path}: expert token row must be a vector, got shape {row.shape}")
    return ExpertToken(meta["name"], row.astype(np.float32), meta["meta_model"], meta.get("info", {}))


@dataclass(frozen=True)
class ExpertHead:
    """W_E with its expert names, for one meta model."""

    meta_model: str
    tokens: tuple[ExpertToken, ...]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tokens]

    @property
    def rows(self) -> np.ndarray:
        return np.stack([t.row for t in self.tokens]) if self.tokens else np.zeros((0, 0), np.float32)

    @property
    def dim(self) -> int | None:
        return int(self.tokens[0].row.shape[0]) if self.tokens else None

    def __len__(self) -> int:
        return len(self.tokens)

    def append(self, new: Iterable[ExpertToken]) -> ExpertHead:
        """A head with `new` after the current experts: same meta model, same dimension, new names."""
        tokens = list(self.tokens)
        for token in new:
            if token.meta_model != self.meta_model:
                raise ConfigError(
                    f"expert '{token.name}' was trained for meta model '{token.meta_model}', not '{self.meta_model}'"
                )
            dim = int(tokens[0].row.shape[0]) if tokens else None
            if dim is not None and token.row.shape[0] != dim:
                raise ConfigError(f"expert '{token.name}' has dimension {token.row.shape[0]}, the head has {dim}")
            if any(t.name == token.name for t in tokens):
                raise ConfigError(f"expert '{token.name}' is already in the head")
            tokens.append(token)
        return ExpertHead(self.meta_model, tuple(tokens))

    @classmethod
    def from_rows(
        cls, meta_model: str, names: Sequence[str], rows: np.ndarray, info: dict[str, Any] | None = None
    ) -> ExpertHead:
        if len(names) != len(rows):
            raise ValueError(f"{len(names)} names for {len(rows)} rows")
        tokens = [
            ExpertToken(n, np.asarray(r, np.float32), meta_model, dict(info or {}))
            for n, r in zip(names, rows, strict=True)
        ]
        return cls(meta_model, ()).append(tokens)


def save_head(head: ExpertHead, directory: str | Path) -> Path:
    """Write every expert's plug-in file and the order index into `directory` (replacing its index)."""
    directory = Path(directory)
    files = [save_token(t, directory / _file_name(t.name)).name for t in head.tokens]
    (directory / INDEX).write_text(json.dumps({"meta_model": head.meta_model, "experts": files}, indent=1))
    return directory


def load_head(directory: str | Path, meta_model: str | None = None) -> ExpertHead:
    """The head in `directory`, in its index order; `meta_model` (if given) must match."""
    directory = Path(directory)
    index = directory / INDEX
    if not index.exists():
        raise DataError(f"{directory}: no {INDEX}; train expert tokens first (smoe etr train)")
    spec = json.loads(index.read_text())
    head = ExpertHead(spec["meta_model"], ())
    head = head.append(load_token(directory / f) for f in spec["experts"])
    if meta_model is not None and head.meta_model != meta_model:
        raise ConfigError(f"{directory}: expert tokens are for '{head.meta_model}', the meta model is '{meta_model}'")
    return head


def append_tokens(directory: str | Path, tokens: Sequence[ExpertToken]) -> ExpertHead:
    """Plug new experts into the head in `directory` (created if absent): old files are untouched."""
    directory = Path(directory)
    if (directory / INDEX).exists():
        head = load_head(directory)
    elif tokens:
        head = ExpertHead(tokens[0].meta_model, ())
    else:
        raise ConfigError("no expert tokens to append")
    head = head.append(tokens)  # validates before anything is written
    files = json.loads((directory / INDEX).read_text())["experts"] if (directory / INDEX).exists() else []
    new_files = [_file_name(t.name) for t in tokens]
    if len(set(new_files) | set(files)) < len(new_files) + len(files):
        raise ConfigError(f"{directory}: expert names {[t.name for t in tokens]} collide with existing file names")
    for token, name in zip(tokens, new_files, strict=True):
        files.append(save_token(token, directory / name).name)
    (directory / INDEX).write_text(json.dumps({"meta_model": head.meta_model, "experts": files}, indent=1))
    return head
