"""Candor's DICOM gateway: a C-STORE node that a PACS routes studies to.

The gateway receives instances (C-STORE SCP), spools each one durably before
acknowledging it, declares a study complete after a quiet period, runs the
Candor MONAI Deploy application on it in a subprocess and sends the results back
to the PACS (C-STORE SCU or DICOMweb STOW-RS) into the same study.

All durable state lives as files in the spool folder (see :mod:`gateway.spool`),
so a gateway killed at any point resumes where it stopped. Run it with
``python -m gateway --help``; operators read ``docs/gateway.md``.
"""

__version__ = "0.1.0"
