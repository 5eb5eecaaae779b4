"""Host tests: make ``tests.naive`` (the independent nested-loop oracle) importable
under a plain ``pytest`` run too, not only ``python -m pytest`` (which puts the
repository root on sys.path by itself)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
