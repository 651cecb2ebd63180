"""Queue mode: submissions that producers append to a Redis Stream instead of posting them
(``produce k8s --mode queue``), consumed by every control-plane replica through one consumer
group: :mod:`.consumer` reads and claims entries, :mod:`.judge` hands each to the API's own
``POST /events`` in process (the same token check, scopes, validation, signing, storing and
audit) and turns the answer into what to do with the entry: settle it, dead-letter it with the
API's error, or leave it to be tried again."""
