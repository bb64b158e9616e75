"""One runtime registry (kdbench.convert.runtimes.RUNTIMES) for export's evaluation and profiling; the profile agent,
one self-contained file that travels to the target, keeps a copy that these tests tie to it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from kdbench.convert import runtimes
from kdbench.convert.runtimes import EVALUATED, RUNTIMES, Runtime, load_runner
from kdbench.errors import ConfigError
from kdbench.profile import agent, hardware


def test_the_agents_table_is_the_registrys() -> None:
    assert list(agent.RUNTIME_TABLE) == list(RUNTIMES)
    for name, runtime in RUNTIMES.items():
        assert agent.RUNTIME_TABLE[name] == runtime.agent_entry(), name
        assert agent.runtime_module(name) == runtime.module, name
    assert agent.RUNTIMES == tuple(RUNTIMES) == hardware.RUNTIMES


def _kdbench_imports(tree: ast.AST) -> list[ast.AST]:
    """Imports of kdbench in a syntax tree."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("kdbench"))
            or isinstance(n, ast.Import) and any(a.name.split(".")[0] == "kdbench" for a in n.names)]


def test_the_agent_stays_one_file_without_kdbench_imports() -> None:
    """kdbench is imported only where it may be missing (a .pt checkpoint on a machine with kdbench installed)."""
    tree = ast.parse(Path(agent.__file__).read_text(encoding="utf-8"))
    guarded = [n for t in ast.walk(tree) if isinstance(t, ast.Try)
               and any("ImportError" in ast.unparse(h.type or ast.Constant(None)) for h in t.handlers)
               for stmt in t.body for n in _kdbench_imports(stmt)]
    assert _kdbench_imports(tree) == guarded


def test_export_evaluates_in_the_registrys_runtimes() -> None:
    assert EVALUATED == ("onnxruntime", "openvino")
    assert "onnx" in RUNTIMES["onnxruntime"].formats and "openvino" in RUNTIMES["openvino"].formats
    with pytest.raises(ConfigError, match="'pytorch' is not supported; expected one of onnxruntime, openvino"):
        load_runner("m.pt2", "pytorch")


def test_a_new_runtime_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A toy runtime (logits = the frame's mean per class) added to the registry scores files like the real ones."""
    def toy_runner(path: str | Path):
        weights = np.load(path)
        return lambda x: (x.reshape(len(x), -1).mean(axis=1, keepdims=True) * weights).astype(np.float32)

    np.save(tmp_path / "toy.npy", np.arange(4, dtype=np.float32))
    monkeypatch.setitem(RUNTIMES, "toy", Runtime("toy", "numpy", ("npy",), "cpu", runner=toy_runner))
    logits = load_runner(tmp_path / "toy.npy", "toy")(np.ones((2, 1, 3, 3), np.float32))
    np.testing.assert_allclose(logits, [[0, 1, 2, 3], [0, 1, 2, 3]])
    assert runtimes.RUNTIMES["toy"].agent_entry() == {"formats": ("npy",), "device": "cpu"}
