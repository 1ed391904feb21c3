"""Candor: what a model found, how sure it is, and where it looked.

The pure, Holoscan-free core: uncertainty maths, image decoding, preprocessing,
model bundles and DICOM builders. Operators in ``operators/`` are thin adapters
over these functions.
"""

__version__ = "0.1.0"
