"""Helpers for bench/run.py: process control, OCI client, measurements, report."""
