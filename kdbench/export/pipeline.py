"""Export every variant of every candidate, each re-evaluated in its own runtime, into EXPORT/.

Variants (one module each in kdbench.export.variants, one registry): ``fp32`` (ONNX, parity-checked against
PyTorch), ``int8_ort`` (ONNX Runtime static QDQ, per-channel and per-tensor tried, the better kept),
``int8_openvino`` (NNCF, OpenVINO IR), ``fp16`` (for GPU targets) and ``prunedNN`` (torch-pruning at a channel ratio, briefly fine-tuned with the
candidate's distillation method, exported like fp32). One variant failing (an exporter error, a
parity miss, a quantisation that collapses accuracy) is recorded with its reason and never stops the
others. ``EXPORT/manifest.json`` is rewritten after every variant; a rerun skips variants whose
inputs hash is unchanged (ok ones, and failed ones whose failure was a verdict such as a parity miss
or an accuracy collapse; variants that crashed are tried again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kdbench import __version__
from kdbench.convert.onnx_export import files_size_mb, model_files
from kdbench.convert.runtimes import frames_as_input
from kdbench.data.store import FrameStore
from kdbench.distill.feed import TeacherFeed
from kdbench.errors import ConfigError, DataError
from kdbench.export.candidates import Candidate
from kdbench.export.evaluate import evaluate_file, save_variant_predictions
from kdbench.export.variants import VARIANTS, Context, VariantFailed, planned, variant_of
from kdbench.export_manifest import MANIFEST, ExportManifest, VariantRecord
from kdbench.manifest import config_hash, file_hash, read_json, write_json

log = logging.getLogger(__name__)

INT8_BACKENDS = tuple(v.kind.removeprefix("int8_") for v in VARIANTS if v.kind.startswith("int8_"))  # ort, openvino


@dataclass
class ExportOptions:
    """What to export and how strictly to check it."""

    int8: tuple[str, ...] = INT8_BACKENDS  # int8 backends to run: "ort", "openvino"
    prune: tuple[float, ...] = ()  # channel ratios, e.g. (0.3, 0.5)
    fp16: bool = False  # also write an fp16 ONNX (for GPU targets)
    finetune_epochs: int = 2  # fine-tune epochs after pruning
    finetune_batch_size: int | None = None  # None: the candidate's training batch size
    calibration_frames: int = 256  # training frames used to calibrate int8
    parity_frames: int = 64  # validation frames used for the PyTorch/ONNX parity check
    parity_tol: float = 1e-4  # absolute part of the allowed PyTorch/ONNX fp32 logit difference
    parity_rtol: float = 1e-3  # relative part: allowed = parity_tol + parity_rtol * max |PyTorch logit|
    max_drop: float = 0.10  # a variant losing more val accuracy than this vs fp32 is marked failed
    eval_batch_size: int = 64
    opset: int = 18
    seed: int = 0  # calibration subset

    def __post_init__(self) -> None:
        bad = [b for b in self.int8 if b not in INT8_BACKENDS]
        if bad:
            raise ConfigError(f"--int8 {','.join(self.int8)}: unknown backend(s) {bad}; expected any of {', '.join(INT8_BACKENDS)}")
        if not 0 <= self.max_drop <= 1:
            raise ConfigError(f"max_drop {self.max_drop} is not a fraction in [0, 1] (0.10 = 10 accuracy points)")
        if self.finetune_epochs < 0:
            raise ConfigError(f"--finetune-epochs {self.finetune_epochs}: expected 0 or more")
        if self.opset < 17:
            raise ConfigError(f"--opset {self.opset}: expected 17 or newer")

    def variants(self) -> list[str]:
        """Variant names in export order (the registry's, kdbench.export.variants)."""
        return planned(self)


def _record(ctx: Context, variant: str, runtime: str, precision: str) -> VariantRecord:
    """An empty (failed until proven ok) record for a variant of a candidate."""
    cand = ctx.cand
    return VariantRecord(id=f"{cand.id}/{variant}", candidate=cand.id, variant=variant, runtime=runtime,
                         precision=precision, student=cand.student or ctx.arch, method=cand.method, trial=cand.trial,
                         seed=cand.seed, input_size=ctx.input_size)


class Exporter:
    """Exports candidates into one directory, resuming from its manifest."""

    def __init__(self, store: FrameStore, out: str | Path, options: ExportOptions | None = None,
                 teacher: str | Path | None = None, force: bool = False) -> None:
        self.store = store
        self.out = Path(out)
        self.options = options or ExportOptions()
        self.teacher = Path(teacher) if teacher else None
        self.force = force
        self.out.mkdir(parents=True, exist_ok=True)
        previous = self._load_previous()
        self.previous = {rec.id: rec for rec in previous.variants}
        self.records: dict[str, VariantRecord] = dict(self.previous)
        self.candidates: dict[str, dict[str, Any]] = {c["id"]: c for c in previous.candidates if "id" in c}
        self._calib: dict[int, np.ndarray] = {}
        self._teacher_cache: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- manifest
    def _load_previous(self) -> ExportManifest:
        """The manifest of an earlier export into the same directory (an unreadable one, or variant, is redone)."""
        path = self.out / MANIFEST
        if not path.is_file():
            return ExportManifest()
        try:
            doc = read_json(path)
        except ValueError as err:
            log.warning("ignoring unreadable %s (%s): every variant will be redone", path, err)
            return ExportManifest()
        if not isinstance(doc, dict) or doc.get("stage") != "export":  # never overwrite another stage's folder
            raise ConfigError(f"{path} is not an export manifest (stage {doc.get('stage') if isinstance(doc, dict) else None!r}); choose another --out")
        try:
            return ExportManifest.from_dict(doc, str(path), on_bad=lambda err: log.warning("%s: redoing it", err))
        except DataError as err:
            raise ConfigError(f"{err}; choose another --out") from None

    def manifest(self) -> dict[str, Any]:
        """The export manifest as it stands."""
        return self.export_manifest().to_dict()

    def export_manifest(self) -> ExportManifest:
        """The export manifest as it stands, as its record."""
        config = json.loads(json.dumps(asdict(self.options)))  # tuples -> lists, as in the file
        return ExportManifest(
            variants=list(self.records.values()), candidates=list(self.candidates.values()),
            store=str(self.store.path), store_hash=self.store.store_hash,
            teacher=str(self.teacher) if self.teacher else None, config=config, config_hash=config_hash(config),
            kdbench_version=__version__)

    def _save(self) -> None:
        write_json(self.out / MANIFEST, self.manifest())

    # ---------------------------------------------------------------- inputs
    def _inputs_hash(self, ctx: Context, variant: str) -> str:
        """Hash of everything a variant's result depends on; equal hash = nothing to redo."""
        o = self.options
        inputs: dict[str, Any] = {"checkpoint": ctx.ckpt_hash, "store": self.store.store_hash, "variant": variant,
                                  "opset": o.opset, "parity_tol": o.parity_tol, "parity_rtol": o.parity_rtol, "parity_frames": o.parity_frames,
                                  "kdbench_version": __version__}
        if variant != "fp32":
            inputs["max_drop"] = o.max_drop
        if variant.startswith("int8"):
            inputs.update(calibration_frames=o.calibration_frames, seed=o.seed)
        if variant.startswith("pruned"):
            teacher = self._teacher_path(ctx.cand)
            inputs.update(finetune_epochs=o.finetune_epochs, finetune_batch_size=o.finetune_batch_size,
                          teacher=file_hash(teacher) if teacher and teacher.is_file() else None)
        return config_hash(inputs)

    def _reusable(self, rec: VariantRecord | None, inputs_hash: str) -> bool:
        """True when an earlier record has the same inputs and (if ok) its files are still there."""
        if self.force or rec is None or rec.inputs_hash != inputs_hash:
            return False
        if rec.status != "ok":
            return rec.failure == "check"
        # a record without its per-frame predictions (an older export) is redone, so the leaderboard can pair it
        return all((self.out / f).is_file() for f in rec.files) and bool(rec.predictions) \
            and (self.out / str(rec.predictions)).is_file()

    def calibration(self, ctx: Context) -> np.ndarray:
        """int8 calibration frames at the candidate's trained input size (resized as in training), per size."""
        size = int(ctx.store.size)
        if size not in self._calib:
            from kdbench.convert.ort_int8 import calibration_frames

            self._calib[size] = calibration_frames(ctx.store, self.options.calibration_frames, self.options.seed)
        return self._calib[size]

    def _teacher_path(self, cand: Candidate) -> Path | None:
        """--teacher, else the teacher recorded in the run's metrics.json (relative: to cwd, then the run dir)."""
        if self.teacher:
            return self.teacher
        if not cand.teacher:
            return None
        path = Path(cand.teacher)
        if not path.is_absolute() and not path.exists() and cand.source:
            beside = Path(cand.source) / path
            if beside.exists():
                return beside
        return path

    def teacher_logits(self, cand: Candidate) -> np.ndarray | None:
        """Cached teacher logits for the pruning fine-tune (None when no teacher is known)."""
        path = self._teacher_path(cand)
        if path is None:
            return None
        if not path.is_file():
            raise ConfigError(f"teacher {path} does not exist (from {'--teacher' if self.teacher else cand.source + '/metrics.json'})")
        key = str(path.resolve())
        if key not in self._teacher_cache:
            self._teacher_cache[key] = TeacherFeed.open(self.store, path).logits
        return self._teacher_cache[key]

    # ---------------------------------------------------------------- running
    def run(self, candidates: list[Candidate],
            on_start: Callable[[str, str], None] | None = None,
            on_done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Export every planned variant of every candidate; returns the manifest."""
        for cand in candidates:
            ctx = Context(cand=cand, dir=self.out / cand.id, ckpt_hash=file_hash(cand.checkpoint))
            ctx.dir.mkdir(parents=True, exist_ok=True)
            self.candidates[cand.id] = cand.describe()
            for variant in self.options.variants():
                if on_start:
                    on_start(cand.id, variant)
                rec = self._one(ctx, variant)
                self.records[rec.id] = rec
                if variant == "fp32":
                    ctx.fp32 = rec
                self._save()
                if on_done:
                    on_done(rec.to_dict())
        self._save()
        return self.manifest()

    def _one(self, ctx: Context, variant: str) -> VariantRecord:
        """Produce, check and evaluate one variant; any failure becomes a failed record with its reason."""
        inputs_hash = self._inputs_hash(ctx, variant)
        vid = f"{ctx.cand.id}/{variant}"
        previous = self.previous.get(vid)
        if self._reusable(previous, inputs_hash):
            cand = ctx.cand  # provenance comes from the candidate, even for a record of an older manifest
            return dataclasses.replace(previous, resumed=True, student=cand.student or previous.student,
                                       method=cand.method, trial=cand.trial, seed=cand.seed)
        kind = variant_of(variant, self.options)
        start = time.perf_counter()
        rec = _record(ctx, variant, kind.runtime, kind.precision)
        try:
            self._load_model(ctx)
            rec.student, rec.input_size = ctx.cand.student or ctx.arch, ctx.input_size
            kind.build(self, ctx, rec)
            if variant != "fp32":
                self._check_drop(ctx, rec)
            rec.status = "ok" if rec.reason is None else "failed"
            rec.failure = None if rec.reason is None else "check"
        except Exception as err:  # one variant must never stop the others; the reason is recorded
            rec.status = "failed"
            # "check": the variant was judged (parity, collapse, unusable input) and a rerun would
            # judge it the same; "error": something broke, so a rerun tries again
            rec.failure = "check" if isinstance(err, (VariantFailed, ConfigError)) else "error"
            rec.reason = str(err) if isinstance(err, VariantFailed) else f"{type(err).__name__}: {err}"
            if not isinstance(err, (VariantFailed, ConfigError)):
                rec.details["traceback"] = traceback.format_exc(limit=6)[-2000:]
            log.warning("variant %s failed: %s", vid, rec.reason)
        rec.inputs_hash = inputs_hash
        rec.elapsed_s = round(time.perf_counter() - start, 3)
        rec.resumed = False
        return rec

    def _load_model(self, ctx: Context) -> None:
        """Load the candidate's checkpoint once; its frames are the store's resized to the trained input size."""
        if ctx.model is not None:
            return
        from kdbench.data.resized import resized_store
        from kdbench.models import model_info
        from kdbench.models.checkpoint import load_checkpoint

        model, meta = load_checkpoint(ctx.cand.checkpoint)
        size = int(meta.get("input_size") or self.store.size)
        if size > self.store.size:
            raise VariantFailed(
                f"checkpoint {ctx.cand.checkpoint} was trained at {size} px but store {self.store.path} "
                f"holds {self.store.size} px frames; export on a store at least as large as the trained size"
            )
        ctx.model, ctx.arch, ctx.input_size = model.eval(), meta.get("arch"), size
        ctx.store = resized_store(self.store, size)  # the same antialiased resize training used
        ctx.info = model_info(ctx.model, ctx.input_size)

    # ---------------------------------------------------------------- variants
    def finish(self, ctx: Context, rec: VariantRecord, path: Path, metrics: dict[str, Any] | None = None,
                logits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """Fill file, size and (unless given, with their ``logits``) metrics of a variant file by running it in its
        runtime; save its per-frame val/test predictions beside it (``predictions-<variant>.npz``)."""
        files = model_files(path)
        rec.file = str(path.relative_to(self.out))
        rec.files = [str(f.relative_to(self.out)) for f in files]
        rec.size_mb = files_size_mb(files)
        if metrics is None:
            logits = {}
            metrics = evaluate_file(path, rec.runtime, ctx.store, batch_size=self.options.eval_batch_size,
                                    logits_out=logits)
        rec.metrics = metrics
        if logits and {"val", "test"} <= set(logits):
            saved = save_variant_predictions(ctx.dir / f"predictions-{rec.variant}.npz", ctx.store, logits)
            rec.predictions = str(saved.relative_to(self.out))

    def export_checked(self, ctx: Context, model: Any, path: Path, rec: VariantRecord) -> None:
        """Export a torch model to ONNX fp32 at ``path`` and enforce logit parity on real frames."""
        from kdbench.convert.onnx_export import export_onnx, parity_stats

        info = export_onnx(model, path, rec.input_size, self.options.opset)
        rec.details.update(exporter=info["exporter"], opset=info["opset"])
        if info.get("dynamo_error"):
            rec.details["dynamo_error"] = info["dynamo_error"]
        rows = ctx.store.indices("val")[: self.options.parity_frames]
        if not len(rows):
            rows = ctx.store.indices("train")[: self.options.parity_frames]
        diff, scale = parity_stats(model, path, frames_as_input(ctx.store, rows))
        allowed = self.options.parity_tol + self.options.parity_rtol * scale
        rec.max_abs_diff = diff
        rec.details.update(parity_frames=int(len(rows)), parity_allowed=allowed, max_abs_logit=scale)
        if not diff <= allowed:
            rec.reason = (f"ONNX/PyTorch parity failed: max abs logit difference {diff:.3g} on {len(rows)} "
                             f"real frames exceeds the allowed {allowed:.3g} ({self.options.parity_tol:g} + "
                             f"{self.options.parity_rtol:g} x max |logit| {scale:.3g})")

    def need_fp32(self, ctx: Context) -> Path:
        """The candidate's fp32 ONNX file; a failed fp32 export fails the variants built from it."""
        fp32 = ctx.fp32
        if fp32 is None or fp32.status != "ok":
            reason = fp32.reason if fp32 else "not exported"
            raise VariantFailed(f"needs the fp32 ONNX model, which failed: {reason}")
        return self.out / str(fp32.file)

    def _check_drop(self, ctx: Context, rec: VariantRecord) -> None:
        """Mark a variant failed when its validation accuracy fell more than ``max_drop`` below fp32's."""
        fp32 = ctx.fp32
        if not fp32 or fp32.status != "ok" or "val" not in rec.metrics:
            return
        ref, acc = fp32.metrics["val"]["accuracy"], rec.metrics["val"]["accuracy"]
        rec.accuracy_drop = ref - acc
        if ref - acc > self.options.max_drop and rec.reason is None:
            rec.reason = (f"accuracy collapsed: val accuracy {acc:.4f} vs fp32 {ref:.4f} "
                             f"(drop {100 * (ref - acc):.1f} points > {100 * self.options.max_drop:.0f})")


def export_candidates(candidates: list[Candidate], store: FrameStore, out: str | Path,
                      options: ExportOptions | None = None, teacher: str | Path | None = None,
                      force: bool = False, on_start: Callable[[str, str], None] | None = None,
                      on_done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Export all variants of all candidates into ``out``; returns the manifest (also in out/manifest.json)."""
    return Exporter(store, out, options, teacher, force).run(candidates, on_start, on_done)


def export_variants(store: str | Path, out: str | Path, *, checkpoint: str | Path | None = None,
                    run: str | Path | None = None, study: str | Path | None = None, top: int = 3,
                    options: ExportOptions | None = None, teacher: str | Path | None = None, force: bool = False,
                    on_plan: Callable[[list[Candidate], list[str]], None] | None = None,
                    on_start: Callable[[str, str], None] | None = None,
                    on_done: Callable[[dict[str, Any]], None] | None = None) -> ExportManifest:
    """``kdbench export`` as a library call: the candidates of exactly one of a checkpoint, a run folder or a study
    folder, checked, then every planned variant of each into ``out``; returns the manifest (also in out/manifest.json).
    ``on_plan(candidates, variant names)`` is called before any work."""
    from kdbench.checks import ensure_writable_dir
    from kdbench.export.candidates import resolve_candidates
    from kdbench.models.checkpoint import verify_checkpoint

    options = options or ExportOptions()
    frames = FrameStore.open(store)
    candidates = resolve_candidates(checkpoint, run, study, top=top)
    for cand in candidates:  # a damaged checkpoint is bad input, not a failed variant
        verify_checkpoint(cand.checkpoint)
    ensure_writable_dir(out, "--out", need_mb=20)
    if on_plan:
        on_plan(candidates, options.variants())
    exporter = Exporter(frames, out, options, teacher, force)
    exporter.run(candidates, on_start, on_done)
    return exporter.export_manifest()
