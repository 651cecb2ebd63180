"""Rules every part shares that are not the wire protocol: API tokens (their form, hashing and
roles), the audit log's hash chain, and redaction of Secrets' values."""
