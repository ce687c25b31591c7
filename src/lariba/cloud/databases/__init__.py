"""Managed PostgreSQL databases and their snapshots: a resource kind on the lifecycle engine."""
