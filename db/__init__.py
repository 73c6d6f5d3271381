"""Data layer: settings, engine and sessions, tables, repositories, migrations."""
