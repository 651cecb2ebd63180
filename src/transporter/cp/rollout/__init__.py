"""Rollouts and plans, moved: one request for many clusters becomes one child event per cluster,
started wave by wave within the strategy's bounds (:class:`.engine.Rollouts`)."""
