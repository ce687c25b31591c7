"""Budgets: a monthly amount per project, notifications as its cost crosses thresholds,
and optionally no new resources once it is spent."""
