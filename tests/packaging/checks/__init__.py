"""Packaging checks run by tests/packaging/run.sh (see check.py)."""
