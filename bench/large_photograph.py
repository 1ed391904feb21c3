"""Peak memory and wall time of one app run on a large fundus photograph (default 4000×4000 RGB).

    python -m bench.large_photograph [--size 4000] [--models models] [--mc-samples 20]

The photograph is a synthetic 1024 px fundus upsampled to the requested size (no data is
downloaded). The app runs as a subprocess exactly as in production; its peak resident set
size is read from ``getrusage(RUSAGE_CHILDREN)`` after it exits. Goal: under 4 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--mc-samples", type=int, default=20)
    args = parser.parse_args(argv)

    from candor.dicom.synthetic import write_op_study
    from training.synth.fundus import generate_fundus

    with tempfile.TemporaryDirectory() as scratch:
        input_dir, output_dir = Path(scratch) / "in", Path(scratch) / "out"
        small = generate_fundus(1024, rng=7).image
        large = Image.fromarray(small).resize((args.size, args.size), Image.Resampling.BICUBIC)
        write_op_study(input_dir, [np.asarray(large)])
        del small, large
        environ = {**os.environ, "CANDOR_MC_SAMPLES": str(args.mc_samples), "CANDOR_LOG_LEVEL": "WARNING"}
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "app", "-i", str(input_dir), "-o", str(output_dir),
                                 "-m", str(args.models)], cwd=ROOT, env=environ)
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        outputs = sorted(p.name.split("-")[0] for p in output_dir.glob("*.dcm"))
        sizes = sum(p.stat().st_size for p in output_dir.glob("*.dcm")) / 2**20
    print(f"source {args.size}×{args.size} RGB, T={args.mc_samples}: exit {result.returncode}, wall {elapsed:.1f} s, "
          f"peak RSS {peak_mb:.0f} MB (goal < 4096 MB), outputs {outputs} ({sizes:.0f} MB)")
    return 0 if result.returncode == 0 and peak_mb < 4096 else 1


if __name__ == "__main__":
    sys.exit(main())
