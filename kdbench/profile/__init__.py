"""Profiling exported variants on hardware targets: measured locally, over ssh, or estimated.

- ``hardware``: hardware profiles (``hardware_profiles/*.toml``), validated key by key;
- ``agent``: the self-contained measurement script (stdlib + numpy + runtime; its docstring states
  the measurement rule), run in a fresh subprocess locally and copied to remote targets;
- ``local`` / ``remote``: run the agent per model here or over ssh and collect its JSON;
- ``features`` / ``estimate`` / ``calibrate``: the per-kernel-class latency model for absent targets,
  its constants (``calibration/<target>.json``) and their fitting with leave-one-out errors;
- ``results``: model discovery, result records (``ProfileRecord``; ``load_results`` is results.json's one reader), the
  writer and the table;
- ``stage``: ``profile_models``, a whole ``kdbench profile`` run as a library call (``kdbench.profile_models``).

Runtimes are the registry ``kdbench.convert.runtimes.RUNTIMES``; the agent keeps a copy (tests/test_runtime_registry.py).
"""
