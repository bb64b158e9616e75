"""Shipped resources: profiles and search spaces found by name from any folder, and really in the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kdbench.errors import ConfigError
from kdbench.profile.hardware import load_profile
from kdbench.resources import PACKAGE_DIR, find_resource, list_resources
from kdbench.search.space import load_space

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An unrelated working directory (no hardware_profiles/ or search_spaces/ in it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_shipped_profiles_and_spaces_are_found_by_name_from_any_folder(elsewhere):
    assert {"gpu", "rpi4", "x86"} <= set(list_resources("hardware_profiles"))
    assert {"paper", "quick", "wide"} <= set(list_resources("search_spaces"))
    assert find_resource("hardware_profiles", "rpi4") == PACKAGE_DIR / "hardware_profiles" / "rpi4.toml"
    assert load_profile("rpi4").constraints["min_fps"] == 30.0
    space = load_space("quick", check_students=False)
    assert space.path == PACKAGE_DIR / "search_spaces" / "quick.toml" and space.students


def test_a_users_own_folder_and_explicit_paths_win(elsewhere):
    shipped = (PACKAGE_DIR / "hardware_profiles" / "rpi4.toml").read_text()
    (elsewhere / "hardware_profiles").mkdir()
    (elsewhere / "hardware_profiles" / "rpi4.toml").write_text(shipped.replace("min_fps = 30.0", "min_fps = 60.0"))
    assert load_profile("rpi4").constraints["min_fps"] == 60.0
    assert "rpi4" in list_resources("hardware_profiles") and "gpu" in list_resources("hardware_profiles")
    mine = elsewhere / "pi_at_25fps.toml"
    mine.write_text(shipped.replace("min_fps = 30.0", "min_fps = 25.0"))
    assert load_profile(str(mine)).constraints["min_fps"] == 25.0
    quick = (PACKAGE_DIR / "search_spaces" / "quick.toml").read_text()
    (elsewhere / "search_spaces").mkdir()
    (elsewhere / "search_spaces" / "quick.toml").write_text(quick.replace('name = "quick"', 'name = "my_quick"'))
    assert load_space("quick", check_students=False).name == "my_quick"


def test_unknown_names_and_missing_paths_are_one_clear_error(elsewhere):
    with pytest.raises(ConfigError, match=r"hardware profile 'pi5' not found in .*expected one of \['gpu', 'rpi4', 'x86'\]"):
        load_profile("pi5")
    with pytest.raises(ConfigError, match=r"search space 'fast' not found .*'quick'"):
        load_space("fast")
    with pytest.raises(ConfigError, match=r"search space file .*missing\.toml does not exist"):
        load_space(elsewhere / "missing.toml")
    with pytest.raises(ConfigError, match="resource kind 'models'"):
        find_resource("models", "x")


def test_repository_folders_are_the_packaged_ones():
    for kind in ("hardware_profiles", "search_spaces"):
        assert (REPO / kind).resolve() == (PACKAGE_DIR / kind).resolve(), kind


def source_copy(dest: Path) -> Path:
    """The files a wheel is built from (pyproject.toml, README.md, kdbench/), copied to ``dest``: setuptools
    writes build/ and kdbench.egg-info/ beside the sources it builds, so the build leaves the checkout alone."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "kdbench", dest / "kdbench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_the_wheel_carries_every_data_file_of_the_package(tmp_path):
    """Build the real wheel (from a copy of the sources, in tmp_path) and compare its non-Python files with the
    package's on disk; the checkout gets no build/ folder."""
    had_build = (REPO / "build").exists()
    src = source_copy(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, cwd=tmp_path, timeout=300)
    assert had_build or not (REPO / "build").exists()
    (wheel,) = tmp_path.glob("kdbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    on_disk = {p.relative_to(PACKAGE_DIR.parent).as_posix() for p in PACKAGE_DIR.rglob("*")
               if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert {"kdbench/hardware_profiles/rpi4.toml", "kdbench/search_spaces/quick.toml",
            "kdbench/profile/calibration/rpi4.json"} <= on_disk
    assert on_disk <= names, sorted(on_disk - names)
    assert "kdbench/resources.py" in names and "kdbench/cli/__init__.py" in names
