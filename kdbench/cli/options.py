"""Option parsing shared by several commands."""

from __future__ import annotations

from typing import Any

from kdbench.errors import ConfigError


def parse_key_values(items: list[str] | None, option: str) -> dict[str, Any]:
    """Turn ["a=1", "b=cosine"] into {"a": 1, "b": "cosine"} (numbers parsed), naming bad items."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: expected KEY=VALUE, for example {option} schedule=cosine")
        out[key.strip()] = _number_or_text(raw.strip())
    return out


def _number_or_text(raw: str) -> Any:
    """An int or float when the text is one, else the text."""
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _starting(names: list[str], incomplete: str) -> list[str]:
    return [n for n in names if n.startswith(incomplete)]


def complete_space(incomplete: str) -> list[str]:
    """Shell completion of ``--config``: the shipped and local search spaces by name."""
    from kdbench.resources import list_resources

    return _starting(list_resources("search_spaces"), incomplete)


def complete_target(incomplete: str) -> list[str]:
    """Shell completion of ``--target``: the shipped and local hardware profiles by name."""
    from kdbench.resources import list_resources

    return _starting(list_resources("hardware_profiles"), incomplete)


def complete_method(incomplete: str) -> list[str]:
    """Shell completion of ``--method``: the registered distillation methods."""
    from kdbench.distill.registry import METHODS  # imports torch: only when completing this option

    return _starting(sorted(METHODS), incomplete)
