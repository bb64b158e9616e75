"""`kdbench export` on the command line: a real run on the phantom store, and clear errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.errors import ConfigError
from kdbench.manifest import read_json

runner = CliRunner()


def test_export_command_writes_manifest_and_table(tiny_store, tiny_run, tmp_path) -> None:
    out = tmp_path / "export"
    args = ["export", "--store", str(tiny_store.path), "--run", str(tiny_run), "--out", str(out), "--int8", ""]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = read_json(out / "manifest.json")
    assert [r["variant"] for r in manifest["variants"]] == ["fp32"]
    rec = manifest["variants"][0]
    assert rec["status"] == "ok"
    assert f"{tiny_run.name}/fp32" in result.output
    assert f"{100 * rec['metrics']['test']['accuracy']:.1f}%" in result.output
    # a second run finds the variant done and says so
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "1 ok, 0 failed, 1 resumed" in again.output
    assert "1 ok, 0 failed, 0 resumed" in result.output
    assert read_json(out / "manifest.json")["variants"][0]["metrics"] == rec["metrics"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give exactly one of --checkpoint, --run, --study"),
        (["--run", "RUN", "--prune", "0.3,1.5"], "ratio 1.5 is outside (0, 1)"),
        (["--run", "RUN", "--int8", "tensorrt"], "unknown backend(s) ['tensorrt']"),
    ],
)
def test_bad_options_are_config_errors(tiny_store, tiny_run, tmp_path, extra, message) -> None:
    extra = [str(tiny_run) if a == "RUN" else a for a in extra]
    result = runner.invoke(app, ["export", "--store", str(tiny_store.path), "--out", str(tmp_path / "o"), *extra])
    assert isinstance(result.exception, ConfigError)
    assert message in str(result.exception)


def test_every_variant_failed_exits_non_zero(tiny_store, tiny_run, tmp_path) -> None:
    """A zero parity tolerance fails the fp32 check for real (ONNX Runtime vs PyTorch differ by ~1e-5)."""
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--store", str(tiny_store.path), "--run", str(tiny_run), "--out", str(out),
                                 "--int8", "", "--parity-tol", "0", "--parity-rtol", "0"], terminal_width=200)
    assert result.exit_code == 1, result.output
    assert "0 ok, 1 failed" in result.output and "error: every variant failed (1)" in result.output
    assert read_json(out / "manifest.json")["variants"][0]["status"] == "failed"


def test_unwritable_export_folder_is_refused_before_exporting(tiny_store, tiny_run, tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["export", "--store", str(tiny_store.path), "--run", str(tiny_run),
                                 "--out", str(tmp_path / "file" / "export")])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == f"--out {tmp_path / 'file' / 'export'}: cannot create the folder (Not a directory)"


def test_damaged_checkpoint_is_refused_up_front(tiny_store, tmp_path) -> None:
    from kdbench.errors import DataError
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint

    good = save_checkpoint(create_model("mobilenet_v3_small"), tmp_path / "good.pt", arch="mobilenet_v3_small",
                           num_classes=4, input_size=tiny_store.size)
    data = bytearray(good.read_bytes())
    data[len(data) // 2: len(data) // 2 + 512] = bytes(512)  # zeroed bytes inside a weight tensor
    bad = tmp_path / "best.pt"
    bad.write_bytes(bytes(data))
    result = runner.invoke(app, ["export", "--store", str(tiny_store.path), "--checkpoint", str(bad),
                                 "--out", str(tmp_path / "export")])
    assert isinstance(result.exception, DataError)
    assert str(result.exception).startswith(f"checkpoint {bad} is corrupt: its tensors hash to ")
    assert not (tmp_path / "export").exists()
