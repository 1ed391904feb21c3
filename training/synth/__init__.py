"""Synthetic images with exact labels (fundus vessels: :mod:`training.synth.fundus`)."""
