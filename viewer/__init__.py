"""Candor's local viewer stack: Orthanc (PACS, DICOMweb) + the prebuilt OHIF Viewer behind one origin.

========================  ====================================================
Module                    Responsibility
========================  ====================================================
:mod:`.orthanc`           start/stop a throw-away Orthanc, upload, C-STORE
:mod:`.proxy`             serve OHIF ``dist/`` and proxy DICOMweb (same origin)
:mod:`.ohif`              install OHIF and the browser driver from npm, app-config
:mod:`.studies`           the demo studies: fundus (the app) and chest (SR writer)
:mod:`.probe`             run ``browser/ohif_probe.cjs`` in headless Chromium
:mod:`.__main__`          ``python -m viewer`` (``make viewer``)
========================  ====================================================
"""
