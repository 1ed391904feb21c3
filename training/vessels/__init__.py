"""Fundus vessel segmentation: ``python -m training.vessels.train`` and ``python -m training.vessels.evaluate``."""
