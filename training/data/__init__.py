"""Loaders for public data sets in their published layouts (DRIVE: :mod:`training.data.drive`)."""
