"""Wall time of the chest suite on one radiograph: MC dropout (T = 20) + all seven saliency maps.

    python -m bench.chest_study [--size 2048] [--models models] [--mc-samples 20] [--methods all]

The radiograph is the demo's (:func:`app.demo_studies.chest_source`): a synthetic 512 px chest
with cardiomegaly (so the top finding is a real one) upsampled to ``--size`` and stored as a
12-bit MONOCHROME1 DX (the inversion and the LUTs are exercised as in production). The app runs as a subprocess exactly as in production;
the figures printed are the whole run's wall time (process start included) and, from the
app's own log lines, the time of MC sampling and of the saliency maps. The issue's goal:
under 60 s per study on a 2-core CPU. No data is downloaded; the image is synthetic.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from candor.saliency import METHODS

ROOT = Path(__file__).resolve().parents[1]
_MC = re.compile(r"MC-dropout passes at \S+ in ([0-9.]+) s")
_SALIENCY = re.compile(r"(\d+) saliency map\(s\) in ([0-9.]+) s \(([0-9]+) forward-pass equivalents\)")


def write_radiograph(folder: Path, size: int) -> Path:
    """The demo's synthetic chest radiograph (cardiomegaly, MONOCHROME1 DX) at ``size`` px, in ``folder``."""
    from app.demo_studies import chest_source

    return chest_source(folder, size, seed=3).path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--mc-samples", type=int, default=20)
    parser.add_argument("--methods", default="all", help="'all', 'auto' or a comma-separated list")
    parser.add_argument("--goal", type=float, default=60.0, help="seconds per study")
    args = parser.parse_args(argv)
    methods = ",".join(METHODS) if args.methods == "all" else args.methods

    with tempfile.TemporaryDirectory() as scratch:
        input_dir, output_dir = Path(scratch) / "in", Path(scratch) / "out"
        write_radiograph(input_dir, args.size)
        environ = {**os.environ, "CANDOR_MC_SAMPLES": str(args.mc_samples), "CANDOR_SALIENCY_METHODS": methods,
                   "CANDOR_DEVICE": "cpu"}
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "app", "-i", str(input_dir), "-o", str(output_dir),
                                 "-m", str(args.models)], cwd=ROOT, env=environ, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        outputs = len(list(output_dir.glob("*.dcm")))
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        return 1
    mc = _MC.search(result.stderr)
    saliency = _SALIENCY.search(result.stderr)
    print(f"chest {args.size}×{args.size} MONOCHROME1 DX, T={args.mc_samples}, methods {methods}, "
          f"{os.cpu_count()} CPU(s), torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"  MC dropout {float(mc.group(1)) if mc else float('nan'):.1f} s; saliency "
          f"{saliency.group(1) if saliency else 0} maps in {float(saliency.group(2)) if saliency else 0.0:.1f} s "
          f"({saliency.group(3) if saliency else 0} forward-pass equivalents); {outputs} objects written")
    print(f"  whole run (process start to exit) {elapsed:.1f} s; goal < {args.goal:.0f} s: "
          f"{'met' if elapsed < args.goal else 'NOT met'} (ratio {elapsed / args.goal:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
