"""``python -m hpc_nst`` runs the command-line interface."""

import sys

from hpc_nst.cli import main

sys.exit(main())
