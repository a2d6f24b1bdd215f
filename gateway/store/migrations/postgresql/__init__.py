"""The numbered migrations in PostgreSQL's dialect: the same numbers and names as the
SQLite series one folder up, each giving the same tables and columns."""
