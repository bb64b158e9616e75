"""The torchvision workaround: torchvision imports, its models build, and the fix is idempotent."""

from __future__ import annotations

import subprocess
import sys

import torch


def test_torchvision_imports_and_builds_a_model():
    from kdbench.compat import torchvision

    model = torchvision.models.mobilenet_v3_small(num_classes=4)
    out = model(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 4)


def test_op_schemas_exist_after_import_and_second_call_defines_nothing():
    from kdbench.compat import _op_exists, define_missing_torchvision_ops

    assert _op_exists("nms") and _op_exists("qnms")
    assert define_missing_torchvision_ops() == []


def test_plain_import_fails_without_the_workaround_here_or_works_natively():
    """Documents why the module exists: in a fresh interpreter, either torchvision imports on its
    own (a CUDA machine; the workaround then defines nothing) or it fails on the nms schema."""
    code = (
        "import torch\n"
        "try:\n"
        "    import torchvision\n"
        "    print('native')\n"
        "except RuntimeError as e:\n"
        "    print('broken' if 'torchvision::nms' in str(e) else 'other: ' + str(e))\n"
    )
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert plain in {"native", "broken"}
    via_compat = subprocess.run(
        [sys.executable, "-c", "from kdbench.compat import torchvision, define_missing_torchvision_ops as d; print(torchvision.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert via_compat.startswith("0.")
