"""Train the fluorescence-nucleus U-Net with MC dropout and write it as a Candor model folder.

Usage::

    python -m training.nuclei.train --out models/microscopy_nuclei                        # synthetic images
    python -m training.nuclei.train --out models/microscopy_nuclei --data /data/stage1_train   # DSB2018
    python -m training.nuclei.train --out models/microscopy_nuclei --data /data/BBBC039         # BBBC039

The network is MONAI's ``BasicUNet`` (1 input channel, 3 output classes) whose every conv
block carries ``nn.Dropout``, so :func:`candor.uncertainty.mc_sample` can sample it. It
labels pixels background / nucleus interior / nucleus boundary
(:func:`candor.instances.encode_instances`, a 1-pixel boundary band), which is what a
marker-controlled watershed needs to split touching nuclei
(:func:`candor.instances.instances_from_probabilities`). Loss is Dice + cross-entropy:
cross-entropy keeps the probabilities usable for sampling, Dice copes with the thin,
rare boundary class. Images are brought to the working size as
:func:`candor.preprocess.to_network_input` does (long side = working size, uint8 / 255),
then random crops with the 8 flips/rotations and gain/gamma jitter are drawn. Real data
use the ``training`` split of :mod:`training.data.bbbc`. Checkpoints (with optimizer state,
for ``--resume``) go to ``build/``, never into the shipped folder.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
from monai.losses import DiceCELoss
from tqdm import tqdm

from candor.bundle import build_network, save_bundle
from candor.instances import PostProcessing, encode_instances
from training.common import TrainingState, cosine_schedule, resume, run_cli, train_steps
from training.data.bbbc import load_nuclei_dataset, resize_nuclei_sample
from training.nuclei import write_model_card
from training.synth.nuclei import TRAIN_STREAM, NucleiSample, generate_nuclei, synthetic_rng

logger = logging.getLogger("training.nuclei.train")

_CROP_STREAM = 14  # SeedSequence key [14, seed] drives crops, flips and jitter
LOSS_NAME = "DiceCELoss(to_onehot_y=True, softmax=True, batch=True)"
BOUNDARY_WIDTH = 1
#: Post-processing defaults written to the bundle (pixels of the working grid).
POSTPROCESSING = PostProcessing(interior_threshold=0.5, foreground_threshold=0.5, min_marker_area=3, min_area=12)


def network_config(dropout: float = 0.1) -> dict[str, Any]:
    """The bundle's ``configs/network.json``: a small BasicUNet (~0.49 M parameters, ~2 MB).

    The first and last levels have 8 channels: at full resolution they dominate the cost,
    and a CPU shared with other jobs must train and sample it.
    """
    return {
        "_target_": "monai.networks.nets.BasicUNet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 3,
        "features": [8, 16, 32, 64, 128, 8],
        "dropout": dropout,
    }


def training_pool(data: str, working_size: int, pool: int, seed: int, split: str | None) -> list[NucleiSample]:
    """Images to crop from: ``pool`` synthetic ones, or the real training split resized to the working size."""
    if data == "synthetic":
        return [generate_nuclei(working_size, synthetic_rng(TRAIN_STREAM, seed, index))
                for index in tqdm(range(pool), desc="synthetic pool", unit="img", leave=False)]
    return [resize_nuclei_sample(sample, working_size) for sample in load_nuclei_dataset(data, split)]


def sample_batch(images: list[np.ndarray], targets: list[np.ndarray], rng: np.random.Generator, batch: int,
                 crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (zero-padded when an image is smaller) with flips, 90° turns and gain/gamma jitter.

    Returns (B, 1, crop, crop) float in [0, 1] and (B, 1, crop, crop) long class targets.
    """
    out_images = np.zeros((batch, 1, crop, crop), np.float32)
    out_targets = np.zeros((batch, 1, crop, crop), np.int64)
    for b in range(batch):
        index = int(rng.integers(len(images)))
        image, target = images[index], targets[index]
        rows, cols = image.shape
        top, left = int(rng.integers(max(1, rows - crop + 1))), int(rng.integers(max(1, cols - crop + 1)))
        patch = image[top:top + crop, left:left + crop].astype(np.float32) / 255.0
        label = target[top:top + crop, left:left + crop]
        turns = int(rng.integers(4))
        patch, label = np.rot90(patch, turns), np.rot90(label, turns)
        if rng.random() < 0.5:
            patch, label = patch[:, ::-1], label[:, ::-1]
        patch = np.clip(patch * rng.uniform(0.6, 1.4), 0.0, 1.0) ** rng.uniform(0.75, 1.33)
        out_images[b, 0, : patch.shape[0], : patch.shape[1]] = patch
        out_targets[b, 0, : label.shape[0], : label.shape[1]] = label
    return torch.from_numpy(out_images), torch.from_numpy(out_targets)


#: Settings that shape the training data stream: a resumed run must use the same ones.
RESUME_KEYS = ("data", "split", "seed", "crop", "batch", "working_size", "pool", "dropout")


def _metadata(args: argparse.Namespace, pool: list[NucleiSample], losses: list[float], elapsed: float
              ) -> dict[str, Any]:
    synthetic = args.data == "synthetic"
    return {
        "name": "candor-microscopy-nuclei",
        "version": "0.1.0",
        "task": "microscopy_nuclei",
        "labels": {"0": "background", "1": "nucleus", "2": "boundary"},
        "preprocessing": {"working_size": args.working_size, "size_multiple": 16, "channels": "MONOCHROME"},
        "postprocessing": {
            **POSTPROCESSING.to_metadata(),
            "boundary_width": BOUNDARY_WIDTH,
            "count_interval_level": 0.9,
            "count_interval_scale": 1.0,
            "count_interval_calibrated": False,
            "function": "candor.instances.analyse_instances",
            "units": "pixels of the working grid (long side = preprocessing.working_size)",
        },
        "training": {
            "data": "synthetic" if synthetic else f"{args.data} ({args.split or 'all'} split)",
            "generator": "training.synth.nuclei.generate_nuclei" if synthetic else None,
            "images": len(pool),
            "nuclei": int(sum(sample.count for sample in pool)),
            "image_seeds": f"numpy.random.default_rng([{TRAIN_STREAM}, {args.seed}, i]), i < {len(pool)}"
            if synthetic else None,
            "steps": args.steps, "batch": args.batch, "crop": args.crop, "seed": args.seed, "dropout": args.dropout,
            "target": f"candor.instances.encode_instances(instances, boundary_width={BOUNDARY_WIDTH})",
            "loss": LOSS_NAME,
            "optimizer": f"Adam(lr={args.lr}), linear warm-up {max(1, args.steps // 20)} steps, cosine to 5 %",
            "augmentation": "random crop, 90° rotations, horizontal flip, gain ×U(0.6,1.4), gamma U(0.75,1.33)",
            "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
            "train_seconds": round(elapsed, 1),
            "torch": torch.__version__, "monai": monai.__version__,
            "command": "python -m training.nuclei.train " + " ".join(shlex.quote(a) for a in args.argv),
        },
    }


def train(args: argparse.Namespace) -> Path:
    """Run training as described by the CLI arguments; returns the written model folder."""
    if args.crop % 16 or args.crop < 16:
        raise ValueError(f"--crop must be a positive multiple of 16 (the U-Net's down-sampling), got {args.crop}")
    if args.steps < 1:
        raise ValueError(f"--steps must be ≥ 1, got {args.steps}")
    torch.manual_seed(args.seed)
    out = Path(args.out)
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else Path("build") / "checkpoints" / out.name
    config = network_config(args.dropout)
    network = build_network(config)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(args.steps, max(1, args.steps // 20)))
    state = TrainingState(network, optimizer, scheduler, np.random.default_rng([_CROP_STREAM, args.seed]))
    if args.resume:
        resume(Path(args.resume), state, args, RESUME_KEYS)

    started = time.perf_counter()
    pool = training_pool(args.data, args.working_size, args.pool, args.seed, args.split)
    images = [sample.image for sample in pool]
    targets = [encode_instances(sample.instances, BOUNDARY_WIDTH) for sample in pool]
    fractions = np.bincount(np.concatenate([t.ravel() for t in targets]), minlength=3) / sum(t.size for t in targets)
    logger.info("pool: %d images, %d nuclei from %s at working size %d; class fractions bg/interior/boundary "
                "%.3f/%.3f/%.3f (%.0f s)", len(pool), sum(s.count for s in pool), args.data, args.working_size,
                *fractions, time.perf_counter() - started)

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    losses = train_steps(state, loss_fn, lambda rng: sample_batch(images, targets, rng, args.batch, args.crop),
                         args, checkpoints, RESUME_KEYS)
    metadata = _metadata(args, pool, losses, state.elapsed)
    save_bundle(out, network, config, metadata)
    stale = out / "docs" / "metrics.json"
    if stale.exists():
        stale.unlink()
        logger.info("removed %s: it described earlier weights; run training.nuclei.evaluate", stale)
    write_model_card(out, metadata, evaluation=None)
    logger.info("wrote model folder %s (%.0f s of training steps)", out, state.elapsed)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.nuclei.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="model folder to write (e.g. models/microscopy_nuclei)")
    parser.add_argument("--data", default="synthetic",
                        help="'synthetic', or the root of a DSB2018 stage1_train or BBBC039 copy (layout detected)")
    parser.add_argument("--split", default="training",
                        help="split of real data to train on: training, validation, test or 'all' (default training)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", help="checkpoint (.pt) written by an earlier run with the same settings")
    parser.add_argument("--pool", type=int, default=160, help="number of synthetic training images (default 160)")
    parser.add_argument("--working-size", type=int, default=256, help="long side at which the network sees images")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: fastest on a shared, oversubscribed CPU)")
    parser.add_argument("--checkpoint-dir", help="default: build/checkpoints/<name of --out>")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args(argv)
    args.split = None if args.split == "all" else args.split
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_cli(train, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
