"""The configured dashboards: the TOML file's schema, and the catalog that turns requests into plans."""
