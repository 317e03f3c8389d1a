"""`python -m gdsl ...`: the command line, as the `gdsl` console script runs it."""

import sys

from .cli import main

sys.exit(main())
