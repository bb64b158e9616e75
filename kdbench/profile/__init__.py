"""Profiling exported variants on hardware targets: measured locally, over ssh, or estimated.

- ``hardware``: hardware profiles (``hardware_profiles/*.toml``), validated key by key;
- ``agent``: the self-contained measurement script (stdlib + numpy + runtime; its docstring states
  the measurement rule), run in a fresh subprocess locally and copied to remote targets;
- ``local`` / ``remote``: run the agent per model here or over ssh and collect its JSON;
- ``features`` / ``estimate`` / ``calibrate``: the per-kernel-class latency model for absent targets,
  its constants (``calibration/<target>.json``) and their fitting with leave-one-out errors;
- ``results``: model discovery, result records, ``<out>/<target>/results.json`` and the table.
"""
