"""Package import cycles of kdbench at a git revision, counting function-local imports (issue 23's measure).

    python tests/benchmarks/count_cycles.py REV [REV ...]      # e.g. 69646dc HEAD

Each revision's ``kdbench/`` is taken with ``git archive`` into a temporary folder and its package graph computed
with ``tests/test_layers.py``'s ``package_graph`` (every module-level and function-local import); the strongly
connected groups of packages are printed.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from test_layers import cycles, package_graph  # noqa: E402


def main() -> None:
    for rev in sys.argv[1:] or ["HEAD"]:
        with tempfile.TemporaryDirectory() as tmp:
            data = subprocess.run(["git", "-C", str(TESTS.parent), "archive", rev, "kdbench"], capture_output=True,
                                  check=True).stdout
            tarfile.open(fileobj=io.BytesIO(data)).extractall(tmp)
            groups = cycles(package_graph(Path(tmp) / "kdbench"))
        print(f"{rev}: {len(groups)} package cycle group(s) {[sorted(g) for g in groups]}")


if __name__ == "__main__":
    main()
