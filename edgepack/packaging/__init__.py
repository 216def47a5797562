"""Packagers: deterministic archives of an artifact root (Lambda zip, OTA bundle, OCI image)."""
