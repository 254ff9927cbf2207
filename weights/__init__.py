"""The embedded model files; installed as the package data `recolor.embedded` (see pyproject.toml)."""
