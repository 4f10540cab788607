"""One SQL code path for SQLite and PostgreSQL: SQLAlchemy Core statements, two executors."""
