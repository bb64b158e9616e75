"""The leaderboard's fixed columns: names (leaderboard.csv header, in this order) and what each holds.

Like timm's results CSVs, the names never change between runs; an absent value is an empty cell.
"""

from __future__ import annotations

COLUMNS: dict[str, str] = {
    "target": "hardware target (a profile in hardware_profiles/); 'none' when no profile results were given",
    "front": "Pareto front (1 = Pareto-optimal: no other model of this target is at least as accurate, as fast "
             "and as small and better in one); empty = not ranked (see 'note')",
    "pareto": "yes when front = 1",
    "student": "student architecture",
    "method": "distillation method (scratch = no teacher)",
    "temperature": "distillation temperature T (empty: scratch, or learned by CTKD)",
    "alpha": "weight of the distillation loss",
    "batch_size": "training batch size",
    "variant": "exported variant (fp32, int8_ort, int8_openvino, fp16, prunedNN); 'checkpoint' = the trained "
               "PyTorch model, not exported",
    "precision": "numeric precision of the variant (fp32, fp16, int8)",
    "runtime": "runtime the figures were measured in (onnxruntime, openvino, ...)",
    "accuracy": "test accuracy of this variant, re-measured on the exported file in its runtime (or the seed mean "
                "when there is no exported file)",
    "seed_mean_accuracy": "mean test accuracy over the seeds of the fp32 training of this configuration",
    "seed_ci_low": "lower end of the 95% BCa bootstrap interval of seed_mean_accuracy",
    "seed_ci_high": "upper end of that interval",
    "n_seeds": "number of seeds behind seed_mean_accuracy",
    "relative_accuracy": "accuracy / the teacher's test accuracy",
    "macro_f1": "test macro-F1 of this variant",
    "worst_source_accuracy": "lowest per-dataset (source) test accuracy: a model that learned the source, not the "
                             "view, scores low here",
    "latency_p50_ms": "median batch-1 latency in milliseconds",
    "latency_p90_ms": "90th-percentile batch-1 latency in milliseconds",
    "fps": "frames per second at batch 1 (1000 / mean latency)",
    "memory_mb": "resident memory the model adds over the bare runtime, MB",
    "size_mb": "model file size, MB (1e6 bytes)",
    "params": "parameters",
    "macs": "multiply-accumulates per frame",
    "measured": "measured (on the target, or over ssh) or estimated (latency model for an absent target)",
    "error_band_pct": "expected error of an estimate, +-%, about one standard deviation (estimates only)",
    "meets_constraints": "yes / no / unknown (a constrained figure is missing) / n/a (target has no constraints)",
    "violations": "which constraints are not met, or which figures are missing",
    "kd_vs_scratch_diff": "best distillation minus best scratch, mean paired test-accuracy difference over seeds, "
                          "for this architecture",
    "kd_vs_scratch_p_holm": "Holm-corrected paired t-test p-value of that difference",
    "kd_vs_scratch_p_a_gt_b": "bootstrap probability that distillation beats scratch for this architecture",
    "variant_id": "the variant's id in the export manifest",
    "trial": "the study trial (configuration) the variant was exported from",
    "note": "why a row is not ranked, or anything else to know about it",
}


def column_names() -> list[str]:
    """The CSV header, in order."""
    return list(COLUMNS)
