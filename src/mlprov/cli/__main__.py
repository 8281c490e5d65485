"""``python -m mlprov.cli`` runs the CLI."""

import sys

from mlprov.cli import main

sys.exit(main())
