"""Registries as resources: creation, settings, and which registry a request is for."""
