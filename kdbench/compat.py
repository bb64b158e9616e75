"""Import torchvision on machines where its compiled ops cannot load.

The torchvision 0.28.0 wheel that matches the CPU-only torch 2.13.0 ships compiled ops linked
against CUDA libraries. Where those libraries are missing, loading the ops fails, and importing
torchvision then dies at the ``@register_fake("torchvision::nms")`` decorators in
``torchvision/_meta_registrations.py`` with "operator torchvision::nms does not exist".
Defining the two op schemas before the import lets torchvision import; the classification models
kdbench uses never call those ops. Where torchvision loads normally (a GPU box with the CUDA
wheels) the schemas already exist and this module does nothing.

Always ``from kdbench.compat import torchvision`` instead of ``import torchvision``.
"""

from __future__ import annotations

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # kept alive: dropping the Library object would drop the schemas


def _op_exists(name: str) -> bool:
    """True when ``torchvision::<name>`` is already registered with the dispatcher."""
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def define_missing_torchvision_ops() -> list[str]:
    """Define the torchvision op schemas that are missing; returns the names it defined."""
    global _library
    missing = [name for name in _SCHEMAS if not _op_exists(name)]
    if not missing:
        return []
    if _library is None:
        _library = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        _library.define(_SCHEMAS[name])
    return missing


def _import_torchvision():
    """Import torchvision, defining the missing op schemas only if the plain import fails."""
    try:
        import torchvision as tv  # noqa: F401

        return tv
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    import sys

    for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[mod]  # drop the half-imported package before retrying
    define_missing_torchvision_ops()
    import torchvision as tv

    return tv


torchvision = _import_torchvision()
