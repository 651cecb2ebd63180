"""Old names of :mod:`transporter.store.json_rows`, :mod:`transporter.store.paging` and
:mod:`transporter.store.cache`, kept for the modules and tests that still import them."""

from transporter.store.cache import Decoded, Recent
from transporter.store.json_rows import dump, load
from transporter.store.paging import clamp_limit, cursor_seq, page

__all__ = ["Decoded", "Recent", "clamp_limit", "cursor_seq", "dump", "load", "page"]
