"""The lifecycle engine: desired state in PostgreSQL, operations, events, quotas, and the
reconciler that makes the provider match. Every resource kind runs on it."""
