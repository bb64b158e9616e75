"""Hardware profiles: TOML files describing a target, its runtimes, threads, batches and constraints.

A profile is looked up by name in ``./hardware_profiles/`` under the current directory, then in the
one shipped inside the package (``kdbench/hardware_profiles/``, see ``kdbench.resources``), or
given as a path to the user's own file. Schema (every key is checked; unknown keys are errors so
that typos do not pass silently)::

    name = "rpi4"                       # required, [A-Za-z0-9_.-]+
    description = "..."                 # optional
    device = "cpu"                      # "cpu" | "gpu"

    [cpu]                               # optional: what the estimator needs for an absent target
    arch = "aarch64"                    # free text
    cores = 4
    clock_ghz = 1.5
    memory_mb = 4096
    fma_per_cycle = 8                   # fp32 multiply-adds per core per cycle (NEON/AVX)

    [run]
    runtimes = ["onnxruntime", "openvino"]   # see RUNTIMES
    threads = 4                              # intra-op threads; 0 = runtime default
    batch_sizes = [1, 8]                     # must contain 1 (single-stream latency)
    precisions = ["fp32"]                    # for runtimes that set precision themselves (pytorch)

    [constraints]                        # optional deployment constraints
    min_fps = 30.0                       # at batch 1
    max_memory_mb = 50.0                 # compared with model_memory_mb (RSS increment over the runtime
                                         # running a trivial one-op model)
    max_file_mb = 50.0

    [remote]                             # optional defaults for --remote
    python = "python3"                   # the target's Python (with numpy and the runtime)

    [estimate]                           # optional: calibration used when the target is absent
    calibration = "rpi4"                 # a shipped calibration name or a path to a JSON file
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.checks import read_text_utf8
from kdbench.convert.runtimes import RUNTIMES as RUNTIME_REGISTRY
from kdbench.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# The runtimes are the one registry's (kdbench.convert.runtimes: formats, device, OpenVINO inference precision; the
# agent keeps a copy): onnxruntime[-cuda], openvino (f32), openvino-bf16, openvino-fp16, openvino-gpu, pytorch[-cuda].
RUNTIMES: tuple[str, ...] = tuple(RUNTIME_REGISTRY)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    # section -> key -> (type, required)
    "": {
        "name": (str, True),
        "description": (str, False),
        "device": (str, False),
    },
    "cpu": {
        "arch": (str, False),
        "cores": (int, False),
        "clock_ghz": ((int, float), False),
        "memory_mb": ((int, float), False),
        "fma_per_cycle": ((int, float), False),
    },
    "run": {
        "runtimes": (list, True),
        "threads": (int, True),
        "batch_sizes": (list, True),
        "precisions": (list, False),
    },
    "constraints": {
        "min_fps": ((int, float), False),
        "max_memory_mb": ((int, float), False),
        "max_file_mb": ((int, float), False),
    },
    "remote": {
        "python": (str, False),
        "host": (str, False),
        "ssh_config": (str, False),
    },
    "estimate": {
        "calibration": (str, False),
    },
}


@dataclass(frozen=True)
class HardwareProfile:
    """A validated hardware profile."""

    name: str
    path: Path
    description: str = ""
    device: str = "cpu"
    runtimes: tuple[str, ...] = ("onnxruntime",)
    threads: int = 0
    batch_sizes: tuple[int, ...] = (1,)
    precisions: tuple[str, ...] = ("fp32",)
    cpu: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)
    remote_python: str = "python3"
    calibration: str | None = None
    remote_host: str | None = None  # [remote] host: where the hardware-aware search measures what it cannot estimate
    remote_ssh_config: str | None = None  # [remote] ssh_config: the ssh config file for that host (default: ssh's own)

    def peak_gmacs(self) -> float | None:
        """Theoretical fp32 peak in GMAC/s (cores x clock x FMA/cycle), or None if unknown."""
        try:
            return float(self.cpu["cores"]) * float(self.cpu["clock_ghz"]) * float(self.cpu["fma_per_cycle"])
        except KeyError:
            return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary for result manifests."""
        return {
            "name": self.name,
            "path": str(self.path),
            "device": self.device,
            "runtimes": list(self.runtimes),
            "threads": self.threads,
            "batch_sizes": list(self.batch_sizes),
            "precisions": list(self.precisions),
            "cpu": dict(self.cpu),
            "constraints": dict(self.constraints),
            "calibration": self.calibration,
        }


def profile_dirs() -> list[Path]:
    """Folders searched for profiles by name: ./hardware_profiles, then the package's own."""
    from kdbench.resources import resource_dirs

    return resource_dirs("hardware_profiles")


def available_profiles() -> list[str]:
    """Names of the profiles found in ``profile_dirs()``."""
    return sorted({p.stem for d in profile_dirs() for p in d.glob("*.toml")})


def resolve_profile_path(target: str) -> Path:
    """Turn ``NAME`` or ``PATH`` into the profile file's path (ConfigError if not found)."""
    as_path = Path(target).expanduser()
    if as_path.suffix == ".toml" or "/" in target or as_path.is_file():
        if not as_path.is_file():
            raise ConfigError(f"hardware profile {as_path}: file not found")
        return as_path
    for d in profile_dirs():
        candidate = d / f"{target}.toml"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"hardware profile {target!r} not found in {[str(d) for d in profile_dirs()]}; "
        f"expected one of {available_profiles()} or a path to a .toml file"
    )


def _check_type(path: Path, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    """Raise ConfigError naming the key when ``value`` is not of the expected TOML type."""
    if isinstance(value, bool) and expected is not bool:
        ok = False
    else:
        ok = isinstance(value, expected)
    if not ok:
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise ConfigError(f"hardware profile {path}: key {key!r} = {value!r}; expected {names}")


def parse_profile(data: dict[str, Any], path: Path) -> HardwareProfile:
    """Validate a profile's parsed TOML and build the HardwareProfile (ConfigError names the key)."""
    for key, value in data.items():
        if key in _SCHEMA and key != "":
            if not isinstance(value, dict):
                raise ConfigError(f"hardware profile {path}: key {key!r} must be a table [{key}]")
            continue
        if key not in _SCHEMA[""]:
            allowed = sorted(k for k in _SCHEMA if k) + sorted(_SCHEMA[""])
            raise ConfigError(f"hardware profile {path}: unknown key {key!r}; expected one of {allowed}")
    sections: dict[str, dict[str, Any]] = {"": {k: v for k, v in data.items() if k in _SCHEMA[""]}}
    for section in _SCHEMA:
        if section:
            sections[section] = data.get(section, {})
    for section, keys in _SCHEMA.items():
        table = sections[section]
        for key, value in table.items():
            full = f"{section}.{key}" if section else key
            if key not in keys:
                raise ConfigError(
                    f"hardware profile {path}: unknown key {full!r}; expected one of "
                    f"{[f'{section}.{k}' if section else k for k in keys]}"
                )
            _check_type(path, full, value, keys[key][0])
        for key, (_, required) in keys.items():
            full = f"{section}.{key}" if section else key
            if required and key not in table:
                raise ConfigError(f"hardware profile {path}: missing required key {full!r}")

    name = sections[""]["name"]
    if not _NAME_RE.match(name):
        raise ConfigError(f"hardware profile {path}: key 'name' = {name!r}; expected letters, digits, '_', '.', '-'")
    device = sections[""].get("device", "cpu")
    if device not in ("cpu", "gpu"):
        raise ConfigError(f"hardware profile {path}: key 'device' = {device!r}; expected 'cpu' or 'gpu'")

    run = sections["run"]
    runtimes = run["runtimes"]
    if not runtimes:
        raise ConfigError(f"hardware profile {path}: key 'run.runtimes' is empty; expected some of {list(RUNTIMES)}")
    for rt in runtimes:
        if rt not in RUNTIMES:
            raise ConfigError(f"hardware profile {path}: key 'run.runtimes' has {rt!r}; expected one of {list(RUNTIMES)}")
    threads = run["threads"]
    if threads < 0:
        raise ConfigError(f"hardware profile {path}: key 'run.threads' = {threads}; expected >= 0 (0 = runtime default)")
    batches = run["batch_sizes"]
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ConfigError(f"hardware profile {path}: key 'run.batch_sizes' = {batches!r}; expected positive integers")
    if 1 not in batches:
        raise ConfigError(f"hardware profile {path}: key 'run.batch_sizes' = {batches!r}; must contain 1 (single-stream)")
    precisions = run.get("precisions", ["fp32"])
    for p in precisions:
        if p not in PRECISIONS:
            raise ConfigError(f"hardware profile {path}: key 'run.precisions' has {p!r}; expected one of {list(PRECISIONS)}")

    cpu = dict(sections["cpu"])
    for key in ("cores", "clock_ghz", "memory_mb", "fma_per_cycle"):
        if key in cpu and cpu[key] <= 0:
            raise ConfigError(f"hardware profile {path}: key 'cpu.{key}' = {cpu[key]}; expected > 0")
    constraints = {k: float(v) for k, v in sections["constraints"].items()}
    for key, value in constraints.items():
        if value <= 0:
            raise ConfigError(f"hardware profile {path}: key 'constraints.{key}' = {value}; expected > 0")
    remote = sections["remote"]
    return HardwareProfile(
        name=name,
        path=path,
        description=sections[""].get("description", ""),
        device=device,
        runtimes=tuple(runtimes),
        threads=threads,
        batch_sizes=tuple(sorted(set(batches))),
        precisions=tuple(precisions),
        cpu=cpu,
        constraints=constraints,
        remote_python=remote.get("python", "python3"),
        remote_host=remote.get("host"),
        remote_ssh_config=remote.get("ssh_config"),
        calibration=sections["estimate"].get("calibration"),
    )


def load_profile(target: str | Path) -> HardwareProfile:
    """Load and validate a hardware profile given by name or path."""
    path = resolve_profile_path(str(target))
    try:
        data = tomllib.loads(read_text_utf8(path, "hardware profile"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"hardware profile {path}: not valid TOML: {err}") from None
    return parse_profile(data, path)
