"""Usage and cost: what each project's resources ran, stored and cost, to the second."""
