"""Alembic migrations of Lariba's database."""
