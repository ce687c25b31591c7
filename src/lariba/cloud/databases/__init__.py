"""Managed PostgreSQL databases and their snapshots: resource kinds on the lifecycle engine."""
