"""DICOM builders for Candor's results, written back into the source study.

Pure functions over pydicom datasets and numpy arrays (no Holoscan):

========================  ====================================================
Module                    Responsibility
========================  ====================================================
:mod:`.uids`              deterministic ``2.25.`` UIDs (PS3.5 B.2)
:mod:`.equipment`         General Equipment values, research-use labels
:mod:`.codes`             the private ``99CANDOR`` concepts and units
:mod:`.source`            source checks, light copies, patient/study copying
:mod:`.compat`            highdicom 0.28 workaround for one-frame OP sources
:mod:`.seg`               BINARY Segmentation (PS3.3 A.51)
:mod:`.sc`                RGB Secondary Capture of a rendered overlay (A.8.1)
:mod:`.sr`                TID 1500 Measurement Report, Comprehensive 3D SR (A.35.13)
:mod:`.synthetic`         synthetic Ophthalmic Photography / DX inputs
:mod:`.validate`          dciodvfy / dcentvfy conformance checks
========================  ====================================================

Submodules are imported explicitly (``from candor.dicom.seg import
build_binary_seg``) so that importing :mod:`candor.dicom.uids` does not load
highdicom.
"""
