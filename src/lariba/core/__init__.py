"""Shared kit: settings, database, errors, pagination, logging, middleware. No business rules."""
