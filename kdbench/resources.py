"""Files kdbench ships inside the package (hardware profiles, search spaces), found by name from any folder.

A name is looked up first in the user's own folder of that kind under the current directory
(``./hardware_profiles/NAME.toml``, ``./search_spaces/NAME.toml``), then in the copy inside the
installed package (``kdbench/hardware_profiles``, ``kdbench/search_spaces``). A path to an existing
file (or anything that looks like a path: a ``.toml`` suffix or a slash) is used as given.
"""

from __future__ import annotations

from pathlib import Path

from kdbench.errors import ConfigError

KINDS: dict[str, str] = {"hardware_profiles": "hardware profile", "search_spaces": "search space"}
PACKAGE_DIR = Path(__file__).resolve().parent


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"resource kind {kind!r} is not known; expected one of {sorted(KINDS)}")


def resource_dirs(kind: str) -> list[Path]:
    """Folders searched for ``kind`` by name, first wins: ./KIND, then the package's own KIND folder."""
    _check_kind(kind)
    out: list[Path] = []
    for d in (Path.cwd() / kind, PACKAGE_DIR / kind):
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def list_resources(kind: str) -> list[str]:
    """Names (file stems) of every ``kind`` file found in ``resource_dirs(kind)``, sorted."""
    return sorted({p.stem for d in resource_dirs(kind) for p in d.glob("*.toml")})


def looks_like_path(name_or_path: str | Path) -> bool:
    """True when the text names a file rather than a shipped resource (a suffix, a slash, or an existing file)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    return path.suffix == ".toml" or "/" in text or "\\" in text or path.is_file()


def find_resource(kind: str, name_or_path: str | Path) -> Path:
    """The file for NAME (./KIND/NAME.toml, then the package's) or PATH; ConfigError naming what exists."""
    _check_kind(kind)
    label = KINDS[kind]
    if looks_like_path(name_or_path):
        path = Path(str(name_or_path)).expanduser()
        if not path.is_file():
            raise ConfigError(f"{label} file {path} does not exist; expected a path to a .toml file or one of the "
                              f"names {list_resources(kind)}")
        return path
    for d in resource_dirs(kind):
        candidate = d / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{label} {str(name_or_path)!r} not found in {[str(d) for d in resource_dirs(kind)]}; "
                      f"expected one of {list_resources(kind)} or a path to a .toml file")
