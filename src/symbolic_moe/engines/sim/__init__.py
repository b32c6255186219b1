"""Packaged cost tables of the `simulated` engine (TOML, with their sources)."""
