"""``make demo``: build synthetic studies for the three tasks, run Candor on them, check and summarise.

The studies are generated here (no data is downloaded; see :mod:`app.demo_studies`): a
fundus study (right and left eye), a chest radiograph (MONOCHROME1 DX) and a microscopy
study (SM and VL Microscopic). The app runs as a hospital would run it
(``python -m app -i … -o … -m models``), every output is checked with dciodvfy, and the
overlays are saved as PNG previews. ``--tasks fundus`` runs one task only.
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

def save_previews(output: Path, preview: Path, max_side: int = 1024) -> list[Path]:
    """PNG previews of every Secondary Capture overlay (downsized for viewing)."""
    from pydicom import dcmread

    preview.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(output.glob("*.dcm")):
        if path.name.startswith(("epistemic-2", "aleatoric", "saliency", "instances")):
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
    parser.add_argument("--tasks", default="fundus,chest,microscopy",
                        help="comma-separated demo studies: fundus, chest, microscopy (default: all three)")
    args = parser.parse_args(argv)
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    unknown = sorted(set(tasks) - {"fundus", "chest", "microscopy"})
    if unknown or not tasks:
        parser.error(f"--tasks: unknown or empty {unknown or args.tasks!r}; choose from fundus, chest, microscopy")
    configure_logging()

    from app.demo_studies import build_demo_studies
    from candor.dicom.validate import dciodvfy_errors

    input_dir, output_dir = args.out / "input", args.out / "output"
    for folder in (input_dir, output_dir):
        for old in folder.glob("*"):
            if old.is_file():
                old.unlink()
    sources = build_demo_studies(input_dir, args.size, args.seed, tasks)
    bad = [(s.path, errors) for s in sources if (errors := dciodvfy_errors(s.path))]
    logger.info("built %d synthetic source image(s) in %s (dciodvfy errors in inputs: %d)", len(sources), input_dir,
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
    print(f"  input       : {input_dir} ({len(sources)} synthetic images: {', '.join(tasks)})")
    print(f"  outputs     : {output_dir} ({len(outputs)} DICOM objects; dciodvfy errors: "
          f"{sum(len(v) for v in invalid.values())})")
    print(f"  previews    : {args.out / 'preview'} ({len(previews)} PNG)")
    truths = {s.path.name: s.truth for s in sources}
    for entry in report["processed"]:
        print(f"  {Path(entry['path']).name} [{entry['task']}; synthetic truth: {truths.get(Path(entry['path']).name, '?')}]: "
              f"{summary_line(entry)}")
    return 1 if invalid else 0

def summary_line(entry: dict) -> str:
    """One line of figures of a processed image, from the run report."""
    tail = f"(T={entry['mc_samples']}, seed {entry['seed']})"
    if "findings" in entry:
        ranked = sorted(entry["findings"].items(), key=lambda item: -item[1]["probability"])
        return ", ".join(f"{name} p {f['probability']:.2f} ±{f['std']:.2f} (epistemic {f['epistemic']:.3f} nats)"
                         for name, f in ranked) + f" {tail}"
    if "count" in entry:
        c = entry["count"]
        return (f"{c['count']} nuclei, MC mean {c['mc_mean']:.1f} ±{c['mc_std']:.1f}, "
                f"{round(100 * c['level'])}% interval {c['interval_low']}–{c['interval_high']} {tail}")
    return (f"vessel fraction {entry['foreground_fraction']:.3f}, mean epistemic {entry['mean_epistemic']:.4f} nats, "
            f"mean aleatoric {entry['mean_aleatoric']:.4f} nats {tail}")


if __name__ == "__main__":
    sys.exit(main())
