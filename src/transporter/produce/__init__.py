"""The producer: builds events from manifests, submits them and follows their status."""
