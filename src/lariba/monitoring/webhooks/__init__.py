"""Webhooks: a project's HTTPS endpoints that receive its events, signed, retried and logged."""
