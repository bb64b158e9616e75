"""Tiny search spaces for the search tests: scratch against vanilla KD, batch 8, one batch per epoch."""

from __future__ import annotations

import json
from typing import Any


def tiny_space_toml(name: str, students: list[str], seeds: list[int], study: dict[str, Any] | None = None,
                    train: dict[str, Any] | None = None, vanilla: dict[str, Any] | None = None,
                    space: dict[str, Any] | None = None) -> str:
    """A search-space TOML: ``[study]`` (pruner none), ``[train]`` (1 epoch of one batch of 8), scratch and vanilla;
    ``study``/``train``/``space`` add or override keys, ``vanilla`` is the ``[space.vanilla]`` table."""
    tables = {
        "study": {"name": name, "students": list(students), "seeds": list(seeds), "pruner": "none", **(study or {})},
        "train": {"epochs": 1, "batch_size": 8, "max_batches_per_epoch": 1, **(train or {})},
        "space": {"method": ["scratch", "vanilla"], **(space or {})},
    }
    if vanilla:
        tables["space.vanilla"] = vanilla
    return "\n".join(f"[{t}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in body.items()) for t, body in tables.items())


def _toml(value: Any) -> str:
    """A TOML value: JSON's spelling for numbers, strings, booleans and arrays; an inline table for a dict."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)
