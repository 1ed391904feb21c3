"""Chest radiograph findings: training (:mod:`training.chest.train`) and evaluation with model card
(:mod:`training.chest.evaluate`) of Candor's multi-label classifier with MC dropout."""
