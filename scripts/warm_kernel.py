#!/usr/bin/env python3
"""Starts the project's kernel once, headless, in build slot 0 and runs a cell, so that the helper
crate and its dependencies are built in that slot before anyone opens a notebook.

usage: .venv/bin/python scripts/warm_kernel.py [--slot N] [--timeout S]
Exit status 0 when the cell ran fine; otherwise prints what the kernel said and exits 1.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_session  # noqa: E402

# A cell that uses the helper crate's prelude (no `use`, no `:dep`): it must compile and fork.
WARM_CELL = """\
let mut p = Process::new(|| println!("warm-up child"));
p.start().unwrap();
p.join().unwrap();
println!("warm-up done");
"""


def prebuild_cell():
    """kernel/evcxr/prebuild.evcxr: the `:dep` lines of crates that notebooks add themselves."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernel", "evcxr", "prebuild.evcxr")
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.strip().startswith(":dep")]
    except OSError:
        return None
    return "\n".join(lines) or None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="rust-multiprocessing")
    ap.add_argument("--slot", default="0")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()

    t0 = time.monotonic()
    km, kc, t_start = kernel_session.start(args.kernel, env={"RUST_MP_SLOT": args.slot})
    try:
        t_ready, info = kernel_session.wait_kernel_info(km, kc, args.timeout)
        impl = info.get("implementation", "")
        print(f"kernel ready after {t_ready - t_start:.1f} s ({impl})")
        secs, status, out, err, other = kernel_session.execute(kc, WARM_CELL, args.timeout)
        print(f"warm-up cell: {status} in {secs:.1f} s")
        if status != "ok" or "warm-up done" not in out or impl.endswith("startup-error"):
            sys.stdout.write(out)
            sys.stderr.write(err)
            for o in other:
                sys.stderr.write(str(o.get("evalue", o)) + "\n")
            return 1
        pre = prebuild_cell()
        if pre:
            secs, status, out, err, other = kernel_session.execute(kc, pre, args.timeout)
            print(f"prebuild cell (kernel/evcxr/prebuild.evcxr): {status} in {secs:.1f} s")
            if status != "ok":
                sys.stdout.write(out)
                sys.stderr.write(err)
                return 1
    finally:
        kernel_session.stop(km, kc)
    print(f"warm-up took {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
