"""Persistence: SQLite (embedded default) and PostgreSQL behind the same interfaces."""
