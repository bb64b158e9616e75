"""Hardware-aware search: price a trial's student on the target before training it.

With ``[study] target = "rpi4"`` every trial's configuration (architecture, width, input size,
precision) is exported to ONNX once and priced by the target's estimator (kdbench.profile.estimate,
calibrated on published Pi 4 figures: an *estimate* with its error band). A local target (this
machine: a CPU profile of this host's architecture without a calibration, e.g. ``x86``) is *measured*
instead: batch 1 with the profile's first runtime in 3 fresh processes, their spread as the band. Exports and prices are
cached under ``<study>/pricing/`` by (architecture, input size, precision), so each configuration is
exported once per study whatever the method, seed or worker. The verdict comes from the one
constraint evaluator (kdbench.profile.constraints): a configuration that ``fails`` (its whole
band outside a limit) is not trained -- the trial is pruned with user attribute ``infeasible``;
``meets`` and ``uncertain`` ones are trained. The price is stored on the trial (``price``) with
``constraint`` values (<= 0: feasible, Optuna's convention), also given to Optuna with
``trial.set_constraint`` (Optuna < 5: the TPE sampler's ``constraints_func``, ``constraint_values``) so
the sampler learns where the feasible region is.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from kdbench.convert.onnx_export import graph_export
from kdbench.errors import ConfigError
from kdbench.manifest import read_json, write_json
from kdbench.profile.constraints import evaluate_constraints

PRECISIONS = ("fp32", "int8")
PRICE_ATTR, CONSTRAINT_ATTR, INFEASIBLE_ATTR = "price", "constraint", "infeasible"
TRIAL_JSON_ATTRS = ("family", "input_size", INFEASIBLE_ATTR)  # copied into trial.json (files-only readers), with the price
PRICING_DIR = "pricing"
CALIBRATION_FRAMES = 32
LATENCY_OBJECTIVE = "latency_p50"  # "latency_p50@<target>": the priced batch-1 p50 (ms), minimised
MO_PRUNING_NOTE = ("multi-objective study: pruning is off (Optuna prunes single-objective studies only); every "
                   "feasible configuration trains on all seeds")


@dataclass
class Price:
    """What a configuration costs on the target (estimated), and the verdict against its constraints."""

    target: str
    arch: str
    input_size: int
    precision: str
    fps: float
    fps_low: float
    fps_high: float
    latency_ms: float
    model_memory_mb: float
    model_memory_mb_low: float
    model_memory_mb_high: float
    error_band_pct: float
    size_mb: float
    status: str  # meets | fails | uncertain | unknown | n/a (the shared evaluator's)
    reasons: list[str] = field(default_factory=list)
    constraint: dict[str, float] = field(default_factory=dict)  # <= 0 where the optimistic end of the band fits
    method: str = "estimated"
    export_s: float = 0.0
    estimate_s: float = 0.0
    cached: bool = False

    @property
    def feasible(self) -> bool:
        """False only when the target certainly cannot run it (verdict 'fails')."""
        return self.status != "fails"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Price:
        """Read ``to_dict``'s form back."""
        return cls(**d)


def check_target(target: Any, precision: Any, where: str, key: str | None = None) -> None:
    """ConfigError unless the target has constraints and an estimator, and the precision is known; ``key``: how the
    file wrote the target (default ``study.target = '<target>'``; e.g. ``study.objective[1] = 'latency_p50@rpi4'``)."""
    from kdbench.profile.estimate import find_calibration
    from kdbench.profile.hardware import load_profile

    key = key or f"study.target = {target!r}"
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{where}: {key}; expected a hardware profile name such as 'rpi4'")
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: study.precision = {precision!r}; expected one of {list(PRECISIONS)}")
    try:
        prof = load_profile(target)
        if not prof.constraints:
            raise ConfigError(f"hardware profile {prof.path} has no [constraints]; nothing to search against")
        if not is_local(prof):
            find_calibration(prof.calibration or prof.name)
    except ConfigError as err:
        raise ConfigError(f"{where}: {key}: {err}") from None


def parse_objective(study: dict[str, Any], allowed: tuple[str, ...], where: str) -> tuple[list[str], str | None]:
    """``[study] objective``: ``'val_accuracy'`` or ``['val_accuracy', 'latency_p50@rpi4']``; (objectives, target)."""
    value, target = study.get("objective", allowed[0]), study.get("target")
    expected = f"expected one of {list(allowed)} or [<one of them>, '{LATENCY_OBJECTIVE}@<target>'], e.g. " \
               f"['val_accuracy', '{LATENCY_OBJECTIVE}@rpi4']"
    if isinstance(value, str):
        if value not in allowed:
            raise ConfigError(f"{where}: study.objective = {value!r}; {expected}")
        return [value], target
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where}: study.objective = {value!r}; {expected}")
    if value[0] not in allowed:
        raise ConfigError(f"{where}: study.objective[0] = {value[0]!r} is not an accuracy objective; {expected}")
    name, _, on = value[1].partition("@")
    if name != LATENCY_OBJECTIVE or not on:
        raise ConfigError(f"{where}: study.objective[1] = {value[1]!r} is not a known objective; {expected}")
    if target not in (None, on):
        raise ConfigError(f"{where}: study.objective[1] = {value[1]!r} names target {on!r} but study.target = "
                          f"{target!r}; expected the same target in both (or drop study.target)")
    return list(value), on


def check_input_sizes(space: Any, store: Any, where: str) -> None:
    """ConfigError (before any training) when an input size the space can pick is larger than the store's frames."""
    dim = space.shared.get("input_size")
    written = "space" if "input_size" in (space.raw.get("space") or {}) else "train"  # a fixed [space] value sits in train
    key, sizes = ("space.input_size", dim.probe_values()) if dim else (f"{written}.input_size", [space.train.get("input_size")])
    too_big = [int(v) for v in sizes if v is not None and int(v) > store.size]
    if too_big:
        raise ConfigError(f"{where}: {key} {max(too_big)} is larger than the store's {store.size} px frames "
                          f"({store.path}); expected sizes <= {store.size} (prepare the store at the largest size searched)")


def objective_values(space: Any, accuracy: float, price: Price | None) -> float | list[float]:
    """What a trial returns to Optuna: the mean accuracy, or [accuracy, priced latency p50 ms] in multi-objective mode."""
    if len(space.objectives) == 1:
        return accuracy
    assert price is not None, "a multi-objective study prices every trial"
    return [accuracy, price.latency_ms]


def constraint_of(row: dict[str, Any], constraints: dict[str, float]) -> dict[str, float]:
    """Optuna constraint values per constraint key (<= 0 feasible) at the optimistic end of each figure's band."""
    out = {}
    if "min_fps" in constraints:
        out["min_fps"] = constraints["min_fps"] - row["fps_high"]
    if "max_memory_mb" in constraints:
        out["max_memory_mb"] = row["model_memory_mb_low"] - constraints["max_memory_mb"]
    if "max_file_mb" in constraints:
        out["max_file_mb"] = row["size_mb"] - constraints["max_file_mb"]
    return out


def is_local(profile: Any) -> bool:
    """True when the target is this machine: a CPU profile without a calibration, of this host's architecture
    (its trials are then measured here, not estimated)."""
    import platform

    from kdbench.profile.estimate import CALIBRATION_DIR

    shipped = (CALIBRATION_DIR / f"{profile.calibration or profile.name}.json").is_file()
    return profile.device == "cpu" and not profile.calibration and not shipped \
        and str(profile.cpu.get("arch", "")).lower() in (platform.machine().lower(), "")


LOCAL_RULE = dict(warmup_runs=5, warmup_s=0.2, warmup_max_s=2.0, min_queries=50, min_time_s=0.3, max_time_s=3.0,
                  runs=3)  # a pricing measurement: short, but 3 fresh processes so its spread is the band


class Pricer:
    """Prices (arch, input size) at one precision for one target; cached on disk and in memory."""

    def __init__(self, target: str, cache_dir: str | Path, precision: str = "fp32", store: Any = None) -> None:
        from kdbench.profile.estimate import find_calibration
        from kdbench.profile.hardware import load_profile

        self.profile = load_profile(target)
        self.local = is_local(self.profile)
        self.calibration = None if self.local else find_calibration(self.profile.calibration or self.profile.name)
        self.target, self.precision, self.store = self.profile.name, precision, store
        self.cache_dir = Path(cache_dir)
        self._memo: dict[tuple[str, int], Price] = {}

    def model_path(self, arch: str, size: int) -> Path:
        """The cached ONNX file of (arch, size, precision)."""
        return self.cache_dir / "onnx" / f"{arch}_{size}_{self.precision}.onnx"

    def price_path(self, arch: str, size: int) -> Path:
        """The cached price of (arch, size, precision) on this target."""
        return self.cache_dir / self.target / f"{arch}_{size}_{self.precision}.json"

    def price(self, arch: str, size: int) -> Price:
        """The price of a configuration: from memory, from disk, else exported and estimated now."""
        key = (arch, int(size))
        if key in self._memo:
            return dataclasses.replace(self._memo[key], cached=True)
        path = self.price_path(arch, size)
        if path.is_file():
            price = Price.from_dict({**read_json(path), "cached": True})
        else:
            price = self._measure(arch, int(size)) if self.local else self._estimate(arch, int(size))
            if self._judge(price).status == "uncertain" and self.profile.remote_host:
                price = self._measure(arch, int(size), remote=True)  # the band straddles a limit: ask the target
            write_json(path, price.to_dict())
        self._memo[key] = price = self._judge(price)
        return price

    def _judge(self, price: Price) -> Price:
        """The verdict of the shared evaluator against the profile's constraints now (a cached price may predate them)."""
        row = price.to_dict()
        status, reasons = evaluate_constraints(row, self.profile.constraints)
        return dataclasses.replace(price, status=status, reasons=reasons,
                                   constraint=constraint_of(row, self.profile.constraints))

    def export(self, arch: str, size: int) -> Path:
        """Export an untrained ``arch`` at ``size`` (the graph, not the weights, sets the price); int8: QDQ."""
        path = self.model_path(arch, size)
        if path.is_file():
            return path
        fp32 = path if self.precision == "fp32" else path.with_name(path.stem + ".fp32.onnx")
        graph_export(arch, fp32, size)
        if self.precision == "int8":
            self._quantize(fp32, path, size)
        return path

    def _quantize(self, fp32: Path, out: Path, size: int) -> None:
        """QDQ int8 of the fp32 export, calibrated on store frames at ``size``."""
        from kdbench.data.resized import resized_store
        from kdbench.convert.ort_int8 import calibration_frames, preprocess, quantize_ort

        if self.store is None:
            raise ConfigError("study.precision = 'int8' needs the frame store to calibrate the quantisation")
        pre = preprocess(fp32, out.with_name(out.stem + ".pre.onnx"))
        frames = calibration_frames(resized_store(self.store, size), n=CALIBRATION_FRAMES)
        quantize_ort(pre, out, frames, per_channel=True)

    def _estimate(self, arch: str, size: int) -> Price:
        """Export, then the estimator's batch-1 record (the verdict is ``_judge``'s)."""
        from kdbench.profile.estimate import estimate_record, model_features

        def record(entry: Any) -> tuple[dict[str, Any], float]:
            rec = estimate_record(entry, self.profile, self.calibration, self.profile.runtimes[0], model_features(entry),
                                  1, self.profile.threads or self.calibration.threads)
            return rec, rec["error_band"]["pct"]

        return self._price(arch, size, record, "estimated")

    def _measure(self, arch: str, size: int, remote: bool = False) -> Price:
        """Export, then measure batch 1 on this machine, or on the profile's ``[remote] host`` (ONNX Runtime, 3 fresh
        processes; the band is their spread)."""
        from kdbench.profile.local import MeasureRule, run_local
        from kdbench.profile.remote import SshTarget, run_remote

        prof = self.profile
        one = dataclasses.replace(prof, runtimes=prof.runtimes[:1], batch_sizes=(1,), precisions=(self.precision,))
        where = prof.remote_host if remote else "this machine"

        def record(entry: Any) -> tuple[dict[str, Any], float]:
            rule = MeasureRule(**LOCAL_RULE)
            recs = run_remote([entry], one, SshTarget(prof.remote_host, prof.remote_ssh_config), prof.remote_python,
                              rule) if remote else run_local([entry], one, rule)
            rec = next((r for r in recs if r.get("batch") == 1), {})
            if not rec.get("fps"):
                raise ConfigError(f"measuring {arch} at {size} px on {where} failed: {rec.get('error') or rec.get('notes')}")
            return rec, round(float(rec.get("p50_spread_pct") or 0.0), 1)

        return self._price(arch, size, record, "measured on the target (the estimate was uncertain)" if remote
                           else "measured")

    def _price(self, arch: str, size: int, record: Callable[[Any], tuple[dict[str, Any], float]], method: str) -> Price:
        """Export (timed), then the batch-1 record ``record`` gives for it (timed), as a Price (verdict: ``_judge``)."""
        from kdbench.profile.results import ModelEntry

        t0 = time.perf_counter()
        path = self.export(arch, size)
        t1 = time.perf_counter()
        entry = ModelEntry(variant_id=f"{arch}@{size}-{self.precision}", path=path, precision=self.precision,
                           input_size=size)
        rec, band_pct = record(entry)
        memory = rec["model_memory_mb"]
        return Price(target=self.target, arch=arch, input_size=size, precision=self.precision, fps=rec["fps"],
                     fps_low=rec["fps_low"], fps_high=rec["fps_high"], latency_ms=rec["latency_ms"]["p50"],
                     model_memory_mb=memory, model_memory_mb_low=rec.get("model_memory_mb_low") or memory,
                     model_memory_mb_high=rec.get("model_memory_mb_high") or memory, error_band_pct=band_pct,
                     size_mb=rec["file_size_mb"], status="", method=method, export_s=t1 - t0,
                     estimate_s=time.perf_counter() - t1)


_PRICERS: dict[tuple[str, str, str], Pricer] = {}


def pricer_for(study_dir: Path, target: str, precision: str, store: Any) -> Pricer:
    """The process's Pricer of a study (one per study directory, target and precision)."""
    key = (str(study_dir), target, precision)
    if key not in _PRICERS:
        _PRICERS[key] = Pricer(target, Path(study_dir) / PRICING_DIR, precision, store)
    return _PRICERS[key]


def before_training(ctx: Any, trial: Any, config: Any) -> Price | None:
    """Record the trial's family; with a target, price it and prune it (not trained) when the target cannot run it."""
    from kdbench.search.families import family_of

    trial.set_user_attr("family", family_of(config.student, ctx.space.families))
    if not ctx.space.target:
        return None
    return price_trial(ctx, trial, config.student, config.train.input_size)


def price_trial(ctx: Any, trial: Any, arch: str, input_size: int | None) -> Price:
    """Price the trial's student on the study's target; prune it (not trained) when the target cannot run it."""
    import optuna

    space = ctx.space
    size = int(input_size or ctx.store.size)
    price = pricer_for(ctx.study_dir, space.target, space.precision, ctx.store).price(arch, size)
    for key, value in price_attrs(price).items():  # flat scalars: optuna-dashboard shows each in its own row
        trial.set_user_attr(key, value)
    trial.set_user_attr(CONSTRAINT_ATTR, price.constraint)
    if hasattr(trial, "set_constraint"):  # Optuna >= 5; before, the sampler's constraints_func reads the user attribute
        have = getattr(trial, "constraints", None) or {}  # a retried trial inherits its predecessor's: setting them again only warns
        for key, value in price.constraint.items():
            if key not in have:
                trial.set_constraint(key, value)
    trial.set_user_attr("input_size", size)
    if not price.feasible:
        reason = (f"{arch} at {size} px {price.precision} on {price.target}: estimated "
                  + "; ".join(price.reasons) + "; not trained")
        trial.set_user_attr(INFEASIBLE_ATTR, reason)
        raise optuna.TrialPruned(reason)
    return price


def budget_used(trials: list[Any], quota: int, grid: bool = False) -> int:
    """How many of these (live) trials count against a student's quota of ``n_trials``.

    The quota is a *training* budget: a trial priced infeasible (pruned before training) does not use it,
    up to ``quota`` such trials per student (so a space whose every choice is infeasible still ends, after
    at most twice its quota). A grid's cells are its plan: there an infeasible cell counts like any other.
    """
    if grid:
        return len(trials)
    infeasible = sum(t.state.name == "PRUNED" and INFEASIBLE_ATTR in t.user_attrs for t in trials)
    return len(trials) - min(infeasible, quota)


def constraint_values(trial: Any) -> list[float]:
    """The TPE sampler's constraints_func (Optuna < 5): the values the pricing stored (feasible if absent)."""
    return list((trial.user_attrs.get(CONSTRAINT_ATTR) or {"none": 0.0}).values())


def price_attrs(price: Price) -> dict[str, Any]:
    """The trial's flat ``price_<field>`` user attributes (reasons joined by '; '; the constraint is its own attribute)."""
    return {f"{PRICE_ATTR}_{k}": "; ".join(v) if isinstance(v, list) else v
            for k, v in price.to_dict().items() if k != "constraint"}


def price_of(trial: Any) -> dict[str, Any] | None:
    """The trial's price record (``Price.to_dict``'s form) from its flat attributes, or the ``price`` dict an older
    study stored; None when the trial was not priced."""
    attrs, head = trial.user_attrs, f"{PRICE_ATTR}_"
    flat = {k[len(head):]: v for k, v in attrs.items() if k.startswith(head)}
    if not flat:
        return attrs.get(PRICE_ATTR)
    reasons = flat.get("reasons") or ""
    return {**flat, "reasons": reasons.split("; ") if reasons else [], "constraint": attrs.get(CONSTRAINT_ATTR, {})}


def pricing_summary(trials: list[Any]) -> dict[str, Any]:
    """How many trials were priced, skipped as infeasible (saved from training), the pricing time and, to
    compare it with, the median wall time of one training seed."""
    import statistics

    from kdbench.search.seed_attrs import seed_results_of

    prices = [p for p in (price_of(t) for t in trials) if p is not None]
    fresh = [p for p in prices if not p.get("cached")]
    seed_s = [s["wall_time_s"] for t in trials if "same_as_trial" not in t.user_attrs
              for s in seed_results_of(t).values() if s.get("wall_time_s")]
    return {"priced": len(prices), "infeasible": sum(INFEASIBLE_ATTR in t.user_attrs and price_of(t) is not None for t in trials),
            "exports": len(fresh), "export_s": sum(p["export_s"] for p in fresh),
            "estimate_s": sum(p["estimate_s"] for p in fresh), "seeds_trained": len(seed_s),
            "median_seed_s": statistics.median(seed_s) if seed_s else None}


def pricing_line(summary: dict[str, Any]) -> str:
    """The search's one-line pricing summary, e.g. '12 configurations priced, 3 infeasible not trained (...)'."""
    n = max(summary["exports"], 1)
    cost = (f"; {summary['exports']} export(s) + estimate(s), {(summary['export_s'] + summary['estimate_s']) / n:.1f} s "
            "each")
    if summary.get("median_seed_s"):
        cost += f" vs {summary['median_seed_s']:.1f} s median per training seed"
    budget = "grid cells: they count as cells" if summary.get("grid") else "they do not use the n_trials budget"
    return f"{summary['priced']} configurations priced, {summary['infeasible']} infeasible not trained ({budget}){cost}"
