"""What does opening a full-scale frame store cost a process? Resident memory (and its peak) and seconds.

    python tests/benchmarks/bench_store_open.py [--frames 350000] [--store DIR]

Writes a synthetic store (``synthetic_store.write_store``, 8 px frames: the index is what is measured) unless
``--store`` names one, then opens it in a fresh interpreter that has already imported kdbench and numpy, and
prints ``store open: +X MB resident, peak +Y MB, Z s`` (``/proc/self/status`` VmRSS and VmHWM), then reads every
public column once and prints the resident memory after that.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

_CHILD = r"""
import json, sys, time
import numpy as np
from kdbench.data.store import FrameStore

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}

before = status()
t0 = time.perf_counter()
store = FrameStore.open(sys.argv[1])
seconds = time.perf_counter() - t0
opened = status()
rows = store.indices("test")
touched = [store.sources[rows], store.videos[rows], store.patients[rows], store.splits == "train", store.labels]
used = status()
print(json.dumps({"before": before, "opened": opened, "used": used, "seconds": seconds, "n": len(store)}))
"""


def measure(store: Path) -> dict:
    """Open the store in a fresh interpreter; its memory before, after opening and after reading the columns."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(store)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Write (or take) a store, measure its opening, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=350_000, help="frames of the synthetic store")
    parser.add_argument("--store", type=Path, default=None, help="an existing store to measure instead")
    args = parser.parse_args()
    from synthetic_store import write_store

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or write_store(Path(tmp) / "store", args.frames, size=8)
        m = measure(store)
    b, o, u = m["before"], m["opened"], m["used"]
    print(f"{m['n']} frames")
    print(f"store open: +{o['VmRSS'] - b['VmRSS']:.1f} MB resident, peak +{o['VmHWM'] - b['VmRSS']:.1f} MB, "
          f"{m['seconds']:.2f} s")
    print(f"after reading the columns once: +{u['VmRSS'] - b['VmRSS']:.1f} MB resident, peak +{u['VmHWM'] - b['VmRSS']:.1f} MB")


if __name__ == "__main__":
    main()
