"""kdbench: distil, search, export, profile and rank small echocardiogram view classifiers.

The public Python API lives in ``kdbench.api`` and is reachable from here; each name imports its
module on first use, so ``import kdbench`` stays instant (no torch, no optuna). The search is
``kdbench.run_search`` (``kdbench.search`` is the subpackage)::

    import kdbench
    study = kdbench.run_search("quick", store="store", teacher="teacher.pt")
    study.best_trials()
    rows = kdbench.load_leaderboard("leaderboard")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("StudyResult", "run_search", "load_study", "best_trials", "read_trials", "export_variants", "profile_models",
        "build_leaderboard", "load_leaderboard", "create_model", "model_info", "configure_logging")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import ``kdbench.api`` when one of its names is first used (PEP 562)."""
    if name in _API:
        from kdbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'kdbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
