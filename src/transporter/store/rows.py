"""Old names of :mod:`transporter.store.json_rows` and :mod:`transporter.store.cache`, kept only
for ``tests/unit/test_decoded.py``; remove this module once that test imports the new ones."""

from transporter.store.cache import Decoded, Recent
from transporter.store.json_rows import dump, load

__all__ = ["Decoded", "Recent", "dump", "load"]
