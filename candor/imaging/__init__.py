"""Pixel decoding of DICOM images into arrays the networks take."""
