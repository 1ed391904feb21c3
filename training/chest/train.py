"""Train the chest-findings classifier with MC dropout and write it as a Candor model folder.

Usage::

    python -m training.chest.train --out models/chest_findings                      # synthetic radiographs
    python -m training.chest.train --out models/chest_findings --data /data/CXR14   # retrain on ChestX-ray14

The network is a small MONAI ``DenseNet`` (see :func:`network_config`) with
``nn.Dropout(p)`` after every dense layer, so :func:`candor.uncertainty.mc_sample` can
sample it at inference; its four sigmoid outputs are the findings of
:data:`training.synth.chest.FINDINGS` (multi-label: a radiograph may show several). Loss
is binary cross-entropy on the logits, which keeps the probabilities usable for
calibration. Images enter exactly as :func:`candor.preprocess.to_network_input` makes them
at inference (long side = working size, uint8 / 255, one channel), then get small random
shifts, rotations, scalings and intensity changes — no left-right flips, because the
heart's side is anatomy the model should rely on. Checkpoints (with optimizer state, for
``--resume``) and the cached synthetic pool go to ``build/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from candor.bundle import build_network, load_bundle, save_bundle
from training.chest.card import write_model_card
from training.common import TrainingState, cosine_schedule, resume, run_cli, train_steps
from training.data.chestxray14 import CXR14Record, chestxray14_records, label_prevalence, read_chestxray14
from training.synth import chest as chest_synth
from training.synth.chest import FINDINGS, TRAIN_STREAM, generate_chest, synthetic_rng

logger = logging.getLogger("training.chest.train")

_AUGMENT_STREAM = 13  # SeedSequence key [13, seed] drives batch sampling and augmentation
#: Grad-CAM layer: output of the last dense block (all feature maps the classifier sees, before norm5).
GRADCAM_LAYER = "features.denseblock3"
LOSS_NAME = "BCEWithLogitsLoss (mean over findings and images)"


def network_config(dropout: float = 0.2) -> dict[str, Any]:
    """``configs/network.json``: a 3-block DenseNet, ~0.29 M parameters (DenseNet-121 is too slow on this CPU)."""
    return {
        "_target_": "monai.networks.nets.DenseNet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": len(FINDINGS),
        "init_features": 24,
        "growth_rate": 12,
        "block_config": [6, 8, 12],
        "bn_size": 4,
        "dropout_prob": dropout,
    }


class Pool:
    """Training images at the working size: in memory (synthetic) or read on demand (ChestX-ray14)."""

    def __init__(self, images: np.ndarray | None, labels: np.ndarray, records: list[CXR14Record] | None,
                 size: int):
        self.images, self.labels, self.records, self.size = images, labels, records, size

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> np.ndarray:
        if self.images is not None:
            return self.images[index]
        return read_chestxray14(self.records[index], self.size).image


def _generator_digest() -> str:
    return hashlib.sha256(Path(chest_synth.__file__).read_bytes()).hexdigest()[:12]


def synthetic_pool(size: int, count: int, seed: int, cache_dir: Path | None) -> Pool:
    """``count`` synthetic radiographs with keys [TRAIN_STREAM, seed, i]; cached by generator version."""
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"chest_pool_s{size}_n{count}_seed{seed}_{_generator_digest()}.npz"
        if cache.is_file():
            with np.load(cache) as saved:
                logger.info("synthetic pool from cache %s", cache)
                return Pool(saved["images"], saved["labels"], None, size)
    images = np.empty((count, size, size), np.uint8)
    labels = np.empty((count, len(FINDINGS)), np.float32)
    for index in tqdm(range(count), desc="synthetic pool", unit="img", leave=False):
        sample = generate_chest(size, synthetic_rng(TRAIN_STREAM, seed, index))
        images[index], labels[index] = sample.image, sample.label_vector()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, labels=labels)
        logger.info("cached synthetic pool in %s", cache)
    return Pool(images, labels, None, size)


def training_pool(data: str, size: int, count: int, seed: int, cache_dir: Path | None) -> Pool:
    """The synthetic pool, or every frontal image of ChestX-ray14's official train_val list."""
    if data == "synthetic":
        return synthetic_pool(size, count, seed, cache_dir)
    records = chestxray14_records(data, "train_val")
    labels = np.array([[float(r.labels[name]) for name in FINDINGS] for r in records], np.float32)
    logger.info("ChestX-ray14 prevalence: %s", label_prevalence(records))
    return Pool(None, labels, records, size)


def _to_square(image: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (bottom/right, like ``to_network_input``) an image to size × size, float in [0, 1]."""
    out = np.zeros((size, size), np.float32)
    rows, cols = min(size, image.shape[0]), min(size, image.shape[1])
    out[:rows, :cols] = image[:rows, :cols].astype(np.float32) / 255.0
    return out


def sample_batch(pool: Pool, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch with augmentation: (B, 1, S, S) float in [0, 1] and (B, K) float labels.

    Geometry: rotation N(0, 3°), scale U(0.93, 1.07), shift U(±4 %) (bilinear, zero fill);
    intensity: gain U(0.9, 1.1), offset U(±0.03), gamma U(0.8, 1.25).
    """
    indices = rng.integers(len(pool), size=batch)
    images = torch.from_numpy(np.stack([_to_square(pool.image(int(i)), pool.size) for i in indices]))[:, None]
    angle = torch.from_numpy(np.radians(rng.normal(0.0, 3.0, batch))).float()
    scale = torch.from_numpy(rng.uniform(0.93, 1.07, batch)).float()
    shift = torch.from_numpy(rng.uniform(-0.08, 0.08, (batch, 2))).float()  # grid units: 2 = image side
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = torch.from_numpy(rng.uniform(0.9, 1.1, (batch, 1, 1, 1))).float()
    offset = torch.from_numpy(rng.uniform(-0.03, 0.03, (batch, 1, 1, 1))).float()
    gamma = torch.from_numpy(rng.uniform(0.8, 1.25, (batch, 1, 1, 1))).float()
    images = (images * gain + offset).clamp(0.0, 1.0) ** gamma
    return images.contiguous(), torch.from_numpy(pool.labels[indices])


#: Settings that shape the training data stream: a resumed run must use the same ones.
RESUME_KEYS = ("data", "seed", "batch", "size", "pool", "dropout", "lr", "steps", "init_from")


def _warm_start(model_dir: Path, network: nn.Module, config: dict[str, Any], load: bool) -> dict[str, Any]:
    """Start from the weights of an earlier model folder built from the same network.json.

    Returns that folder's ``training`` record, kept in the new metadata so the chain of
    commands that produced the weights stays reproducible. ``load=False`` (when resuming)
    only reads the record.
    """
    bundle = load_bundle(model_dir)
    saved = json.loads((model_dir / "configs" / "network.json").read_text(encoding="utf-8"))
    if saved != config:
        raise ValueError(f"--init-from {model_dir}: configs/network.json {saved} differs from this run's {config}")
    if load:
        network.load_state_dict(bundle.network.state_dict())
        logger.info("warm start from %s", model_dir)
    return {"from": str(model_dir), "training": bundle.metadata.get("training")}


def _metadata(args: argparse.Namespace, pool: Pool, prevalence: np.ndarray, losses: list[float],
              state: TrainingState, warm: dict[str, Any] | None) -> dict[str, Any]:
    synthetic = args.data == "synthetic"
    return {
        "name": "candor-chest-findings",
        "version": "0.1.0",
        "task": "chest_findings",
        "labels": {str(i): name for i, name in enumerate(FINDINGS)},
        "output": "multilabel_sigmoid",
        "preprocessing": {"working_size": args.size, "size_multiple": 16, "channels": "MONOCHROME"},
        "gradcam_layer": GRADCAM_LAYER,
        "training": {
            "data": "synthetic" if synthetic else "ChestX-ray14 train_val (official list), PA + AP views",
            "generator": "training.synth.chest.generate_chest" if synthetic else None,
            "generator_sha256_12": _generator_digest() if synthetic else None,
            "images": len(pool),
            "image_seeds": f"numpy.random.default_rng([{TRAIN_STREAM}, {args.seed}, i]), i < {len(pool)}"
            if synthetic else None,
            "prevalence": {name: round(float(p), 4) for name, p in zip(FINDINGS, prevalence)},
            "steps": args.steps, "batch": args.batch, "seed": args.seed, "dropout": args.dropout,
            "loss": LOSS_NAME,
            "optimizer": f"Adam(lr={args.lr}), linear warm-up {max(1, args.steps // 20)} steps, cosine to 5 %",
            "augmentation": "rotation N(0,3°), scale U(0.93,1.07), shift U(±4 %), gain U(0.9,1.1), "
                            "offset U(±0.03), gamma U(0.8,1.25); no flips",
            "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
            "train_seconds": round(state.elapsed, 1),
            "torch": torch.__version__, "monai": monai.__version__,
            "command": "python -m training.chest.train " + " ".join(shlex.quote(a) for a in args.argv),
            "warm_start": warm,
        },
    }


def train(args: argparse.Namespace) -> Path:
    """Run training as described by the CLI arguments; returns the written model folder."""
    if args.size % 16 or args.size < 64:
        raise ValueError(f"--size must be a multiple of 16 and at least 64, got {args.size}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else Path("build") / "checkpoints" / out.name
    config = network_config(args.dropout)
    network = build_network(config)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(args.steps, max(1, args.steps // 20)))
    state = TrainingState(network, optimizer, scheduler, np.random.default_rng([_AUGMENT_STREAM, args.seed]))
    warm = _warm_start(Path(args.init_from), network, config, load=not args.resume) if args.init_from else None
    if args.resume:
        resume(Path(args.resume), state, args, RESUME_KEYS)

    started = time.perf_counter()
    cache_dir = None if args.no_cache else Path("build") / "cache"
    pool = training_pool(args.data, args.size, args.pool, args.seed, cache_dir)
    prevalence = pool.labels.mean(axis=0)
    logger.info("pool: %d images from %s at %d px, prevalence %s (%.0f s)", len(pool), args.data, args.size,
                dict(zip(FINDINGS, np.round(prevalence, 3))), time.perf_counter() - started)

    loss_fn = nn.BCEWithLogitsLoss()
    losses = train_steps(state, loss_fn, lambda rng: sample_batch(pool, rng, args.batch), args, checkpoints,
                         RESUME_KEYS)
    metadata = _metadata(args, pool, prevalence, losses, state, warm)
    save_bundle(out, network, config, metadata)
    stale = out / "docs" / "metrics.json"
    if stale.exists():
        stale.unlink()
        logger.info("removed %s: it described earlier weights; run training.chest.evaluate", stale)
    write_model_card(out, metadata, evaluation=None)
    logger.info("wrote model folder %s (%.0f s of training steps)", out, state.elapsed)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.chest.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="model folder to write (e.g. models/chest_findings)")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or the root of a ChestX-ray14 copy")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="working size: long side the network sees (px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", help="checkpoint (.pt) written by an earlier run with the same settings")
    parser.add_argument("--pool", type=int, default=1500, help="number of synthetic training images")
    parser.add_argument("--init-from", help="model folder whose weights start this run (same network.json)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared 2-core machine two threads ran up to 10× slower)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write build/cache/ for the pool")
    parser.add_argument("--checkpoint-dir", help="default: build/checkpoints/<name of --out>")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--log-every", type=int, default=25)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_cli(train, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
