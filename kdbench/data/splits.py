"""Patient-level split checks: no patient may appear in two of train/val/test."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from kdbench.data.clips import Clip
from kdbench.errors import DataError


def check_patient_splits(clips: Iterable[Clip]) -> None:
    """DataError naming the patient, its splits and the CSV rows if a patient is in two splits."""
    where: dict[str, dict[str, list[Clip]]] = defaultdict(lambda: defaultdict(list))
    for clip in clips:
        where[clip.patient][clip.split].append(clip)
    leaks = {p: s for p, s in where.items() if len(s) > 1}
    if not leaks:
        return
    patient, splits = next(iter(sorted(leaks.items())))
    parts = []
    for split in sorted(splits):
        listed = "; ".join(f"{c.origin()} ({', '.join(c.files[:2])})" for c in splits[split][:3])
        parts.append(f"{split}: {listed}")
    more = f" ({len(leaks) - 1} more patients are in several splits)" if len(leaks) > 1 else ""
    raise DataError(
        f"patient {patient!r} is in {len(splits)} splits ({', '.join(sorted(splits))}): "
        f"{' | '.join(parts)}; expected each patient in exactly one split{more}"
    )


def split_leaks(patients: Sequence[str] | np.ndarray, splits: Sequence[str] | np.ndarray) -> dict[str, list[str]]:
    """Patients that appear in more than one split, with those splits (empty when splits are clean)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for patient, split in zip(patients, splits):
        seen[str(patient)].add(str(split))
    return {p: sorted(s) for p, s in seen.items() if len(s) > 1}
