"""The wire language shared by the control plane, the agent and the producer.

Pure data: no I/O and no imports of the rest of the package (checked by import-linter).
"""
