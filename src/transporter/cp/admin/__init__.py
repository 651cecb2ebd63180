"""Commands run on the control plane's host, against its store and keys: ``transporter token``
and ``transporter bundle``."""
