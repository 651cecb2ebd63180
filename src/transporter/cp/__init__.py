"""The control plane: HTTP API, agent channel, dispatch."""
