#!/usr/bin/env python3
"""Kernel start-up time: our kernel ("rust-multiprocessing") against stock evcxr_jupyter, side by side.

Starts, one at a time and interleaved (order alternating per round), a plain evcxr kernel (a temp
kernel spec pointing at stock evcxr_jupyter 0.22.0, built by `kernel/build_evcxr.sh --stock` the
same way as ours but without the project's patches, with an empty EVCXR_CONFIG_DIR, so no startup
files) and ours, and reports the medians of:
  ready  time from start_kernel to the kernel_info reply
  cell   time of the first cell after ready (ours: a cell using the helper crate's prelude), sent
         right at ready, or --pause seconds later (a learner reading the notebook first)
and the ratio ours/plain of "ready" (the target is at most 1.1). With --fresh it also times our
kernel with every build slot taken (RUST_MP_SLOTS=0: a fresh build dir, as when more kernels run
than there are slots).

usage: .venv/bin/python scripts/measure_startup.py [--rounds 5] [--pause S] [--fresh] [--warm-up] [--json FILE]
Run ./install.sh first (it installs and warms the kernel). The machine's cores are shared: compare
ratios from one run, not absolute times across runs.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_session  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The first cell a notebook runs with our kernel: uses the prelude without `use` or `:dep`.
# A Pool cell when src/lib.rs's prelude has Pool (the issue: it must answer within 2 s of ready),
# else a Process cell.
OUR_POOL_CELL = """\
fn square(x: u64) -> u64 { x * x }
let pool = Pool::new(2).unwrap();
let squares = pool.map(square, 0..8u64).unwrap();
println!("{squares:?}");
"""
OUR_PROCESS_CELL = """\
let mut p = Process::new(|| println!("hello from a child"));
p.start().unwrap();
p.join().unwrap();
"""
# The same shape for the plain kernel (a `let`, so evcxr's first type inference is paid there too).
PLAIN_FIRST_CELL = 'let x = vec![1u8, 2, 3]; println!("hello {}", x.len());'


def find_evcxr():
    """Stock evcxr_jupyter 0.22.0, built like ours but without kernel/patches (cached by key)."""
    import subprocess

    out = subprocess.run([os.path.join(REPO, "kernel/build_evcxr.sh"), "--stock"],
                         capture_output=True, text=True)
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode != 0 or not os.access(path, os.X_OK):
        sys.exit(f"kernel/build_evcxr.sh --stock failed:\n{out.stderr}")
    return path


def make_plain_spec(root):
    """A kernel spec 'evcxr-plain-measure' under root/kernels running evcxr_jupyter with no startup files."""
    config = os.path.join(root, "empty-evcxr-config")
    os.makedirs(config)
    spec_dir = os.path.join(root, "kernels", "evcxr-plain-measure")
    os.makedirs(spec_dir)
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump(
            {
                "argv": [find_evcxr(), "--control_file", "{connection_file}"],
                "display_name": "Rust (plain evcxr, measurement)",
                "language": "rust",
                "interrupt_mode": "message",
                "env": {"EVCXR_CONFIG_DIR": config},
            },
            f,
        )
    return os.path.join(root, "kernels")


def prelude_has(name):
    try:
        with open(os.path.join(REPO, "src/lib.rs")) as f:
            text = f.read()
    except OSError:
        return False
    m = re.search(r"pub mod prelude\s*\{(.*?)\n\}", text, re.S)
    return bool(m and re.search(r"\b%s\b" % name, m.group(1)))


def one_run(label, kernel_name, cell, env, kernel_dirs, timeout, pause=0.0):
    log = tempfile.NamedTemporaryFile("w+", prefix=f"measure-{label}-", suffix=".log", delete=False)
    km, kc, t0 = None, None, None
    try:
        ksm_dirs = kernel_dirs
        km, kc, t0 = start_logged(kernel_name, env, ksm_dirs, log)
        t_ready, info = kernel_session.wait_kernel_info(km, kc, timeout)
        ready = t_ready - t0
        time.sleep(pause)
        secs, status, out, err, other = kernel_session.execute(kc, cell, timeout)
        if status != "ok":
            raise RuntimeError(f"{label}: first cell failed ({status}):\n{out}\n{err}\n{other}")
    finally:
        if km is not None:
            kernel_session.stop(km, kc)
    log.seek(0)
    slot = re.search(r"build slot (\d+)|all \d+ build slots are busy", log.read())
    os.unlink(log.name)
    where = "" if slot is None else (f"slot {slot.group(1)}" if slot.group(1) else "fresh dir")
    return {"ready": ready, "cell": secs, "where": where, "impl": info.get("implementation", "")}


def start_logged(kernel_name, env, kernel_dirs, log):
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    ksm = KernelSpecManager()
    if kernel_dirs:
        ksm.kernel_dirs = list(kernel_dirs) + list(ksm.kernel_dirs)
    km = KernelManager(kernel_name=kernel_name, kernel_spec_manager=ksm)
    full_env = dict(os.environ)
    full_env.update(env)
    t0 = time.monotonic()
    km.start_kernel(env=full_env, cwd=REPO, stdout=log, stderr=log)
    kc = km.client()
    kc.start_channels()
    return km, kc, t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fresh", action="store_true", help="also time our kernel with no free build slot")
    ap.add_argument("--warm-up", action="store_true",
                    help="also time our kernel with RUST_MP_WARM_UP=1 (rust-analyzer warmed before ready)")
    ap.add_argument("--kernel", default="rust-multiprocessing")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json", help="write all samples to this file")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds between ready and the first cell (a learner reading first)")
    args = ap.parse_args()

    venv_kernels = os.path.join(REPO, ".venv/share/jupyter/kernels")
    our_cell = OUR_POOL_CELL if prelude_has("Pool") else OUR_PROCESS_CELL
    root = tempfile.mkdtemp(prefix="measure-startup-")
    plain_dirs = [make_plain_spec(root)]
    variants = [
        ("plain", "evcxr-plain-measure", PLAIN_FIRST_CELL, {}, plain_dirs),
        ("ours", args.kernel, our_cell, {}, [venv_kernels]),
    ]
    if args.warm_up:
        variants.append(("ours-warm", args.kernel, our_cell, {"RUST_MP_WARM_UP": "1"}, [venv_kernels]))
    if args.fresh:
        variants.append(("ours-fresh", args.kernel, our_cell, {"RUST_MP_SLOTS": "0"}, [venv_kernels]))

    samples = {v[0]: [] for v in variants}
    try:
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else list(reversed(variants))
            for label, name, cell, env, dirs in order:
                s = one_run(label, name, cell, env, dirs, args.timeout, args.pause)
                samples[label].append(s)
                print(f"round {r + 1}: {label:<10} ready {s['ready']:6.2f} s   first cell {s['cell']:5.2f} s  {s['where']}",
                      flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = {k: {m: statistics.median(s[m] for s in v) for m in ("ready", "cell")} for k, v in samples.items()}
    print()
    print(f"medians over {args.rounds} rounds (interleaved, one kernel at a time):")
    for k in samples:
        print(f"  {k:<10} ready {med[k]['ready']:6.2f} s   first cell {med[k]['cell']:5.2f} s")
    ratio = med["ours"]["ready"] / med["plain"]["ready"]
    print(f"  ratio ours/plain (ready): {ratio:.2f}  (target <= 1.10: {'met' if ratio <= 1.1 else 'NOT met'})")
    for k in ("ours-warm", "ours-fresh"):
        if k in med:
            print(f"  ratio {k}/plain (ready): {med[k]['ready'] / med['plain']['ready']:.2f}")
    print(f"  first cell of ours: {med['ours']['cell']:.2f} s, sent {args.pause:g} s after ready "
          f"(target <= 1.5 s: {'met' if med['ours']['cell'] <= 1.5 else 'NOT met'})")
    print("  our first cell:\n    " + our_cell.strip().replace("\n", "\n    "))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "medians": med, "ratio": ratio, "cell": our_cell}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
