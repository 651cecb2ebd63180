"""Typed settings for each command, and the parsers that turn flag text into them.

:mod:`.values` holds :class:`~.values.ConfigError` and the values flags parse into (addresses,
URLs, ids, tokens, numbers); :mod:`.store_spec` where the control plane keeps its state; then the
settings of each role: :mod:`.cp`, :mod:`.agent`, :mod:`.produce`, and :mod:`.admin` for the
commands run on the control plane's host against its store. Nothing here does I/O.
"""
