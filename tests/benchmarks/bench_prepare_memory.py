"""How much memory does ``prepare`` hold for one long clip? Peak resident memory of decoding a 1024x768 loop.

    python tests/benchmarks/bench_prepare_memory.py [--frames 150] [--width 1024] [--height 768] [--keep 16]

Writes one MJPG AVI (a bright sector over a dark frame, moving), then decodes it with
``kdbench.data.prepare.decode_clip`` (what each prepare worker does per clip) in a fresh interpreter and prints
``prepare peak: +X MB over the interpreter (frames kept K of N)`` from ``/proc/self/status`` VmHWM.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, sys
from kdbench.data.clips import Clip
from kdbench.data.prepare import decode_clip

def mb(key):
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return int(fields[key].split()[0]) / 1024

import cv2, numpy  # the decoder's own libraries, loaded before the baseline
cv2.VideoCapture(sys.argv[1]).release()
base = mb("VmRSS")
clip = Clip(source="echonet_lvh", patient="p", video="long", view="PLAX", split="train", files=(sys.argv[1],),
            kind="video", csv="-")
result = decode_clip(clip, 112, int(sys.argv[2]))
print(json.dumps({"base": base, "peak": mb("VmHWM"), "kept": len(result["meta"]["frame_ids"]),
                  "available": result["meta"]["available"]}))
"""


def write_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """A long MJPG loop: a bright fan over a dark background, drifting frame to frame."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (width, height))
    rng = np.random.default_rng(0)
    for t in range(frames):
        img = rng.integers(0, 30, (height, width, 3), dtype=np.uint8)
        cv2.ellipse(img, (width // 2, 40), (height - 80, height - 80), 90, -35 + t % 5, 35, (180, 180, 180), -1)
        writer.write(img)
    writer.release()
    return path


def main() -> None:
    """Write the clip, decode it in a fresh interpreter, print the peak."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames of the clip")
    parser.add_argument("--width", type=int, default=1024, help="frame width")
    parser.add_argument("--height", type=int, default=768, help="frame height")
    parser.add_argument("--keep", type=int, default=16, help="frames per video kept (prepare's --frames-per-video)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "long.avi", args.frames, args.width, args.height)
        out = subprocess.run([sys.executable, "-c", _CHILD, str(clip), str(args.keep)], check=True,
                             capture_output=True, text=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.width}x{args.height}, {m['available']} frames")
    print(f"prepare peak: +{m['peak'] - m['base']:.1f} MB over the interpreter (frames kept {m['kept']} of "
          f"{m['available']})")


if __name__ == "__main__":
    main()
