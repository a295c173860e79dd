"""Alembic migrations of the coordinator's database (applied by ``Store`` when it opens)."""
