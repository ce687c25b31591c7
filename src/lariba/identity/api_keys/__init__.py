"""API keys: long-lived credentials for automation, optionally limited to a project and role."""
