"""`python -m tlcore`: runs the `tllab` command line (`tlcore.cli`)."""

import sys

from tlcore.cli import main

sys.exit(main())
