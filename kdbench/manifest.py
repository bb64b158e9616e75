"""Small helpers every stage uses for its JSON manifests: atomic writes and stable hashes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    """First 16 hex digits of the sha256 of the object's canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """First 16 hex digits of the sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (temp file, then rename), keys sorted, indent 2."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())
