"""The monitoring service: usage and cost, metrics, logs and audit, alerts and events."""
