"""``make demo``: build a synthetic fundus study, run Candor on it, check and summarise the outputs.

The study is generated here (no data is downloaded): two Ophthalmic Photography series,
a right and a left eye, from :mod:`training.synth.fundus`. The app runs as a hospital
would run it (``python -m app -i … -o … -m models``), every output is checked with
dciodvfy, and the overlays are saved as PNG previews.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.logs import configure_logging

logger = logging.getLogger("candor.demo")
ROOT = Path(__file__).resolve().parents[1]

def build_study(folder: Path, size: int, seed: int) -> list[Path]:
    """Two synthetic OP series (right and left eye) of one demo patient."""
    from candor.dicom.synthetic import write_op_study
    from training.synth.fundus import generate_fundus

    paths = []
    for series_number, laterality in ((1, "R"), (2, "L")):
        sample = generate_fundus(size, rng=seed + series_number, laterality=laterality)
        paths += write_op_study(folder, [sample.image], laterality=laterality, series_number=series_number)
    return paths

def save_previews(output: Path, preview: Path, max_side: int = 1024) -> list[Path]:
    """PNG previews of every Secondary Capture overlay (downsized for viewing)."""
    from pydicom import dcmread

    preview.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(output.glob("*.dcm")):
        if path.name.startswith(("epistemic", "aleatoric", "saliency")):
            image = Image.fromarray(dcmread(path).pixel_array)
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            kind = path.stem.rsplit("-", 1)[0]
            target = preview / f"{kind}-{path.stem[-8:]}.png"
            image.save(target)
            written.append(target)
    return written

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "demo", help="demo folder (default build/demo)")
    parser.add_argument("--size", type=int, default=1536, help="photograph size in pixels (default 1536)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the synthetic study")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="model folders (default models/)")
    args = parser.parse_args(argv)
    configure_logging()

    from candor.dicom.validate import dciodvfy_errors

    input_dir, output_dir = args.out / "input", args.out / "output"
    for folder in (input_dir, output_dir):
        for old in folder.glob("*"):
            if old.is_file():
                old.unlink()
    sources = build_study(input_dir, args.size, args.seed)
    bad = [(p, errors) for p in sources if (errors := dciodvfy_errors(p))]
    logger.info("built %d synthetic OP image(s) in %s (dciodvfy errors in inputs: %d)", len(sources), input_dir,
                len(bad))

    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "app", "-i", str(input_dir), "-o", str(output_dir),
                             "-m", str(args.models)], cwd=ROOT, env=os.environ.copy())
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        logger.error("the app exited with status %d", result.returncode)
        return result.returncode

    outputs = sorted(output_dir.glob("*.dcm"))
    invalid = {p.name: errors for p in outputs if (errors := dciodvfy_errors(p))}
    previews = save_previews(output_dir, args.out / "preview")
    report = json.loads((output_dir / "candor-report.json").read_text())

    print(f"\nCandor demo (synthetic data) — app run took {elapsed:.1f} s")
    print(f"  input study : {input_dir} ({len(sources)} OP images, {args.size}×{args.size})")
    print(f"  outputs     : {output_dir} ({len(outputs)} DICOM objects; dciodvfy errors: "
          f"{sum(len(v) for v in invalid.values())})")
    for path in outputs:
        print(f"      {path.name}")
    print(f"  previews    : {', '.join(str(p) for p in previews)}")
    for entry in report["processed"]:
        print(f"  {Path(entry['path']).name}: vessel fraction {entry['foreground_fraction']:.3f}, "
              f"mean epistemic {entry['mean_epistemic']:.4f} nats, mean aleatoric {entry['mean_aleatoric']:.4f} "
              f"nats (T={entry['mc_samples']}, seed {entry['seed']})")
    return 1 if invalid else 0

if __name__ == "__main__":
    sys.exit(main())
