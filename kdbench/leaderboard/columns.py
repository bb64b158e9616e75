"""The leaderboard's fixed columns: names (leaderboard.csv header and leaderboard.json row keys, in this order) and
what each holds.

Like timm's results CSVs, the names never change between runs and an absent value is an empty cell; where a
column means what a timm column means it has timm's name (``model``, ``infer_img_size``, ``infer_batch_size``,
``infer_samples_per_sec``, ``infer_step_time``, ``param_count`` in millions, ``infer_gmacs``), so ``pd.merge`` with
a timm benchmark CSV works on them. Every column has one type in every row (``BoardRow``'s field types): a flag is
a boolean, never empty (``True``/``False`` in the CSV, so pandas reads dtype bool; true/false in the JSON); a
number is a number or empty (never text such as '-' or 'n/a'); categories (decision, verdict, ...) are text.
Interval ends are cut to their metric's range (``RANGES``): a t or normal-approximation interval of an accuracy
can otherwise run past 0 or 1.
"""

from __future__ import annotations

import math

_INTERVAL = "95% interval from a bootstrap that resamples clips (frames of one cine loop move together)"
_SEED_PART = ("for a seed mean, paired_interval's seed, clip and seed x clip parts instead (new seeds and new clips: "
              "kdbench.metrics.seed_clip_interval)")

COLUMNS: dict[str, str] = {
    "target": "hardware target (a profile in hardware_profiles/); 'none' when no profile results were given",
    "front": "Pareto front over validation accuracy, latency and size (1 = Pareto-optimal: no other model of this "
             "target is at least as accurate on validation, as fast and as small and better in one); empty = not "
             "ranked (decision_note says why)",
    "pareto": "boolean: True when front = 1 (False for the other fronts and for rows not ranked)",
    "decision": "this model against the target's best on validation, paired on the same validation frames (and seed "
                "indices, for seed means) at the margin δ (kdbench.leaderboard.decisions): best = the most accurate "
                "ranked model; equivalent = the whole 95% interval of best minus it lies inside ±δ (a loss below δ "
                "is accepted by definition, even when the interval excludes 0); worse = not equivalent and that "
                "interval lies above 0; undecided = neither (see decision_note)",
    "decision_note": "the comparison behind the decision (best - this [95% interval], how it was paired); for an "
                     "undecided model what would settle it (about how many seeds or validation clips), or why no "
                     "comparison could be made (e.g. no per-frame predictions saved); for a row not ranked (empty "
                     "front and decision) why: 'not ranked: ...' (no profile result on the target, profiling failed, "
                     "a figure the ranking needs is missing)",
    "decision_ci_low": "lower end of the 95% interval of best minus this model's validation accuracy "
                       "(kdbench.metrics.paired_interval), cut to [-1, 1]",
    "decision_ci_high": "upper end of that interval",
    "recommended": "boolean: True for the model recommended on this target (one row per target at most)",
    "recommended_uncertain": "boolean: True when the recommended model was recommended with a flag: no model surely "
                             "meets the constraints and this one's estimate band straddles a limit (measure it "
                             "before relying on it); False on every other row",
    "model": "the model a user would ship, named like timm's '<architecture>.<weights tag>': "
             "'<student>.<method>_trial<trial>_<variant>' (e.g. 'mobilenet_v3_small.vanilla_trial1_int8_ort'; no "
             "'_trial<n>' part when the row has no study trial); the text before the first '.' is the architecture, "
             "to merge with a timm results CSV on its model column. One exported file keeps one name in every "
             "runtime (see runtime)",
    "student": "student architecture",
    "method": "distillation method (scratch = no teacher)",
    "temperature": "distillation temperature T the method ran with: the trial's resolved method settings (its "
                   "defaults included; kdbench.distill.registry.resolved_hparams); empty: scratch, a method without "
                   "a T (wttm), or learned by CTKD",
    "alpha": "weight of the distillation loss, from the same resolved settings (empty: scratch, or a method "
             "without an alpha)",
    "train_batch_size": "training batch size (not the inference batch: see infer_batch_size)",
    "trial": "the study trial (configuration) the row comes from",
    "seed": "the training seed whose checkpoint was exported",
    "variant": "exported variant (fp32, int8_ort, int8_openvino, fp16, prunedNN); 'checkpoint' = the trained "
               "PyTorch models of every seed, not exported",
    "precision": "numeric precision that ran (fp32, fp16, bf16, int8): the runtime's own report when the profile "
                 "recorded it, else the variant's",
    "runtime": "runtime the latency was measured in (onnxruntime, openvino, ...)",
    "runtime_version": "version of that runtime",
    "threads": "inference threads used for the latency figures",
    "infer_img_size": "input size in pixels (square, grey)",
    "infer_batch_size": "batch size of the latency figures (always 1 here: a frame at a time)",
    "infer_samples_per_sec": "timm's throughput: infer_batch_size x 1000 / infer_step_time (frames per second at "
                             "batch 1, from the median step; for kdbench's own profiles the same figure as fps)",
    "infer_step_time": "timm's step time: the median (p50) time of one batch-1 step in milliseconds (the same "
                       "figure as latency_p50_ms)",
    "val_accuracy": "validation frame accuracy: the figure the ranking, the fronts and the recommendation use (the "
                    "variant's own, re-measured on the exported file; the seed mean for 'checkpoint' rows). "
                    "Selection-biased upward: epochs, configurations, the exported seed and the variant were all "
                    "chosen on these frames (seed_mean_val_accuracy and the test figures are less so)",
    "val_accuracy_low": f"lower end of the {_INTERVAL}, {_SEED_PART}; accuracy intervals are cut to [0, 1]",
    "val_accuracy_high": "upper end of that interval",
    "test_accuracy": "test frame accuracy of this variant, re-measured on the exported file in its runtime (the seed "
                     "mean for 'checkpoint' rows); reported, never used to choose",
    "test_accuracy_low": f"lower end of the {_INTERVAL}, {_SEED_PART}",
    "test_accuracy_high": "upper end of that interval",
    "test_clip_accuracy": "test clip accuracy: one prediction per cine loop from its frames' mean logits",
    "test_clip_accuracy_low": f"lower end of the {_INTERVAL}",
    "test_clip_accuracy_high": "upper end of that interval",
    "test_macro_f1": "test macro-F1 (frames)",
    "test_clip_macro_f1": "test macro-F1 of the clip predictions",
    "test_ece": "test expected calibration error (15 equal-width confidence bins; 0 = confidence matches accuracy); "
                "biased upward on a finite split: read it against the noise floor in the README (a perfectly "
                "calibrated model's ECE on as many frames)",
    "test_ece_low": "lower end of its 95% interval: a basic (bias-shifted) bootstrap over clips, from the saved "
                    "per-frame test predictions (kdbench.leaderboard.calibration.ece_interval)",
    "test_ece_high": "upper end of that interval",
    "test_worst_source_accuracy": "lowest per-dataset (source) test accuracy",
    "shortcut_view": "the shortcut check: of the views present in more than one source, the one whose recall differs "
                     "most between its sources (a model that learned the source, not the view, shows a large gap)",
    "shortcut_sources": "the two sources of that view, highest recall first",
    "shortcut_gap": "the recall gap between them (test)",
    "test_frames": "number of test frames behind the test figures",
    "test_clips": "number of test clips (cine loops) they come from",
    "seed_mean_val_accuracy": "mean validation accuracy over the seeds of the fp32 training of this configuration",
    "seed_mean_test_accuracy": "mean test accuracy over those seeds",
    "seed_test_low": "lower end of the 95% interval of seed_mean_test_accuracy (see seed_interval)",
    "seed_test_high": "upper end of that interval",
    "seed_interval": "how that interval was obtained: 'seeds+clips' (seed, clip and seed x clip variance parts, "
                     "from the runs' saved predictions: kdbench.metrics.seed_clip_interval) or 'seeds' "
                     "(a t interval over seeds only: the predictions were not saved)",
    "n_seeds": "number of seeds behind the seed means",
    "relative_accuracy": "test_accuracy / the teacher's test accuracy",
    "seed_relative_accuracy": "seed_mean_test_accuracy / the teacher's accuracy on the same test frames",
    "seed_relative_low": "lower end of its 95% interval: Fieller's ratio interval on paired_interval's seed, clip and "
                         "seed x clip parts, the teacher on the same clips (kdbench.metrics.relative_interval; "
                         "coverage simulated); not below 0",
    "seed_relative_high": "upper end of that interval (empty when unbounded)",
    "latency_p50_ms": "median batch-1 latency in milliseconds: the same figure as infer_step_time, kept under this "
                      "name for compatibility, as the ranking objective and as the name of its band columns",
    "latency_p50_low_ms": "low end of the latency band: an estimate's error band, or the lowest p50 of a "
                          "measurement's fresh-process runs",
    "latency_p50_high_ms": "high end of that band",
    "latency_p90_ms": "90th-percentile batch-1 latency in milliseconds",
    "fps": "frames per second at batch 1 as the profile recorded it (the figure the fps constraint checks; its band "
           "in fps_low/fps_high); kept for compatibility beside infer_samples_per_sec",
    "fps_low": "low end of the fps band (an estimate's error band, or a measurement's spread over its runs); the "
               "verdict is 'uncertain' when the band straddles the fps limit",
    "fps_high": "high end of that band",
    "frame_fps": "frames per second of the whole frame path on the target: preprocessing of a raw frame (numpy; timed once per input size in a profile command) + the model",
    "model_memory_mb": "the model's own memory, MB: weights and activation arena, the peak RSS increment over the "
                       "same runtime running a trivial model (the figure the memory constraint checks)",
    "model_memory_mb_low": "low end of the model memory band (an estimate's, or the spread over runs)",
    "model_memory_mb_high": "high end of that band",
    "peak_rss_mb": "the whole process's peak resident memory, MB (runtime included)",
    "size_mb": "model file size, MB (1e6 bytes)",
    "param_count": "parameters, millions",
    "infer_gmacs": "multiply-accumulates per frame, billions",
    "estimated": "boolean: True when the latency, fps and memory figures are estimated (latency model for an absent "
                 "target), False when they were measured (on the target, or over ssh) or there are none",
    "error_band_pct": "expected error of an estimate, +-% (estimates only)",
    "unstable": "boolean: True when the measurement was not stable across repeats (left out of the recommendation "
                "unless --include-unstable); False for stable measurements, estimates and rows without a profile",
    "verdict": "meets / fails / uncertain (an estimate's band straddles a limit) / unknown (a constrained figure is "
               "missing) / n/a (the target has no constraints)",
    "verdict_reasons": "which constraints are not met, straddled or not measured",
    "kd_vs_scratch_diff": "best distillation minus scratch, mean paired test-accuracy difference over seeds, for this "
                          "architecture",
    "kd_vs_scratch_p_holm": "Holm-corrected p-value of that difference (a number, empty when there is none)",
    "kd_vs_scratch_verdict": "KD better / scratch better (Holm p < 0.05) / equivalent within the study's margin / "
                             "undecided at this budget (with about how many seeds would detect the margin)",
    "kd_vs_scratch_source": "confirm = fresh confirmation seeds (`kdbench search confirm`); search = the search's own "
                            "runs (optimistic: the configuration was chosen from them)",
    "variant_id": "the variant's id in the export manifest",
}

PROPORTION = (0.0, 1.0)
DIFFERENCE = (-1.0, 1.0)
# The range each interval end can take; BoardRow cuts every value set on these columns to it.
RANGES: dict[str, tuple[float, float]] = {
    **{f"{m}_{end}": PROPORTION for m in ("val_accuracy", "test_accuracy", "test_clip_accuracy", "test_ece")
       for end in ("low", "high")},
    "seed_test_low": PROPORTION, "seed_test_high": PROPORTION,
    "decision_ci_low": DIFFERENCE, "decision_ci_high": DIFFERENCE,
    "seed_relative_low": (0.0, math.inf), "seed_relative_high": (0.0, math.inf),
}


def column_names() -> list[str]:
    """The CSV header, in order."""
    return list(COLUMNS)
