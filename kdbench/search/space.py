"""Search spaces: TOML files that say which students, methods and settings a study searches.

A space file has three tables (see ``docs/search.md`` and ``search_spaces/*.toml``):

- ``[study]``: students, seeds, sampler, pruner, trial budget and what to keep;
- ``[train]``: fixed training settings (epochs, patience, batch_size, lr, ...);
- ``[space]``: the searched dimensions: ``method`` and any training setting, plus one sub-table per
  method (``[space.vanilla]``, ``[space.ctkd]``, ...) whose dimensions only apply to that method.

A dimension's value is a scalar (fixed), an array (categorical choices), ``{choices = [...]}`` or a
range ``{low, high, log = false, step}`` (int when both bounds are integers, else float). Every
problem is a ``ConfigError`` naming the file, the key, the bad value and what is allowed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.checks import read_text_utf8
from kdbench.errors import ConfigError
from kdbench.search.families import expand_students

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

STUDY_KEYS = {
    "name": "study name (default: the file name without .toml)",
    "description": "free text",
    "students": "list of student architectures; one Optuna study per student",
    "seeds": "list of seeds (or a count n for seeds 0..n-1): every configuration trains on all of them; or a race "
             "{min = 3, max = 10}: every configuration trains on seeds 0..min-1, then configurations still undecided "
             "against the best (and KD vs scratch) at the margin get more seeds, up to max (optional keys: boundary = "
             "'front' | 'even', futility = true | false)",
    "objective": "val_accuracy | val_macro_f1 (mean over seeds; test metrics are never used), or "
                 "[that, 'latency_p50@<target>'] for a multi-objective (Pareto) study",
    "sampler": "tpe | random | grid",
    "sampler_seed": "integer seed of the sampler",
    "pruner": "first_seed_median | wilcoxon | none",
    "n_startup_trials": "trials per student before pruning starts",
    "n_warmup_epochs": "epochs of the first seed before first_seed_median may prune",
    "p_threshold": "p-value threshold of the wilcoxon pruner",
    "n_trials": "total trials over all students (split evenly); for grid: capped at the grid size",
    "baseline": "method trained as the first trial of every student (default scratch; 'none' to disable)",
    "keep_checkpoints": "all | best (best.pt of every completed seed, or only of the best seed per trial)",
    "pretrained": "true: students start from ImageNet weights (needs internet or a filled cache); default false",
    "families": "student families searched by width: names (e.g. ['mobilenetv3_small']) or {name = [members]}",
    "target": "hardware profile (e.g. 'rpi4'): every trial priced on it first; infeasible ones are not trained",
    "precision": "fp32 | int8: the precision the target runs, for the pricing (default fp32)",
    "margin": "equivalence margin of the leaderboard's decisions, an accuracy difference fixed before the data are "
              "seen (default 0.01 = 1 point; `kdbench leaderboard --margin` overrides it)",
    "margin_basis": "one line on why this margin (e.g. the power a known-answer benchmark showed at it); the "
                    "leaderboard prints it beside the margin",
}
DEFAULT_MARGIN = 0.01  # the leaderboard's equivalence margin: 1 accuracy point
OBJECTIVES = ("val_accuracy", "val_macro_f1")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("first_seed_median", "wilcoxon", "none")
KEEP = ("all", "best")

# Training settings: (type, minimum). max_batches_per_epoch = 0 means the whole split.
TRAIN_KEYS: dict[str, tuple[type, float]] = {
    "epochs": (int, 1),
    "patience": (int, 1),
    "batch_size": (int, 1),
    "lr": (float, 0.0),
    "weight_decay": (float, 0.0),
    "max_batches_per_epoch": (int, 0),
    "input_size": (int, 8),  # px; frames resized on the fly (default: the store's size)
    # augmentation that keeps the teacher cache (kdbench.data.augment; TrainConfig checks the values)
    "augment_versions": (int, 0),  # K augmented versions of each training frame; 0 = off
    "augment_choice": (str, 0),  # cycle (version epoch mod K) | random (seeded)
    "augment_seed": (int, 0),  # fixes the versions' pixels
    "augment": (dict, 0),  # [train.augment]: strengths (rotate_deg, shift, gain, contrast, attenuation, speckle, flip)
    # share of the store's unlabelled frames added to each epoch of a method with a teacher, in [0, 1]; 0 = off
    "unlabelled": (float, 0),
    # the recipe (kdbench.train): "cosine_epochs" (older studies) | "warmup_cosine" (per step, warm-up share `warmup`);
    # `ema` = decay of the weights' moving average that is validated and kept (0 = off)
    "lr_schedule": (str, 0),
    "warmup": (float, 0),
    "ema": (float, 0),
}
AUGMENT_KEYS = ("augment_versions", "augment_choice", "augment_seed", "augment")
# keys whose values TrainConfig itself checks
CONFIG_CHECKED = ("augment_choice", "augment", "unlabelled", "lr_schedule", "warmup", "ema")
TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 20, "patience": 5, "batch_size": 256, "lr": 1e-3,
                                  "weight_decay": 1e-4, "max_batches_per_epoch": 0}
DEFAULT_SEEDS = 5
MIN_SEEDS_FOR_STATISTICS = 5


@dataclass(frozen=True)
class Dim:
    """One dimension: fixed value, categorical choices, or a float/int range."""

    key: str  # the key as written in the file, e.g. "space.vanilla.temperature"
    kind: str  # "fixed" | "categorical" | "float" | "int"
    value: Any = None  # fixed
    choices: tuple = ()  # categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any, name: str) -> Any:
        """Draw this dimension's value from an Optuna trial (fixed values are not Optuna params)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        """The values a grid enumerates (ConfigError for a continuous range)."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int" and self.step and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step)))
        raise ConfigError(f"{self.key} = range [{self.low}, {self.high}]: the grid sampler needs a list of choices "
                          "(or an int range with a step); use sampler = 'tpe' or 'random' for continuous ranges")

    def probe_values(self) -> list[Any]:
        """Values to validate against the method: the choices, or the range's bounds."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.kind == "int" else [self.low, self.high]


@dataclass
class SearchSpace:
    """A parsed, validated search space file."""

    path: Path
    name: str
    raw: dict[str, Any]
    students: list[str]
    seeds: list[int]
    objective: str = "val_accuracy"  # the accuracy objective (the one selections and epochs are chosen on)
    objectives: list[str] = field(default_factory=lambda: ["val_accuracy"])  # + "latency_p50@<target>": multi-objective
    sampler: str = "tpe"
    sampler_seed: int | None = None
    pruner: str = "first_seed_median"
    n_startup_trials: int = 3
    n_warmup_epochs: int = 1
    p_threshold: float = 0.1
    n_trials: int = 20
    baseline: str | None = "scratch"
    keep_checkpoints: str = "all"
    pretrained: bool = False  # students start from ImageNet weights
    families: dict[str, str] = field(default_factory=dict)  # member -> family (kdbench.search.families)
    target: str | None = None  # hardware profile every trial is priced on (kdbench.search.hardware_aware)
    precision: str = "fp32"  # the precision the target runs
    margin: float = DEFAULT_MARGIN  # equivalence margin of the leaderboard's decisions (kdbench.leaderboard.decisions)
    margin_basis: str = ""  # why this margin, in one line (printed beside it)
    race: dict[str, Any] | None = None  # [study] seeds = {min, max, ...}: RaceSettings keys but the margin (seed_race)
    train: dict[str, Any] = field(default_factory=dict)  # fixed training settings
    shared: dict[str, Dim] = field(default_factory=dict)  # searched training settings
    methods: Dim | None = None
    method_dims: dict[str, dict[str, Dim]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    # ---- what a trial trains -------------------------------------------------------------------

    @property
    def method_names(self) -> list[str]:
        """The methods this space can pick."""
        assert self.methods is not None
        return [self.methods.value] if self.methods.kind == "fixed" else list(self.methods.choices)

    def needs_teacher(self) -> bool:
        """Whether any method of the space distils from a teacher."""
        from kdbench.distill.registry import METHODS

        return any(METHODS[m].needs_teacher for m in self.method_names)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The configuration of one trial: {"method", "hparams", "train"}, drawn from the Optuna trial.

        Every searched dimension is a real Optuna param ("method", "<method>.<key>", training keys);
        the baseline and grid cells are queued trials whose params are fixed (``cell_params``).
        """
        assert self.methods is not None
        method = self.methods.suggest(trial, "method")
        train = dict(self.train)
        for key, dim in self.shared.items():
            train[key] = dim.suggest(trial, key)
        hparams = {key: dim.suggest(trial, f"{method}.{key}") for key, dim in self.method_dims.get(method, {}).items()}
        return {"method": method, "hparams": hparams, "train": train}

    def cell_params(self, config: dict[str, Any]) -> dict[str, Any]:
        """The Optuna params that make ``suggest`` return ``config`` (a grid cell, or a baseline's method)."""
        assert self.methods is not None
        params: dict[str, Any] = {} if self.methods.kind == "fixed" else {"method": config["method"]}
        params.update({k: config["train"][k] for k, d in self.shared.items() if d.kind != "fixed" and k in config["train"]})
        dims = self.method_dims.get(config["method"], {})
        params.update({f"{config['method']}.{k}": v for k, v in config.get("hparams", {}).items()
                       if k in dims and dims[k].kind != "fixed"})
        return params

    def grid(self) -> list[dict[str, Any]]:
        """Every configuration of a fully categorical space, baseline first (the grid sampler's points)."""
        out = []
        shared_keys = list(self.shared)
        for method in self.method_names:
            dims = self.method_dims.get(method, {})
            keys = list(dims)
            for values in itertools.product(*(self.shared[k].grid_values() for k in shared_keys),
                                             *(dims[k].grid_values() for k in keys)):
                train = {**self.train, **dict(zip(shared_keys, values[:len(shared_keys)]))}
                out.append({"method": method, "hparams": dict(zip(keys, values[len(shared_keys):])), "train": train})
        out.sort(key=lambda c: c["method"] != self.baseline)
        return out

    def trials_per_student(self, n_trials: int | None = None) -> dict[str, int]:
        """The trial quota of every student: n_trials split evenly (grid: at most the grid size)."""
        total = self.n_trials if n_trials is None else n_trials
        k = len(self.students)
        quota = {s: total // k + (1 if i < total % k else 0) for i, s in enumerate(self.students)}
        if self.sampler == "grid":
            size = len(self.grid())
            quota = {s: min(q, size) if n_trials is not None else size for s, q in quota.items()}
        return quota

    def to_dict(self) -> dict[str, Any]:
        """The resolved space as plain JSON (stored in study.json)."""
        return {"file": str(self.path), "name": self.name, "raw": self.raw, "students": self.students, "seeds": self.seeds,
                "objective": self.objective, "objectives": self.objectives, "sampler": self.sampler,
                "pruner": self.pruner, "n_trials": self.n_trials,
                "baseline": self.baseline, "keep_checkpoints": self.keep_checkpoints, "train": self.train,
                "pretrained": self.pretrained, "families": self.families, "target": self.target,
                "precision": self.precision, "margin": self.margin, "margin_basis": self.margin_basis, "race": self.race}


def grid_id(config: dict[str, Any]) -> str:
    """A stable, readable id of one configuration, e.g. 'vanilla|alpha=0.5|temperature=4|lr=0.001'."""
    parts = [config["method"]] + [f"{k}={_fmt(v)}" for k, v in sorted(config["hparams"].items())]
    parts += [f"{k}={_fmt(v)}" for k, v in sorted(config["train"].items())]
    return "|".join(parts)


def _fmt(v: Any) -> str:
    """Compact text for a value in a grid id."""
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---- loading -----------------------------------------------------------------------------------


def load_space(path: str | Path, check_students: bool = True) -> SearchSpace:
    """Read and validate a search space TOML file or shipped name like 'quick' (ConfigError naming the key)."""
    from kdbench.resources import find_resource

    path = find_resource("search_spaces", path)  # ./search_spaces/NAME.toml, the package's, or a path
    try:
        raw = tomllib.loads(read_text_utf8(path, "search space"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return parse_space(raw, path, check_students=check_students)


def parse_space(raw: dict[str, Any], path: Path | str = "<space>", check_students: bool = True) -> SearchSpace:
    """Validate a parsed TOML dict into a SearchSpace."""
    path = Path(path)
    where = str(path)
    _unknown(raw, {"study": "", "train": "", "space": ""}, where, "top-level table")
    study = _table(raw, "study", where)
    _unknown(study, STUDY_KEYS, where, "[study] key")
    if "students" not in study and "families" not in study:
        raise ConfigError(f"{where}: [study] has no students; expected students = ['mobilenet_v3_small', ...] "
                          "or families = ['mobilenetv3_small', ...]")
    students, families = expand_students(study, where)
    written = study["students"] if "students" in study else students  # messages name what the file wrote
    if not isinstance(students, list) or not students or not all(isinstance(s, str) and s for s in students):
        raise ConfigError(f"{where}: study.students = {written!r}; expected a non-empty list of architecture names, "
                          "e.g. ['mobilenet_v3_small', 'shufflenet_v2_x1_0']")
    if len(set(students)) != len(students):
        raise ConfigError(f"{where}: study.students = {written!r} lists an architecture twice")
    if check_students:
        _check_students(students, where, families)
    space = SearchSpace(path=path, name=str(study.get("name", path.stem)), raw=raw, students=list(students),
                        seeds=[], families=families)
    space.seeds, space.race = _seeds_or_race(study.get("seeds", DEFAULT_SEEDS), where)
    from kdbench.search.hardware_aware import MO_PRUNING_NOTE, check_target, parse_objective

    space.objectives, target = parse_objective(study, OBJECTIVES, where)
    if target is not None:
        space.target, space.precision = target, study.get("precision", "fp32")
        key = None if "target" in study else f"study.objective[1] = {space.objectives[1]!r} names target {target!r}"
        check_target(space.target, space.precision, where, key)
    elif "precision" in study:
        raise ConfigError(f"{where}: study.precision is given without study.target; expected a target to price on")
    if not space.name or any(c in space.name for c in "/\\ \t") or space.name.startswith("."):
        raise ConfigError(f"{where}: study.name = {space.name!r}; expected a name without spaces or slashes")
    space.objective = space.objectives[0]
    space.sampler = _choice(study, "sampler", SAMPLERS, "tpe", where)
    space.pruner = _choice(study, "pruner", PRUNERS, "first_seed_median", where)
    if len(space.objectives) > 1:
        space.pruner = "none"
        space.warnings.append(MO_PRUNING_NOTE)
    space.keep_checkpoints = _choice(study, "keep_checkpoints", KEEP, "all", where)
    space.sampler_seed = _int(study, "sampler_seed", None, 0, where)
    space.n_startup_trials = _int(study, "n_startup_trials", 3, 0, where)
    space.n_warmup_epochs = _int(study, "n_warmup_epochs", 1, 0, where)
    space.n_trials = _int(study, "n_trials", 20, 1, where)
    p = study.get("p_threshold", 0.1)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
        raise ConfigError(f"{where}: study.p_threshold = {p!r}; expected a number in (0, 1)")
    space.p_threshold = float(p)
    space.margin = check_margin(study.get("margin", DEFAULT_MARGIN), f"{where}: study.margin")
    basis = study.get("margin_basis", "")
    if not isinstance(basis, str) or "\n" in basis or len(basis) > 400:
        raise ConfigError(f"{where}: study.margin_basis = {basis!r}; expected one line of text (at most 400 characters)")
    space.margin_basis = basis
    if space.race is not None:
        if len(space.objectives) > 1:
            raise ConfigError(f"{where}: study.seeds is a race table in a multi-objective study; a race needs one "
                              "best configuration: expected a seed list (or count) with a Pareto objective")
        race_settings(space)  # every key checked now, before any work
    space.pretrained = study.get("pretrained", False)
    if not isinstance(space.pretrained, bool):
        raise ConfigError(f"{where}: study.pretrained = {space.pretrained!r}; expected true or false")

    train = _table(raw, "train", where)
    _unknown(train, TRAIN_KEYS, where, "[train] key")
    space.train = dict(TRAIN_DEFAULTS)
    for key, value in train.items():
        space.train[key] = _train_value(key, value, f"{where}: train.{key}")

    sp = _table(raw, "space", where)
    if "method" not in sp:
        raise ConfigError(f"{where}: [space] has no 'method'; expected e.g. method = ['scratch', 'vanilla', 'ctkd']")
    from kdbench.distill.registry import METHODS, method_defaults

    allowed_space = {"method": "", **TRAIN_KEYS, **{m: "" for m in METHODS}}
    _unknown(sp, allowed_space, where, "[space] key")
    space.methods = _dim(sp["method"], "space.method", where)
    if space.methods.kind in ("float", "int"):
        raise ConfigError(f"{where}: space.method is a range; expected a method name or a list of them")
    for m in space.method_names:
        if m not in METHODS:
            raise ConfigError(f"{where}: space.method {m!r} is not a distillation method; expected any of {list(METHODS)}")
    for key, value in sp.items():
        if key in TRAIN_KEYS:
            dim = _dim(value, f"space.{key}", where)
            for v in dim.probe_values():
                _train_value(key, v, f"{where}: space.{key}")
            if dim.kind == "fixed":
                space.train[key] = _train_value(key, dim.value, f"{where}: space.{key}")
            else:
                space.shared[key] = dim
                space.train.pop(key, None)
        elif key in METHODS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: space.{key} = {value!r}; expected a table [space.{key}] of that method's settings")
            if key not in space.method_names:
                raise ConfigError(f"{where}: [space.{key}] is given but {key!r} is not in space.method {space.method_names}")
            allowed = method_defaults(key)
            dims = {}
            for hk, hv in value.items():
                if hk not in allowed:
                    listed = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
                    raise ConfigError(f"{where}: space.{key}.{hk} is not a setting of method {key!r}; allowed: {listed}")
                dims[hk] = _dim(hv, f"space.{key}.{hk}", where)
            space.method_dims[key] = dims
    baseline = study.get("baseline", "scratch")
    if baseline in (None, "none", ""):
        space.baseline = None
    elif baseline not in space.method_names:
        raise ConfigError(f"{where}: study.baseline = {baseline!r}; expected one of space.method {space.method_names} or 'none'")
    else:
        space.baseline = baseline
    _check_method_values(space, where)
    _check_augment_epochs(space, where)
    if space.sampler == "grid":
        try:
            space.grid()  # raises for continuous dimensions
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    if len(space.seeds) < MIN_SEEDS_FOR_STATISTICS and space.race is None:
        space.warnings.append(f"only {len(space.seeds)} seed(s): the statistics need at least {MIN_SEEDS_FOR_STATISTICS} "
                              "for useful confidence intervals and p-values; treat comparisons as indications")
    return space


def _check_augment_epochs(space: SearchSpace, where: str) -> None:
    """augment_versions bounded by the most epochs a trial trains (kdbench.data.augment.versions_beyond_epochs):
    a ConfigError naming the keys as written when a trial may cycle, a warning when the choice is random."""
    from kdbench.data.augment import versions_beyond_epochs

    def setting(key: str) -> tuple[list[Any], str]:  # the values a trial can take, and the key as the file wrote it
        values = space.shared[key].probe_values() if key in space.shared else [space.train.get(key)]
        for table in ("space", "train"):  # a [space] value overrides [train]
            if key in (space.raw.get(table) or {}):
                return values, f"{table}.{key} = {space.raw[table][key]!r}"
        return values, f"train.{key} unset, default {space.train.get(key)!r}"

    versions, versions_key = setting("augment_versions")
    k = max((int(v) for v in versions if v is not None), default=0)
    if not k:
        return
    epochs, epochs_key = setting("epochs")
    choices = list(space.shared["augment_choice"].probe_values()) if "augment_choice" in space.shared \
        else [space.train.get("augment_choice", "cycle")]
    try:
        warning = versions_beyond_epochs(k, choices, max(int(e) for e in epochs), versions_key, epochs_key)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    if warning:
        space.warnings.append(f"{where}: {warning}")


def check_unlabelled(space: SearchSpace, store: Any, where: str) -> None:
    """A space whose trials may add unlabelled frames (``unlabelled`` > 0) needs a store that has some: a ConfigError
    naming the file and the store before any work (``kdbench.data.loader.unlabelled_pool``'s rule)."""
    from kdbench.data.loader import unlabelled_pool

    values = space.shared["unlabelled"].probe_values() if "unlabelled" in space.shared else [space.train.get("unlabelled", 0.0)]
    try:
        unlabelled_pool(store, max(float(v) for v in values))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _check_method_values(space: SearchSpace, where: str) -> None:
    """Build each method at the probe values of its dims, so bad values fail at load time."""
    from kdbench.distill.registry import create_method

    for method, dims in space.method_dims.items():
        base = {k: d.probe_values()[0] for k, d in dims.items()}
        for key, dim in dims.items():
            for value in dim.probe_values():
                try:
                    create_method(method, **{**base, key: value})
                except ConfigError as err:
                    raise ConfigError(f"{where}: space.{method}.{key} = {value!r}: {err}") from None


def _check_students(students: list[str], where: str, families: dict[str, str] | None = None) -> None:
    """Every student (and family member) must be a name create_model knows."""
    from kdbench.models.registry import REGISTRY, _resolve_source

    for s in students:
        if s in REGISTRY:
            continue
        try:
            _resolve_source(s)
        except ConfigError as err:
            key = f"study.families.{families[s]} member" if families and s in families else "study.students"
            raise ConfigError(f"{where}: {key} {s!r}: {err}") from None


def _table(raw: dict, key: str, where: str) -> dict:
    """A sub-table (empty when absent), ConfigError when it is not a table."""
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} = {value!r}; expected a table [{key}]")
    return value


def _unknown(table: dict, allowed: dict, where: str, what: str) -> None:
    """ConfigError for the first key not in ``allowed``."""
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown {what} {key!r}; allowed: {sorted(allowed)}")


def _choice(table: dict, key: str, allowed: tuple, default: str, where: str) -> str:
    """A string setting that must be one of ``allowed``."""
    value = table.get(key, default)
    if value not in allowed:
        raise ConfigError(f"{where}: study.{key} = {value!r}; expected one of {list(allowed)}")
    return value


def _int(table: dict, key: str, default: int | None, low: int, where: str) -> int | None:
    """An integer setting >= low."""
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{where}: study.{key} = {value!r}; expected an integer >= {low}")
    return value


def check_margin(value: Any, key: str) -> float:
    """An equivalence margin: a number in (0, 1) (an accuracy difference); ConfigError naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{key} = {value!r}; expected an accuracy difference in (0, 1), e.g. 0.01 = 1 point")
    return float(value)


RACE_KEYS = {"min": "min_seeds", "max": "max_seeds", "boundary": "boundary", "futility": "futility"}
RACE_DEFAULTS = {"min_seeds": 3, "max_seeds": 10, "boundary": "front", "futility": True}


def _seeds_or_race(value: Any, where: str) -> tuple[list[int], dict[str, Any] | None]:
    """``study.seeds``: a fixed seed list (no race), or a race table: seeds 0..min-1 first, and its settings."""
    if not isinstance(value, dict):
        return _seeds(value, where), None
    unknown = sorted(set(value) - set(RACE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: study.seeds.{unknown[0]} is not a race setting; expected "
                          + ", ".join(RACE_KEYS))
    race = {**RACE_DEFAULTS, **{RACE_KEYS[k]: v for k, v in value.items()}}
    if "min" in value and "max" not in value and isinstance(race["min_seeds"], int):
        race["max_seeds"] = max(race["max_seeds"], race["min_seeds"])
    lo = race["min_seeds"]
    if isinstance(lo, bool) or not isinstance(lo, int) or lo < 2:
        raise ConfigError(f"{where}: study.seeds.min = {lo!r}; expected an integer >= 2 (an interval needs 2 seeds)")
    return list(range(lo)), race


def race_settings(space: SearchSpace) -> Any:
    """The space's RaceSettings (its race table at the study's margin), or None with a fixed seed list."""
    if space.race is None:
        return None
    from kdbench.search.racing import RaceSettings  # defers scipy

    try:
        return RaceSettings(margin=space.margin, **space.race)
    except ConfigError as err:
        raise ConfigError(f"{space.path}: {err}") from None


def _seeds(value: Any, where: str) -> list[int]:
    """The seed list: a list of distinct non-negative ints, or a count."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"{where}: study.seeds = {value!r}; expected a count >= 1 or a list of seeds")
        return list(range(value))
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        raise ConfigError(f"{where}: study.seeds = {value!r}; expected a list of non-negative integers, e.g. [0, 1, 2, 3, 4]")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: study.seeds = {value!r} repeats a seed; expected distinct seeds")
    return list(value)


def _train_value(key: str, value: Any, where: str) -> Any:
    """A training setting checked against its type and minimum."""
    typ, low = TRAIN_KEYS[key]
    if key in CONFIG_CHECKED:  # TrainConfig's own checks (the one rule for each)
        from kdbench.train import TrainConfig

        try:
            return TrainConfig(**{key: value}).to_dict()[key]
        except ConfigError as err:
            raise ConfigError(f"{where} = {value!r}: {err}") from None
    ok_type = isinstance(value, int) if typ is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (typ is float and not math.isfinite(value)):
        raise ConfigError(f"{where} = {value!r}; expected {'an integer' if typ is int else 'a number'} "
                          f"{'>' if typ is float and low == 0 and key == 'lr' else '>='} {low:g}")
    if (key == "lr" and value <= 0) or value < low:
        raise ConfigError(f"{where} = {value!r} is out of range; expected {'> 0' if key == 'lr' else f'>= {low:g}'}")
    return typ(value)


def _dim(value: Any, key: str, where: str) -> Dim:
    """Parse one dimension value: scalar, list, {choices}, or {low, high, log, step}."""
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: {key} = []; expected at least one choice")
        if len(set(map(repr, value))) != len(value):
            raise ConfigError(f"{where}: {key} = {value!r} repeats a choice")
        if not all(isinstance(v, (str, int, float, bool)) for v in value):
            raise ConfigError(f"{where}: {key} = {value!r}; choices must be strings, numbers or booleans")
        return Dim(key, "categorical", choices=tuple(value)) if len(value) > 1 else Dim(key, "fixed", value=value[0])
    if isinstance(value, dict):
        if "choices" in value:
            extra = set(value) - {"choices"}
            if extra:
                raise ConfigError(f"{where}: {key} has {sorted(extra)} next to 'choices'; a categorical dimension takes only choices")
            return _dim(value["choices"], key, where)
        allowed = {"low", "high", "log", "step"}
        extra = set(value) - allowed
        if extra or "low" not in value or "high" not in value:
            raise ConfigError(f"{where}: {key} = {value!r}; expected {{choices = [...]}} or {{low = ..., high = ..., "
                              "log = false, step = ...}} (unknown or missing: "
                              f"{sorted(extra) or sorted({'low', 'high'} - set(value))})")
        low, high, log, step = value["low"], value["high"], value.get("log", False), value.get("step")
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{where}: {key}.{name} = {v!r}; expected a finite number")
        if not low < high:
            raise ConfigError(f"{where}: {key} low = {low!r} is not below high = {high!r}")
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: {key}.log = {log!r}; expected true or false")
        if log and low <= 0:
            raise ConfigError(f"{where}: {key} has log = true but low = {low!r}; expected low > 0")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or log):
            raise ConfigError(f"{where}: {key}.step = {step!r}; expected a positive number (and log = false)")
        is_int = isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
        return Dim(key, "int" if is_int else "float", low=low, high=high, log=log, step=step)
    if isinstance(value, (str, int, float, bool)):
        return Dim(key, "fixed", value=value)
    raise ConfigError(f"{where}: {key} = {value!r}; expected a value, a list of choices or a {{low, high}} range")
