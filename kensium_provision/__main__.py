"""`python -m kensium_provision` runs the kprov command line."""

from kensium_provision.cli import main

main()
