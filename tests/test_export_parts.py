"""The export building blocks on their own: candidate resolution, pruning ratios, exporter fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdbench.errors import ConfigError, DataError
from kdbench.export.candidates import from_study_dir, resolve_candidates
from kdbench.export.prune import parse_ratios, prune_model, variant_name


def _run(dirpath, student: str, method: str, seed: int, val: float, lr: float = 1e-3) -> None:
    dirpath.mkdir(parents=True)
    (dirpath / "best.pt").write_bytes(b"weights")  # resolution only looks at the files' presence
    (dirpath / "metrics.json").write_text(json.dumps({
        "student": student, "method": method, "hparams": {"temperature": 4},
        "config": {"seed": seed, "lr": lr, "epochs": 2}, "metrics": {"val": {"accuracy": val}},
    }))


def test_study_dir_without_a_list_takes_the_best_seed_of_the_top_configurations(tmp_path) -> None:
    _run(tmp_path / "t0" / "seed0", "mobilenet_v3_small", "vanilla", 0, 0.70)
    _run(tmp_path / "t0" / "seed1", "mobilenet_v3_small", "vanilla", 1, 0.80)
    _run(tmp_path / "t1" / "seed0", "mobilenet_v3_small", "vanilla", 0, 0.75, lr=1e-2)
    _run(tmp_path / "t2" / "seed0", "shufflenet_v2_x1_0", "scratch", 0, 0.60)
    cands = from_study_dir(tmp_path, top=2)
    assert [c.id for c in cands] == ["t0_seed1", "t1_seed0"]
    assert cands[0].method == "vanilla" and cands[0].hparams == {"temperature": 4}
    assert cands[0].training_metrics["val"]["accuracy"] == 0.80


def test_study_dir_best_trials_list_is_followed_in_order(tmp_path) -> None:
    _run(tmp_path / "runs" / "a", "mobilenet_v3_small", "vanilla", 0, 0.5)
    _run(tmp_path / "runs" / "b", "ghostnet_100", "dkd", 0, 0.9)
    (tmp_path / "best_trials.json").write_text(json.dumps(["runs/a", {"checkpoint": "runs/b/best.pt"}]))
    cands = from_study_dir(tmp_path)
    assert [(c.id, c.student) for c in cands] == [("runs_a", "mobilenet_v3_small"), ("runs_b", "ghostnet_100")]


def test_candidate_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        resolve_candidates(run=tmp_path, checkpoint=tmp_path / "x.pt")
    with pytest.raises(DataError, match="has no best.pt"):
        resolve_candidates(run=tmp_path)
    with pytest.raises(DataError, match="no run directories"):
        resolve_candidates(study_dir=tmp_path)
    (tmp_path / "best_trials.json").write_text(json.dumps([{"seed": 1}]))
    with pytest.raises(DataError, match="entry 0"):
        resolve_candidates(study_dir=tmp_path)


def test_prune_ratios_and_names() -> None:
    assert parse_ratios("0.3, 0.5") == [0.3, 0.5]
    assert parse_ratios("") == []
    assert [variant_name(r) for r in (0.3, 0.5, 0.125)] == ["pruned30", "pruned50", "pruned12.5"]
    with pytest.raises(ConfigError, match="'x' is not a number"):
        parse_ratios("0.3,x")
    with pytest.raises(ConfigError, match="outside"):
        parse_ratios("0")


def test_pruning_removes_channels_but_keeps_the_classifier() -> None:
    import torch

    from kdbench.models import create_model, model_info

    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=4).eval()
    before = model_info(model, 32)
    pruned = prune_model(model, 0.5, 32)
    after = model_info(pruned, 32)
    assert after["params"] < 0.5 * before["params"]
    assert after["macs"] < 0.6 * before["macs"]
    assert pruned(torch.rand(2, 1, 32, 32)).shape == (2, 4)
    assert model_info(model, 32) == before  # the original is untouched


def test_exporter_falls_back_to_torchscript_and_says_why(tmp_path) -> None:
    import torch

    from kdbench.convert.runtimes import ort_runner
    from kdbench.convert.onnx_export import export_onnx

    class DataDependent(torch.nn.Module):
        """A branch on a tensor value: torch.export refuses it, the tracer records one path."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x).mean((2, 3))
            if int(y.abs().sum().item() * 1000) % 2 == 0:
                y = y * 2
            return self.fc(y)

    torch.manual_seed(0)
    info = export_onnx(DataDependent().eval(), tmp_path / "m.onnx", 16)
    assert info["exporter"] == "torchscript"
    assert info["dynamo_error"] and "\x1b" not in info["dynamo_error"]
    out = ort_runner(tmp_path / "m.onnx")(np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32))
    assert out.shape == (3, 4)


def test_variant_record_round_trips_and_names_bad_keys() -> None:
    from kdbench.export_manifest import VariantRecord

    rec = VariantRecord(id="c/fp32", candidate="c", variant="fp32", status="ok", student="ghostnet_100", trial=7, seed=2,
                        metrics={"val": {"accuracy": 0.5}}, files=["c/fp32.onnx"])
    doc = json.loads(json.dumps(rec.to_dict()))
    assert VariantRecord.from_dict(doc) == rec
    with pytest.raises(DataError, match=r"m\.json: variants\[3\] has unknown key\(s\) \['colour'\]"):
        VariantRecord.from_dict({**doc, "colour": "red"}, "m.json: variants[3]")
    with pytest.raises(DataError, match="has no key 'status'"):
        VariantRecord.from_dict({k: v for k, v in doc.items() if k != "status"})
    with pytest.raises(DataError, match=r"seed = 1\.5; expected an integer"):
        VariantRecord.from_dict({**doc, "seed": 1.5})


def _search_study(root, seeds: dict[int, str]) -> None:
    """A `kdbench search` study with one complete trial; ``seeds``: seed -> the status its metrics.json records."""
    root.mkdir()
    (root / "study.json").write_text(json.dumps({"stage": "search", "study": "s", "config": {"objective": "val_accuracy"},
                                                 "seeds": list(seeds), "optuna_studies": {"ghostnet_100": "s.ghostnet_100"}}))
    trial = root / "trials" / "ghostnet_100" / "4"
    results = {}
    for seed, status in seeds.items():
        run = trial / f"seed_{seed}"
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"weights")
        (run / "metrics.json").write_text(json.dumps({"student": "ghostnet_100", "method": "vanilla", "status": status,
                                                      "config": {"seed": seed}, "metrics": {}}))
        results[str(seed)] = {"status": "ok", "val_accuracy": 0.9 - 0.1 * seed, "test_accuracy": 0.5}
    (trial / "trial.json").write_text(json.dumps({
        "trial": 4, "student": "ghostnet_100", "method": "vanilla", "hparams": {}, "train": {}, "config_id": "x",
        "state": "complete", "seeds": results, "mean_val_accuracy": 0.85, "std_val_accuracy": 0.07,
        "mean_test_accuracy": 0.5, "std_test_accuracy": 0.0}))


def test_runs_whose_loss_went_non_finite_are_never_exported(tmp_path) -> None:
    _run(tmp_path / "run", "mobilenet_v3_small", "vanilla", 0, 0.9)
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({**meta, "status": "non_finite_loss"}))
    with pytest.raises(DataError, match="status 'non_finite_loss'; only runs with status 'ok' are exported"):
        resolve_candidates(run=tmp_path / "run")
    with pytest.raises(DataError, match="no run directories"):  # nor picked up from a folder of runs
        from_study_dir(tmp_path)
    # a search study whose best seed went non-finite: its next seed is exported, with its trial and seed
    _search_study(tmp_path / "study", {0: "non_finite_loss", 1: "ok"})
    (cand,) = from_study_dir(tmp_path / "study")
    assert (cand.student, cand.trial, cand.seed) == ("ghostnet_100", 4, 1)
    assert cand.checkpoint.parent.name == "seed_1"
    assert cand.describe()["trial"] == 4 and cand.describe()["seed"] == 1

