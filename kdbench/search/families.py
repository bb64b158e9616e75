"""Student families: one architecture at several widths, searched as members of one family.

A search space names families in ``[study] families``: either names of the families below
(``families = ["mobilenetv3_small", "shufflenet_v2"]``) or a table of its own
(``families = {mine = ["resnet18", "resnet34"]}``). Every member becomes a student of the study
(one Optuna study each, as for ``students``), and each trial records its ``family`` so the
leaderboard can group the members. Widths are the members' own names (timm and torchvision).
"""

from __future__ import annotations

from typing import Any

from kdbench.errors import ConfigError

# family -> members, narrowest first; every name builds with kdbench.models.create_model for 1-channel input.
FAMILIES: dict[str, tuple[str, ...]] = {
    "mobilenetv3_small": ("mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100"),
    "mobilenetv3_large": ("mobilenetv3_large_075", "mobilenetv3_large_100"),
    "shufflenet_v2": ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5"),
    "ghostnet": ("ghostnet_050", "ghostnet_100", "ghostnet_130"),
}


def parse_families(value: Any, where: str) -> dict[str, list[str]]:
    """``[study] families`` as {family: members} (ConfigError naming the bad entry)."""
    if isinstance(value, list) and not value:
        raise ConfigError(f"{where}: study.families = []; expected at least one family of {sorted(FAMILIES)} "
                          "(or drop the key and list students)")
    if isinstance(value, list):
        out = {}
        for name in value:
            if name not in FAMILIES:
                raise ConfigError(f"{where}: study.families {name!r} is not a known family; expected one of "
                                  f"{sorted(FAMILIES)} or a table {{name = [members]}}")
            out[name] = list(FAMILIES[name])
        return out
    if isinstance(value, dict) and value:
        for name, members in value.items():
            if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
                raise ConfigError(f"{where}: study.families.{name} = {members!r}; expected a non-empty list of "
                                  "architecture names, e.g. ['mobilenetv3_small_050', 'mobilenetv3_small_100']")
        return {name: list(members) for name, members in value.items()}
    raise ConfigError(f"{where}: study.families = {value!r}; expected a list of family names {sorted(FAMILIES)} "
                      "or a table {name = [members]}")


def expand_students(study: dict[str, Any], where: str) -> tuple[list[str] | Any, dict[str, str]]:
    """The study's students (``students`` then every family's members) and {member: family}."""
    students = study.get("students")
    if "families" not in study or not isinstance(students, (list, type(None))):
        return students, {}  # a students value that is not a list: reported as written
    families = parse_families(study["families"], where)
    members = {m: fam for fam, ms in families.items() for m in ms}
    listed = list(students) if isinstance(students, list) else []
    return listed + [m for m in members if m not in listed], members


def family_of(arch: str, families: dict[str, str] | None = None) -> str:
    """The family of an architecture: the space's declaration, the built-in table, else itself."""
    if families and arch in families:
        return families[arch]
    return next((fam for fam, members in FAMILIES.items() if arch in members), arch)
