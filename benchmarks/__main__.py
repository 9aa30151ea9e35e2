"""``python -m benchmarks``: the single entry point of the benchmark suite."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.suite import IMPLS, Mode


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the suite (or one child measurement), print the paths."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="smaller CNN batch and long sequence (routine runs)")
    size.add_argument("--smoke", action="store_true",
                      help="tiny sizes, one run each: proves the code runs, times mean nothing")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                    help="output directory (default: benchmarks/results, git-ignored)")
    ap.add_argument("--only", nargs="+", choices=["mlp", "cnn", "recurrent", "long"],
                    help="run only these workloads")
    ap.add_argument("--impls", nargs="+", choices=IMPLS, help="run only these implementations")
    ap.add_argument("--mem-limit-gb", type=float, default=12.0,
                    help="address-space limit of each long-sequence child process")
    ap.add_argument("--child-timeout", type=float, default=1800.0,
                    help="wall-time limit in seconds of each long-sequence child process")
    # Internal: one long-sequence measurement in a child process (prints one JSON line).
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="full", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        from benchmarks.suite import child_main

        print(json.dumps(child_main(args.child, args.mode, args.mem_limit_gb), default=float))
        return 0
    from benchmarks.run import run_suite

    mode: Mode = "smoke" if args.smoke else ("quick" if args.quick else "full")
    path = run_suite(args.quick, args.out, mode=mode, only=args.only, impls=args.impls,
                     mem_limit_gb=args.mem_limit_gb,
                     child_timeout_s=args.child_timeout, log=lambda s: print(s, flush=True))
    print(f"wrote {path}, {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
