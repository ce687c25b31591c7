"""Lariba Cloud: a self-hosted, multi-tenant cloud platform."""

__version__ = "0.1.0"
