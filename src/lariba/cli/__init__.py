"""The ``lariba`` command."""
