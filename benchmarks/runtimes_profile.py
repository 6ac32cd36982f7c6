"""Decodes with one runtime of `runtimes_bench.py` in a loop, for a profiler attached by pid.

Loads the runtime from a folder that `runtimes_bench.py --keep DIR` wrote,
exactly as the benchmark's `measure` does, warms it up, touches READY, then
decodes NEW_TOKENS tokens repeatedly for SECONDS. Attach a sampling profiler
once READY exists, so that it sees steady-state decoding only:

    python benchmarks/runtimes_profile.py saved_model_c_api /tmp/b110 20 /tmp/ready &
    while [ ! -e /tmp/ready ]; do sleep 0.5; done
    perf record -e cpu-clock -F 499 -g -p $! -o prof.perf -- sleep 15

(`py-spy record --pid` works the same way for the Python frames.)
"""

import argparse
import sys
import time
from pathlib import Path

import runtimes_bench


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runtime", choices=runtimes_bench.RUNTIMES)
    parser.add_argument("work", help="a folder written by runtimes_bench.py --keep")
    parser.add_argument("seconds", type=float, help="how long to decode in a loop")
    parser.add_argument("ready", help="this file is touched when the warm-up is done")
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    calls = []

    def timed(function, repeats):
        # measure() times run(1), then run(new_tokens): loop on the second.
        calls.append(function)
        if len(calls) == 1:
            start = time.perf_counter()
            function()
            return time.perf_counter() - start
        Path(args.ready).touch()
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            function()
            count += 1
        elapsed = time.perf_counter() - start
        print(f"{args.runtime}: {count} decodes in {elapsed:.1f} s", file=sys.stderr)
        return elapsed / count

    runtimes_bench._timed = timed
    print(runtimes_bench.measure(args.runtime, Path(args.work), args.new_tokens, repeats=1))


if __name__ == "__main__":
    main()
