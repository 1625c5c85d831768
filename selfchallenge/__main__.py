"""`python -m selfchallenge ...`: the same command line as the `selfchallenge` script."""

import sys

from .cli import main

sys.exit(main())
