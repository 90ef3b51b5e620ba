"""ganforge's built-in components, each module a plugin named by an entry point in pyproject.toml."""
