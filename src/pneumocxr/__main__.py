"""``python -m pneumocxr`` runs the command line."""

import sys

from pneumocxr.cli import main

sys.exit(main())
