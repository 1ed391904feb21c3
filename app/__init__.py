"""Candor's MONAI Deploy application (run with ``python -m app -i IN -o OUT -m MODELS``)."""

import os
import sys

# MONAI Deploy folder apps put their own folder on sys.path (as the SDK examples do), so that the
# packaged MAP (which runs ``python3 /opt/holoscan/app``) finds its sibling packages.
_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _root not in sys.path:
    sys.path.insert(0, _root)
