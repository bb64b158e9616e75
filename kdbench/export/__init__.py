"""Deployable variants: ONNX fp32, int8 (ONNX Runtime, OpenVINO), fp16 and pruned models, each re-evaluated in its runtime.

- ``candidates``: which students to export (a checkpoint, a run folder, a study's best trials);
- ``variants``: the variant registry, one module per variant;
- ``pipeline``: the export stage (``export_variants``, ``Exporter``), writing ``EXPORT/manifest.json``
  (``kdbench.export_manifest.ExportManifest``);
- ``evaluate``: scoring a variant file in its runtime; ``prune``: structured pruning and its fine-tune.

The conversions themselves (ONNX, int8, fp16) and the runtimes are in ``kdbench.convert``, below the search.
"""
