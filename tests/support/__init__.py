"""Helpers shared by the tests (ARCHITECTURE.md, rule 2): test modules and conftest files
import from here, never from a conftest or from another test module."""
