"""A stand-in password-manager CLI for CommandVault's tests: stores stdin in a directory, prints it back.

Usage: fake_password_manager.py --dir DIR [--print-id] [--fail CODE] [--echo] [--sleep S] (store|fetch) NAME
Every call appends its own argv, /proc/self/cmdline and environment to DIR/calls.jsonl, so tests can
check that no secret reached them. `--fail` exits with CODE (after echoing stdin to stderr with `--echo`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--print-id", action="store_true")
    parser.add_argument("--fail", type=int, default=0)
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("action", choices=("store", "fetch"))
    parser.add_argument("name")
    args = parser.parse_args()
    cmdline = Path("/proc/self/cmdline").read_bytes().decode(errors="replace").split("\0")
    with (args.dir / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps({"action": args.action, "argv": sys.argv, "cmdline": cmdline,
                                "env": dict(os.environ)}) + "\n")
    time.sleep(args.sleep)
    entry = args.dir / "entries" / args.name.replace("/", "__")
    if args.action == "store":
        value = sys.stdin.buffer.read()
        if args.fail:
            if args.echo:
                sys.stderr.buffer.write(b"cannot store: " + value)
            return int(args.fail)
        entry.parent.mkdir(exist_ok=True)
        entry.write_bytes(value)
        if args.print_id:
            sys.stdout.write(f"id-{len(list(entry.parent.iterdir()))}\n")
        return 0
    if args.fail or not entry.exists():
        sys.stderr.write(f"no entry {args.name}\n")
        return int(args.fail or 1)
    sys.stdout.buffer.write(entry.read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
