"""`python -m gdsl.cli ...`, as `python -m gdsl ...`."""

import sys

from . import main

sys.exit(main())
