"""What every training CLI shares: the learning-rate schedule, resumable checkpoints, thread limits.

Checkpoints hold the network, optimiser, scheduler and both RNG states, so a resumed run
continues exactly where it stopped; they are refused when the settings that shape the
data stream (``resume_keys``) differ from the original run's.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

logger = logging.getLogger(__name__)


def cosine_schedule(steps: int, warmup: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 5 % of the base learning rate (a ``LambdaLR`` factor)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@dataclass
class TrainingState:
    network: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    crop_rng: np.random.Generator
    step: int = 0
    elapsed: float = 0.0


def save_checkpoint(directory: Path, state: TrainingState, args: argparse.Namespace, resume_keys: Sequence[str],
                    keep: int = 3) -> Path:
    """Write ``step_<n>.pt`` into ``directory`` and keep only the newest ``keep`` checkpoints."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{state.step:06d}.pt"
    torch.save({
        "step": state.step, "elapsed": state.elapsed, "args": {key: getattr(args, key) for key in resume_keys},
        "network": state.network.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "crop_rng": state.crop_rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }, path)
    for old in sorted(directory.glob("step_*.pt"), key=lambda p: p.stat().st_mtime)[:-keep]:
        old.unlink()  # by age, so an earlier run's higher step numbers never evict this run's checkpoints
    return path


def train_steps(state: TrainingState, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                next_batch: Callable[[np.random.Generator], tuple[torch.Tensor, torch.Tensor]],
                args: argparse.Namespace, checkpoints: Path, resume_keys: Sequence[str]) -> list[float]:
    """Train ``state.network`` from ``state.step`` to ``args.steps``; returns the loss of every step run.

    One batch per step from ``next_batch(state.crop_rng)``; a tqdm bar (log lines routed through
    it), a log line every ``args.log_every`` steps, a checkpoint every ``args.checkpoint_every``
    steps and at the end. Autograd is switched on here: a caller (or an earlier test) may have
    turned it off process-wide.
    """
    losses: list[float] = []
    state.network.train()
    with logging_redirect_tqdm(), torch.enable_grad():
        progress = tqdm(total=args.steps, initial=state.step, desc="train", unit="step", dynamic_ncols=True)
        while state.step < args.steps:
            tick = time.perf_counter()
            inputs, targets = next_batch(state.crop_rng)
            state.optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(state.network(inputs), targets)
            loss.backward()
            state.optimizer.step()
            state.scheduler.step()
            state.step += 1
            state.elapsed += time.perf_counter() - tick
            losses.append(loss.item())
            progress.update(1)
            progress.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{state.scheduler.get_last_lr()[0]:.2e}")
            if state.step % args.log_every == 0:
                logger.info("step %d/%d loss %.4f (mean of last %d)", state.step, args.steps,
                            np.mean(losses[-args.log_every:]), min(len(losses), args.log_every))
            if state.step % args.checkpoint_every == 0 or state.step == args.steps:
                logger.info("checkpoint %s", save_checkpoint(checkpoints, state, args, resume_keys))
        progress.close()
    state.network.eval()
    return losses


def resume(path: Path, state: TrainingState, args: argparse.Namespace, resume_keys: Sequence[str]) -> None:
    """Restore a checkpoint written by :func:`save_checkpoint` (it holds NumPy RNG state: trusted files only)."""
    if not path.is_file():
        raise FileNotFoundError(f"--resume: checkpoint {path} does not exist")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    for key in resume_keys:
        if saved["args"].get(key) != getattr(args, key):
            raise ValueError(f"{path}: was trained with --{key.replace('_', '-')} {saved['args'].get(key)!r}, "
                             f"not {getattr(args, key)!r}; resume with the same settings")
    state.network.load_state_dict(saved["network"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.crop_rng.bit_generator.state = saved["crop_rng"]
    torch.set_rng_state(saved["torch_rng"])
    state.step, state.elapsed = int(saved["step"]), float(saved["elapsed"])
    logger.info("resumed from %s at step %d", path, state.step)


def record_evaluation(model_dir: str | Path, result: dict[str, Any],
                      change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Write an evaluation's ``result`` to ``docs/metrics.json`` and, without its per-image rows, to
    ``configs/metadata.json`` → ``evaluation`` (after ``change``, for calibrated parameters); returns the metadata."""
    root = Path(model_dir)
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    metadata_path = root / "configs" / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if change is not None:
        change(metadata)
    metadata["evaluation"] = {key: value for key, value in result.items() if key != "per_image"}
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return metadata


def run_cli(job: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """Run ``job(args)`` with logging set up and torch limited to ``args.threads`` CPU threads."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        job(args)
    finally:
        torch.set_num_threads(threads)
    return 0
