"""`python -m kensium_provision` runs the kprov command line."""

import sys

from kensium_provision.cli import main

sys.exit(main())
