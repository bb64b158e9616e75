"""Racing seeds: spend seeds where a decision against the best is still open (issue 20, item 3).

A pure, deterministic procedure over an oracle ``observe(config, seed_index) -> hits [frames]`` (0/1 per
validation frame of that configuration trained on that seed index), so the search can run it on real
training and tests/benchmarks/bench_decisions.py can replay it on stored results.

**The rule.** Every configuration starts with ``min_seeds`` seeds (indices 0..min-1). At each look the
*running* configurations all have the same n seeds (indices 0..n-1). The best is the running configuration
with the highest mean validation accuracy over those seeds and frames (ties: the earlier in ``configs``).
Every other running configuration is compared with it by ``kdbench.metrics.paired_interval(best, other,
clip_ids)`` on the n common seeds and the same frames, and labelled by the leaderboard's rule
(``kdbench.metrics.margin_verdict``, behind ``kdbench.leaderboard.decisions.compare`` too) at the look's
level: ``equivalent`` when the interval of best minus it lies inside (-margin, margin), else ``worse`` when
it lies above 0, else ``undecided``. Equivalent
and worse configurations stop for good and keep that verdict (``against`` names the best they were
compared with, which a later look may replace). The best and every undecided configuration get one more
seed, and the next look follows; the race ends when nothing is undecided or the looks reach
``max_seeds`` (then what is left stays ``undecided``). A stopped configuration never resumes, so there
are at most K = max - min + 1 looks, one per seed count.

**The boundary (error control across looks): a Bonferroni (alpha-spending) split of 1 - level over the K
planned looks**, fixed before the race. ``boundary = "front"`` (the default): half of alpha at the first look,
the other half evenly over the K - 1 later looks; ``"even"``: alpha / K at every look (a constant nominal level,
Pocock's shape). Each look's intervals are at level 1 - alpha_k (``RaceSettings.level_at``). Why a split: it
is *valid* whatever the correlation between looks, the t's Satterthwaite df or the skew of the data (a union
bound: a comparison's intervals miss at some look with probability at most sum alpha_k = 1 - level); it is
*simple* (no boundary tables, no normal independent-increments assumption, which a t on 2-19 seeds does not
meet); it is *conservative*, at a known price: for looks at 3..20 seeds, "even" has z 2.99 where Pocock's exact
constant for those looks (Brownian motion, information ~ seeds; simulated) is 2.59. Why "front": the first
look judges every configuration on the fewest seeds, where a t on 2 df makes small alphas ruinous (t 18.9 at
alpha 0.05/18 against 6.2 at 0.025), and it is where clearly worse configurations should stop; the later looks
are reached only by close contenders, whose t has more df, so they lose less (t on 19 df: 3.71 against 3.43
for "even"). tests/benchmarks/bench_decisions.py compares both. The control is per comparison across looks,
like the leaderboard's one-look verdicts it extends: it is not adjusted across configurations, nor for the
best being chosen on the same seeds (the winner's curse, which the benchmark measures).

**Futility (opt-in: ``futility = True``; off by default, which is the rule above).** An undecided
configuration also stops when its comparison, projected to ``max_seeds`` with the difference where it is and
paired_interval's variance components (the seed and seed x clip parts shrink as 1/seeds, the clip part stays),
would still not be decided at the last look's level (normal quantile: optimistic, so it stops late): the
leaderboard's "what would settle it" arithmetic. Its verdict stays ``undecided`` (``futile`` marks it): it
makes no claim, so it cannot add wrong verdicts; it saves the seeds a tie the margin cannot resolve would burn
up to max, and costs power where a 2-df variance estimate at the first looks is too pessimistic.

**Resuming.** ``RaceResult.to_dict`` stores every observation (bit-packed hits per configuration and
seed index) with every look. ``race(..., previous=that record)`` replays the looks from the stored
observations and calls ``observe`` only for seeds it does not have, so an interrupted race continues
where it stopped; ``on_update`` is called after each new observation with the partial result to store.
A race resumes only with the settings, configurations and validation frames it began with.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import stats

from kdbench.errors import ConfigError

RACE_VERSION = 1
BOUNDARIES = ("front", "even")
VERDICTS = ("best", "equivalent", "worse", "undecided")
Observe = Callable[[str, int], np.ndarray]


@dataclass(frozen=True)
class RaceSettings:
    """How many seeds a configuration may get, the margin and the level: ``[study] seeds = {min, max}``."""

    min_seeds: int
    max_seeds: int
    margin: float
    level: float = 0.95
    boundary: str = "front"
    futility: bool = False
    version: int = RACE_VERSION

    def __post_init__(self) -> None:
        _check_settings(self)

    @property
    def looks(self) -> int:
        """K, the number of planned looks: one per seed count from min to max."""
        return self.max_seeds - self.min_seeds + 1

    def level_at(self, look: int) -> float:
        """The level of look ``look``'s intervals (1-based): 1 - its share of alpha = 1 - level."""
        alpha, k = 1.0 - self.level, self.looks
        if k == 1:
            return self.level
        share = (0.5 if look == 1 else 0.5 / (k - 1)) if self.boundary == "front" else 1.0 / k
        return 1.0 - alpha * share

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values, with the version."""
        return {"version": int(self.version), "min_seeds": int(self.min_seeds), "max_seeds": int(self.max_seeds),
                "margin": float(self.margin), "level": float(self.level), "boundary": str(self.boundary),
                "futility": bool(self.futility)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RaceSettings:
        """Settings from ``to_dict``'s record; ConfigError naming the key when something is wrong."""
        if not isinstance(d, dict):
            raise ConfigError(f"race settings = {d!r}; expected a table with min_seeds, max_seeds and margin")
        if d.get("version", RACE_VERSION) != RACE_VERSION:
            raise ConfigError(f"race settings version {d.get('version')!r}; this kdbench reads version {RACE_VERSION}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"race settings: unknown key(s) {', '.join(unknown)}; expected "
                              + ", ".join(cls.__dataclass_fields__))
        missing = [k for k in ("min_seeds", "max_seeds", "margin") if k not in d]
        if missing:
            raise ConfigError(f"race settings: missing {', '.join(_KEYS[k] for k in missing)}")
        return cls(**d)


_KEYS = {"min_seeds": "study.seeds.min", "max_seeds": "study.seeds.max", "margin": "study.margin",
         "level": "study.seeds.level", "boundary": "study.seeds.boundary",
         "futility": "study.seeds.futility", "version": "race settings version"}


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _check_settings(s: RaceSettings) -> None:
    """ConfigError naming the key (``study.seeds.min`` ...) of the first bad setting."""
    if not _is_int(s.min_seeds) or s.min_seeds < 2:
        raise ConfigError(f"study.seeds.min = {s.min_seeds!r}; expected an integer >= 2 (an interval needs 2 seeds)")
    if not _is_int(s.max_seeds) or s.max_seeds < s.min_seeds:
        raise ConfigError(f"study.seeds.max = {s.max_seeds!r}; expected an integer >= study.seeds.min ({s.min_seeds})")
    if not _is_num(s.margin) or not 0 < s.margin < 1:
        raise ConfigError(f"study.margin = {s.margin!r}; expected an accuracy difference in (0, 1), "
                          "e.g. 0.01 = 1 point")
    if not _is_num(s.level) or not 0 < s.level < 1:
        raise ConfigError(f"study.seeds.level = {s.level!r}; expected a confidence level in (0, 1), e.g. 0.95")
    if s.boundary not in BOUNDARIES:
        raise ConfigError(f"study.seeds.boundary = {s.boundary!r}; expected one of {', '.join(BOUNDARIES)}")
    if not isinstance(s.futility, bool):
        raise ConfigError(f"study.seeds.futility = {s.futility!r}; expected true or false")
    if s.version != RACE_VERSION:
        raise ConfigError(f"race settings version {s.version!r}; this kdbench reads version {RACE_VERSION}")


@dataclass
class Comparison:
    """One configuration against the look's best: the interval of best minus it and the verdict."""

    config: str
    against: str
    verdict: str
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_seeds: int
    look: int
    futile: bool = False  # undecided, but even max_seeds would not settle it (``futility``): stopped


@dataclass
class Look:
    """One look: its number, seed count and level, each configuration's seeds, the best, the comparisons."""

    look: int
    n_seeds: int
    level: float
    seeds: dict[str, int]
    best: str
    means: dict[str, float]
    comparisons: list[Comparison]


@dataclass
class RaceResult:
    """Every look, the final verdict per configuration, seed-runs spent and the observations behind them."""

    settings: RaceSettings
    configs: list[str]
    n_frames: int
    clips_key: str
    observations: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    looks: list[Look] = field(default_factory=list)
    final: dict[str, Comparison] = field(default_factory=dict)
    best: str | None = None
    done: bool = False
    stop_reason: str = ""
    observed_now: int = 0  # seed-runs this call asked ``observe`` for (a resumed race: only the new ones)

    @property
    def seed_runs(self) -> int:
        """Seed-runs spent: observations held over all configurations."""
        return sum(len(obs) for obs in self.observations.values())

    def verdicts(self) -> dict[str, str]:
        """The final verdict per configuration (best / equivalent / worse / undecided)."""
        return {c: v.verdict for c, v in self.final.items()}

    def seeds(self) -> dict[str, int]:
        """Seeds each configuration received."""
        return {c: len(self.observations.get(c, {})) for c in self.configs}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record to store and resume from (``race(..., previous=record)``)."""
        return {"kind": "kdbench race", "version": RACE_VERSION, "settings": self.settings.to_dict(),
                "rule": "paired_interval best - config; equivalent inside +-margin, worse above 0, else undecided",
                "boundary": _boundary_text(self.settings),
                "configs": list(self.configs), "n_frames": self.n_frames, "clips_key": self.clips_key,
                "best": self.best, "done": self.done, "stop_reason": self.stop_reason, "seed_runs": self.seed_runs,
                "seeds": self.seeds(), "final": {c: asdict(v) for c, v in self.final.items()},
                "looks": [asdict(x) for x in self.looks],
                "observations": {c: {str(s): _pack(h) for s, h in sorted(obs.items())}
                                 for c, obs in self.observations.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RaceResult:
        """The result ``to_dict`` wrote (observations unpacked; looks and verdicts as recorded)."""
        if not isinstance(d, dict) or d.get("kind") != "kdbench race":
            raise ConfigError("not a race record: expected the dict RaceResult.to_dict wrote (kind 'kdbench race')")
        if d.get("version") != RACE_VERSION:
            raise ConfigError(f"race record version {d.get('version')!r}; this kdbench reads version {RACE_VERSION}")
        try:
            return cls._from_record(d)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"malformed race record ({type(err).__name__}: {err}); expected what "
                              "RaceResult.to_dict wrote") from None

    @classmethod
    def _from_record(cls, d: dict[str, Any]) -> RaceResult:
        """``from_dict`` after the kind and version checks."""
        n = int(d["n_frames"])
        looks = [Look(**{**x, "comparisons": [Comparison(**c) for c in x["comparisons"]]}) for x in d["looks"]]
        return cls(settings=RaceSettings.from_dict(d["settings"]), configs=list(d["configs"]), n_frames=n,
                   clips_key=d["clips_key"], looks=looks, best=d.get("best"), done=bool(d.get("done")),
                   stop_reason=d.get("stop_reason", ""), final={c: Comparison(**v) for c, v in d["final"].items()},
                   observations={c: {int(s): _unpack(h, n) for s, h in obs.items()}
                                 for c, obs in d["observations"].items()})


def _boundary_text(s: RaceSettings) -> str:
    """The boundary in words, with the levels of the first and later looks."""
    later = f", later looks at {s.level_at(2):.6g}" if s.looks > 1 else ""
    return (f"{s.boundary} split of alpha = {1 - s.level:.3g} over {s.looks} looks: look 1 at level "
            f"{s.level_at(1):.6g}{later}")


def _pack(hits: np.ndarray) -> str:
    """0/1 hits as a hex string of packed bits."""
    return np.packbits(np.asarray(hits, dtype=bool)).tobytes().hex()


def _unpack(text: str, n: int) -> np.ndarray:
    """The [n] bool hits ``_pack`` wrote."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8), count=n).astype(bool)


def clips_key(clip_ids: np.ndarray) -> str:
    """A short fingerprint of the validation frames' clip ids (a resumed race must score the same frames)."""
    return hashlib.sha256("\n".join(map(str, np.asarray(clip_ids).tolist())).encode()).hexdigest()[:16]


def _futile(res: dict[str, Any], s: RaceSettings, n: int) -> bool:
    """With ``futility`` on: even max_seeds would not settle this comparison, the difference staying where it is."""
    parts = res.get("se2_parts") or {}
    if not s.futility or n >= s.max_seeds or parts.get("seed") is None:
        return False
    m, d = s.max_seeds, abs(res["diff"])
    se2 = max(parts["seed"] * n / m + parts["clip"] + parts["seed_x_clip"] * n / m, 0.0)  # the se^2 at m seeds
    z = float(stats.norm.ppf(0.5 + s.level_at(s.looks) / 2))  # normal, not t: optimistic, so it stops late
    return z * math.sqrt(se2) >= max(s.margin - d, d)


def _hits(result: RaceResult, config: str, n: int) -> np.ndarray:
    """[n seeds, frames] hits of seed indices 0..n-1."""
    return np.stack([result.observations[config][s] for s in range(n)])


def _look(result: RaceResult, running: list[str], n: int, number: int, clip_ids: np.ndarray) -> Look:
    """Compare every running configuration with the best of them on seeds 0..n-1."""
    from kdbench.metrics import margin_verdict, paired_interval

    s = result.settings
    hits = {c: _hits(result, c, n) for c in running}
    means = {c: float(h.mean()) for c, h in hits.items()}
    best = max(running, key=lambda c: (means[c], -result.configs.index(c)))
    comps = [Comparison(best, best, "best", 0.0, None, None, None, n, number)]
    for c in running:
        if c == best:
            continue
        res = paired_interval(hits[best], hits[c], clip_ids, level=s.level_at(number))
        verdict = margin_verdict(res["ci_low"], res["ci_high"], s.margin, np.array_equal(hits[best], hits[c]))
        comps.append(Comparison(c, best, verdict, res["diff"], res["ci_low"], res["ci_high"], res["p_value"], n,
                                number, verdict == "undecided" and _futile(res, s, n)))
    seeds = {c: n if c in running else result.final[c].n_seeds for c in result.configs}
    return Look(number, n, s.level_at(number), seeds, best, means, comps)


def _observe(result: RaceResult, config: str, seed: int, observe: Observe,
             on_update: Callable[[RaceResult], None] | None) -> None:
    """Ask the oracle for one seed of one configuration unless the record already holds it."""
    if seed in result.observations.setdefault(config, {}):
        return
    hits = np.asarray(observe(config, seed))
    if hits.shape != (result.n_frames,) or not np.isin(hits, (0, 1)).all():
        raise ValueError(f"observe({config!r}, {seed}) gave an array of shape {hits.shape}; expected "
                         f"[{result.n_frames}] of 0/1 (one hit per validation frame)")
    result.observations[config][seed] = hits.astype(bool)
    result.observed_now += 1
    if on_update is not None:
        on_update(result)


def _resume(previous: RaceResult | dict[str, Any], configs: list[str], clip_ids: np.ndarray,
            settings: RaceSettings) -> dict[str, dict[int, np.ndarray]]:
    """The observations of a previous race, after checking it ran the same race."""
    prev = RaceResult.from_dict(previous) if isinstance(previous, dict) else previous
    for key, label in _KEYS.items():
        if getattr(prev.settings, key) != getattr(settings, key):
            raise ConfigError(f"{label} changed from {getattr(prev.settings, key)!r} to {getattr(settings, key)!r} "
                              "since the race began: a race resumes with the settings it began with")
    if list(prev.configs) != list(configs):
        raise ConfigError(f"the race began with configurations {prev.configs}, not {configs}: a race resumes with "
                          "the same configurations in the same order")
    if prev.n_frames != len(clip_ids) or prev.clips_key != clips_key(clip_ids):
        raise ConfigError("the race's validation frames changed since it began (clip ids differ): a resumed race "
                          "must score the same frames")
    return {c: dict(obs) for c, obs in prev.observations.items()}


def race(configs: list[str], observe: Observe, clip_ids: np.ndarray, settings: RaceSettings,
         previous: RaceResult | dict[str, Any] | None = None,
         on_update: Callable[[RaceResult], None] | None = None) -> RaceResult:
    """Race ``configs`` on seeds from ``observe`` (see the module docstring); resume from ``previous``."""
    if not configs or len(set(configs)) != len(configs) or not all(isinstance(c, str) for c in configs):
        raise ValueError(f"configs = {configs!r}; expected distinct configuration names")
    clip_ids = np.asarray(clip_ids)
    result = RaceResult(settings, list(configs), len(clip_ids), clips_key(clip_ids))
    if previous is not None:
        result.observations = _resume(previous, result.configs, clip_ids, settings)
    running, n = list(configs), settings.min_seeds
    while True:
        for c in running:
            for s in range(n):
                _observe(result, c, s, observe, on_update)
        look = _look(result, running, n, len(result.looks) + 1, clip_ids)
        result.looks.append(look)
        for comp in look.comparisons:
            result.final[comp.config] = comp
        running = [c for c in running if result.final[c].verdict in ("best", "undecided")
                   and not result.final[c].futile]
        if len(running) == 1 or n >= settings.max_seeds:
            break
        n += 1
    result.best, result.done = look.best, True
    futile = [c for c, v in result.final.items() if v.futile]
    result.stop_reason = (f"study.seeds.max ({settings.max_seeds}) reached" if len(running) > 1 else
                          f"nothing undecided but {', '.join(futile)}, which max_seeds would not settle" if futile
                          else "nothing undecided")
    return result
