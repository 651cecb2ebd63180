"""Transporter: event-driven management of Kubernetes resources on clusters that dial out.

The public language between the three roles lives in :mod:`transporter.protocol`; the roles
themselves are :mod:`transporter.cp`, :mod:`transporter.agent` and :mod:`transporter.produce`.
"""

__version__ = "0.1.0"
