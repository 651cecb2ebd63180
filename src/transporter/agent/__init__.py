"""The agent: dials out to the control plane and applies events to its cluster."""
