"""`python -m kensium_provision` and the `kprov` script: run the command line, then end the process."""

import gc
import sys
from typing import NoReturn

from kensium_provision.cli import main


def run() -> NoReturn:
    code = main()
    # The process ends here: skip the collection of every object left (botocore's models are ~90,000 of them)
    # that the interpreter's exit would otherwise make: 0.3-0.45 s of every AWS command (bench/latency). atexit
    # handlers still run (logging flushes there); kprov's files are written in `with` blocks and closed.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
