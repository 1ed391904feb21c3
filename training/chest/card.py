"""The chest model card: what the model is, how it was trained, and what was measured (labelled synthetic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.saliency_sanity import card_section
from training.synth.chest import FINDINGS


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _separate_runs(pointing_game: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Lines naming the methods measured by a separate ``--localisation-only`` run, with their settings."""
    runs: dict[tuple[str, float], list[str]] = {}
    for method, rows in pointing_game.items():
        if "run" in rows.get("all", {}):
            key = (rows["all"]["run"], rows["all"].get("run_seconds"))
            runs.setdefault(key, []).append(f"`{method}`: {rows['all']['settings']}")
    return [line for (run, seconds), notes in runs.items()
            for line in ("", f"Measured separately by `{run}` ({seconds} s) — " + "; ".join(notes) + ".")]


def write_model_card(model_dir: str | Path, metadata: dict[str, Any], evaluation: dict[str, Any] | None) -> Path:
    """(Re)write ``docs/README.md`` from the bundle metadata and, if given, the evaluation result."""
    docs = Path(model_dir) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    training, prep = metadata.get("training", {}), metadata["preprocessing"]
    net = json.loads((Path(model_dir) / "configs" / "network.json").read_text(encoding="utf-8"))
    lines = [
        f"# {metadata['name']} {metadata['version']} — chest radiograph findings with MC-dropout uncertainty",
        "", "**Research use only. Not for diagnosis or any clinical decision.**", "",
        "## What it is",
        f"A small 2D MONAI `DenseNet` (init_features {net['init_features']}, growth_rate {net['growth_rate']}, "
        f"block_config {net['block_config']}, bn_size {net['bn_size']}, `nn.Dropout(p={net['dropout_prob']})` after "
        "every dense layer, batch norm, ReLU) with four sigmoid outputs, one per finding: "
        + ", ".join(f"`{n}`" for n in FINDINGS) + " (multi-label: several may be present). Run with dropout on for "
        "T passes (`candor.uncertainty.mc_sample(..., to_probabilities=torch.sigmoid)`), it gives per finding the "
        "mean probability p̄, its MC standard deviation and the binary entropy decomposition (total H[p̄], aleatoric "
        "E_t H[p_t], epistemic = mutual information; nats, ≤ ln 2). Grad-CAM layer: "
        f"`{metadata.get('gradcam_layer')}` (output of the last dense block).",
        "", "Why not DenseNet-121 (7.0 M parameters): on the shared 2-core CPU used here one DenseNet-121 training "
        "step (batch 16, 256 px, 1 thread) took 18–32 s, so ~20 min of training would have been ~50 steps. This "
        "3-block DenseNet (0.29 M parameters, 16 × 16 final feature map at 256 px, ~1.2 MB of weights) took "
        "1.5–1.8 s per step when measured alone and 3–6 s during training next to other jobs. On real data "
        "(ChestX-ray14) use DenseNet-121, as CheXNet did, on a GPU.",
        "", "## Input and preprocessing",
        f"8-bit greyscale frontal (PA/AP) radiograph, MONOCHROME2 (brighter = denser), any size: long side resized "
        f"to {prep['working_size']} px (Lanczos), scaled to [0, 1] (uint8 / 255), zero-padded to a multiple of "
        f"{prep['size_multiple']} (`candor.preprocess.to_network_input`).",
        "", "## Training data",
        f"**{str(training.get('data', 'unknown')).upper()}.** " + (
            "Synthetic PA chest radiographs from `training.synth.chest.generate_chest` (torso, lungs, ribs, "
            "clavicles, heart, mediastinum, diaphragm, vessel markings, noise and blur) with exact finding masks; "
            f"{training.get('images')} images, keys `{training.get('image_seeds')}`, prevalence "
            f"{training.get('prevalence')}. No patient data." if training.get("data") == "synthetic"
            else "See `configs/metadata.json` → `training`."),
        "", "## Training procedure",
        f"- Loss: {training.get('loss')}; optimizer: {training.get('optimizer')}.",
        f"- {training.get('steps')} steps, batch {training.get('batch')}, seed {training.get('seed')}; "
        f"augmentation: {training.get('augmentation')}.",
        f"- Final training loss (mean of last 50 steps): {training.get('final_loss')}; {training.get('train_seconds')} "
        f"s of training steps on a shared CPU (torch {training.get('torch')}, MONAI {training.get('monai')}).",
        f"- Command: `{training.get('command')}`",
    ]
    warm = training.get("warm_start")
    while warm:  # the chain of runs whose weights this one started from
        earlier = warm.get("training") or {}
        lines.append(f"- Warm-started from `{warm['from']}`, itself trained for {earlier.get('steps')} steps "
                     f"({earlier.get('optimizer')}; final loss {earlier.get('final_loss')}; "
                     f"{earlier.get('train_seconds')} s) with `{earlier.get('command')}`.")
        if earlier.get("generator_sha256_12") != training.get("generator_sha256_12"):
            lines.append(f"  That run used another version of `training/synth/chest.py` (sha256 "
                         f"{earlier.get('generator_sha256_12')}…, this run "
                         f"{training.get('generator_sha256_12')}…), so the chain cannot be replayed bit-for-bit "
                         "from the current code.")
        warm = earlier.get("warm_start")
    lines.append("")
    real = evaluation is not None and not str(evaluation["data"]).startswith("synthetic")
    lines += ["## Measured figures (ChestX-ray14 test subset)" if real
              else "## Measured figures (SYNTHETIC held-out images — not real radiographs)"]
    if evaluation is None:
        lines += ["Not evaluated yet: run `python -m training.chest.evaluate --model <this folder>`.", ""]
    else:
        lines += [f"{evaluation['images']} images, {evaluation['data']}; keys `{evaluation['image_seeds']}`; "
                  f"T = {evaluation['mc_samples']} MC passes (seed {evaluation['mc_seed']} + k); ECE: "
                  f"{evaluation['ece_kind']}. Mean AUROC {_fmt(evaluation['mean_auroc'])}.", "",
                  f"| finding ({'ChestX-ray14' if real else 'synthetic'}) | positives | AUROC of p̄ | ECE | Brier "
                  "| acc. at 0.5 | MC std + / − | epistemic + / − (nats) |", "|---|---|---|---|---|---|---|---|"]
        for name, m in evaluation["findings"].items():
            lines.append(f"| {name} | {m['positives']}/{m['images']} | {_fmt(m['auroc'])} | {_fmt(m['ece'])} | "
                         f"{_fmt(m['brier'])} | {_fmt(m['accuracy_at_0.5'])} | {_fmt(m['mean_std_positive'])} / "
                         f"{_fmt(m['mean_std_negative'])} | {_fmt(m['mean_epistemic_positive'], 4)} / "
                         f"{_fmt(m['mean_epistemic_negative'], 4)} |")
        aurocs = {name: m["auroc"] for name, m in evaluation["findings"].items() if m["auroc"] is not None}
        failed = [name for name, value in aurocs.items() if value < 0.7]
        weak = [name for name, value in aurocs.items() if 0.7 <= value < 0.8]
        if failed:
            lines += ["", f"**Not learnt (AUROC < 0.7): {', '.join(failed)}.** Probabilities stay near the training "
                      "prevalence, so a low ECE there only reflects predicting the base rate, and saliency maps "
                      "of these outputs do not explain a detection."]
        if weak:
            lines += ["", f"**Weak (0.7 ≤ AUROC < 0.8): {', '.join(weak)}** — do not present these outputs as "
                      "findings without this caveat."]
        lines += ["", f"MC sampling: {evaluation['mc_seconds_per_image']:.2f} s per image on the shared CPU.", ""]
        if evaluation.get("pointing_game"):
            lines += [f"Pointing game (SYNTHETIC; hit = saliency maximum inside the true mask; tolerance = mask "
                      f"dilated by {evaluation['pointing_tolerance_px']} px; chance = mask area / body area; "
                      + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in evaluation["saliency_settings"].items())
                      + "; flat = constant maps, left out of the means):", "",
                      "| method | finding | pairs | hit | hit (tol.) | chance / chance (tol.) | mass inside "
                      "| s per map |",
                      "|---|---|---|---|---|---|---|---|"]
            for method, by_finding in evaluation["pointing_game"].items():
                for name, m in by_finding.items():
                    lines.append(f"| {method} | {name} | {m['pairs']} ({m['constant_maps']} flat) | "
                                 f"{_fmt(m['hit'], 2)} | {_fmt(m['hit_tolerance'], 2)} | {_fmt(m['chance'], 3)} / "
                                 f"{_fmt(m['chance_tolerance'], 3)} | {_fmt(m['mass_inside'], 2)} | "
                                 f"{_fmt(m['seconds'], 2)} |")
            lines += _separate_runs(evaluation["pointing_game"])
        lines += ["", f"Command: `{evaluation['command']}`", ""]
        lines += [f"![{name} (synthetic data)]({name})" for name in evaluation.get("figures", [])] + [""]
    if metadata.get("saliency_sanity"):
        lines += [card_section(metadata["saliency_sanity"])]
    lines += [
        "## Limitations",
        "- **Synthetic domain gap.** Trained and measured only on synthetic radiographs whose findings are drawn "
        "by simple rules; real films differ in anatomy, pathology, devices, positioning, exposure and labels.",
        "- The synthetic pneumothorax is conspicuous (lung retracted by 8–26 %, a dark rim without markings), so a "
        "near-perfect synthetic AUROC for it says little about subtle real pneumothoraces; synthetic nodules "
        "(radius 1.5–3.5 % of the image side, over ribs and vessel markings) and small effusions are harder.",
        ("- Real-data figures above come from one seeded subset of the official test list only." if real else
         "- **No ChestX-ray14 (or other real-data) figures were measured here.**") + " For orientation only: CheXNet "
        "(DenseNet-121, random split, not the official one) reports AUROC Nodule .780, Effusion .864, "
        "Cardiomegaly .925, Pneumothorax .889; official-split reproductions are lower; nothing here shows this "
        "model reaches them.",
        "- ChestX-ray14 labels are NLP-mined from reports (Wang et al., CVPR 2017) and partly wrong; only 4 of its "
        "14 labels map to this model (Nodule, Effusion, Cardiomegaly, Pneumothorax; the rest are ignored).",
        "- MC dropout (p = 0.2 in every dense layer) approximates epistemic uncertainty; its calibration is shown "
        "above for synthetic data only. No temperature scaling.",
        "- The pointing game uses masks the generator knows exactly; real saliency evaluation needs annotated "
        "boxes (e.g. the NIH box subset)" + (", and the model-randomisation test above ran on synthetic images only."
                                            if metadata.get("saliency_sanity") else
                                            " and model-randomisation checks (Adebayo et al. 2018)."), "",
        "## Retrain on ChestX-ray14",
        "Download ChestX-ray14 (NIH Clinical Center), extract every `images_NNN` archive into `images/` next to "
        "`Data_Entry_2017.csv`, `train_val_list.txt` and `test_list.txt`. Then (one command; hours on a GPU "
        "are more realistic than on this CPU):", "", "```",
        "python -m training.chest.train --out models/chest_findings --data /path/to/CXR14 --steps 20000 --size 256",
        "python -m training.chest.evaluate --model models/chest_findings --data /path/to/CXR14 --images 2000",
        "```", "",
        "The second command scores a seeded subset of the official test list (AUROC/ECE only; no masks).", "",
    ]
    path = docs / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
