"""The test bed: real kube-apiservers with etcd, and real redis-servers, started on free ports.

Used by the pytest fixtures in ``tests/conftest.py`` and by ``make testbed``
(``python -m tests.bed``).
"""
