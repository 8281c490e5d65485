"""Tests of mlprov.provenance (a package, so its conftest does not shadow tests/conftest.py)."""
