"""The one place mlprov's version is written.

``pyproject.toml`` reads it (setuptools ``dynamic = ["version"]``), the CLI prints it
(``mlprov --version``) and the ML-BOM names it as the tool; nothing imports the package
root for it (ARCHITECTURE.md: nothing imports the package root).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
