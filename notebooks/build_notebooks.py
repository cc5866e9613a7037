"""Writes the notebooks of this folder from the cell texts below (without outputs).

Outputs come from a real run through the project's kernel afterwards:

    .venv/bin/python notebooks/build_notebooks.py            # all notebooks
    .venv/bin/python notebooks/build_notebooks.py 03         # only those whose name starts with 03
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.kernel_name=rust-multiprocessing \
        --ExecutePreprocessor.timeout=600 notebooks/NAME.ipynb

When only markdown changed, the saved outputs are kept; when a code cell changed, the notebook is
written without outputs: execute it again.
Then `build_notebooks.py --metadata` sets language_info.name back to "rust" (evcxr reports "Rust").
"""

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# Cell tags understood by the project's notebook tests.
IGNORE = "nbval-ignore-output"  # output varies beyond pids and timings: not compared
UNORDERED = "unordered-output"  # stdout lines compared as a sorted multiset


def md(text):
    return new_markdown_cell(text.strip("\n"))


def code(text, *tags):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(cells):
    # Stable cell ids (position and kind), so that rebuilding does not change every cell of the file.
    for i, cell in enumerate(cells):
        cell.id = f"{'md' if cell.cell_type == 'markdown' else 'code'}-{i:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "rust-multiprocessing",
        "display_name": "Rust (multiprocessing)",
        "language": "rust",
    }
    nb.metadata["language_info"] = {
        "name": "rust",
        "file_extension": ".rs",
        "mimetype": "text/rust",
        "codemirror_mode": "rust",
        "pygment_lexer": "rust",
    }
    return nb


# The SVG display type and the chart dependency, shared by the notebooks that draw charts.
PLOTTERS_DEP = (
    ':dep plotters = { version = "0.3", default-features = false, '
    'features = ["svg_backend", "line_series", "point_series"] }'
)

SVG_TYPE = r'''
use plotters::prelude::*;

/// An SVG picture that Jupyter shows as an image when it is the last expression of a cell.
pub struct Svg(pub String);

impl Svg {
    /// evcxr calls this to show the value: everything between the two marker lines is the picture.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT image/svg+xml");
        println!("{}", self.0);
        println!("EVCXR_END_CONTENT");
    }
}
'''

# --------------------------------------------------------------------------------------------
# 00: the seed, question by question
# --------------------------------------------------------------------------------------------

SEED = [
    md(r"""
# The six questions, in Rust

This notebook follows the Python notebook it comes from, question by question (Q1 to Q6).

- **Q3, Q5 and Q6** ask for code. Each shows the Python original as a quote, then a Rust cell that does
  the same thing, run in this kernel.
- **Q1, Q2 and Q4** ask for explanations. Each answer is written here in our own words, and corrected
  where the original is loose. Every claim links to a companion notebook where you can watch it happen,
  with measured figures:

| notebook | shows |
|---|---|
| `01_performance.ipynb` | a CPU-bound job: serial, with a pool of 1, 2, 4 workers, and with threads |
| `02_fault_isolation.ipynb` | children that panic, abort and crash; the same in a thread; errors from a pool |
| `03_memory_spaces.ipynb` | a child's changes stay in the child; copy-on-write, measured |
| `04_cost.ipynb` | what a process costs compared with a thread; CPU-bound versus waiting |
| `05_pool_at_work.ipynb` | which worker ran which task, and when; what `chunksize` changes |

The kernel, *Rust (multiprocessing)*, loads the helper crate `multiprocessing` at start, so
`Process`, `Pool` and `current_process` are ready to use in every cell, as after
`import multiprocessing` in Python.
"""),
    md(r"""
## Q1. What is multiprocessing in python? Why is it useful?

**Multiprocessing** means running parts of one program in several operating-system *processes* at the
same time. Each process has its own memory and its own copy of the program (in Python: its own
interpreter). The operating system runs the processes on different CPU cores when it has them.
Python's `multiprocessing` module makes this look like working with threads: `Process` runs a function
in a new process, `Pool` hands many calls of one function to a fixed set of worker processes, and
queues and pipes move data between them. On Linux, Python has long started children with `fork`: the
child begins as an exact copy of the parent (since Python 3.14 the default there is *forkserver*, which
forks from a clean helper process; macOS and Windows use *spawn*, a fresh interpreter per child). The
Rust crate used here always forks.

Why it is useful:

- **Speed for CPU-bound work.** In CPython only one thread at a time runs Python code (the global
  interpreter lock, *GIL*), so threads do not make a computation faster; processes do, because each has
  its own interpreter. The gain is limited by the number of cores (this machine has 2) and reduced by
  the cost of starting processes and of copying arguments and results between them.
  *See `01_performance.ipynb`.*
- **Fault isolation.** A process that crashes (a segmentation fault in a C extension, an abort, a kill
  by the out-of-memory killer) takes only itself down; its parent carries on and reads its exit code.
  An ordinary Python exception in a *thread* does not stop the program either: what processes add is
  protection against crashes and against one task corrupting another's memory.
  *See `02_fault_isolation.ipynb` and `03_memory_spaces.ipynb`.*
- **Scaling with the workload, on one machine.** The original says a pool can spread work "across
  multiple processes or machines". It cannot: `multiprocessing.Pool` runs its workers on the machine
  where it was created. The work can grow as far as that machine's cores allow; going beyond one
  machine needs other tools (an MPI library, Dask, Ray, a job queue).
- **CPU-bound tasks.** Right for CPython, because of the GIL. **Not true of Rust**: Rust threads run
  CPU-bound code on all cores in parallel (there is no GIL). In Rust one usually reaches for threads
  first, and for processes when isolation is needed. *See `01_performance.ipynb` and `04_cost.ipynb`.*
"""),
    md(r"""
## Q2. What are the differences between multiprocessing and multithreading?

| | processes | threads |
|---|---|---|
| **memory** | each has its own; after `fork` the child has a copy of the parent's memory, shared page by page until one of them writes (*copy-on-write*) | one memory for all threads of a process |
| **communication** | data must be serialized and sent through pipes or shared-memory segments (Python: pickle; here: serde) | threads read and write the same values; they need locks or atomics to do it safely (Rust checks this at compile time) |
| **CPU-bound work** | runs in parallel, in Python and in Rust | **in CPython: one thread at a time (GIL); in Rust: in parallel** |
| **waiting (I/O-bound) work** | works, at a higher cost per process | works, cheaply: a waiting thread costs almost nothing |
| **cost** | starting a process costs much more than starting a thread (`04_cost.ipynb` measures it) | cheap to start; memory shared |
| **fault isolation** | a crash ends only that process | a crash (segfault, abort) ends the whole process with all its threads; an exception (Python) or a panic (Rust) in a thread is caught at `join` |

Two corrections to the original:

- "Communication can be simpler, as threads share the same memory space": sharing is easier, but it is
  also how threads break each other's data (races, a lock left poisoned by a panicking thread). Rust's
  type system (`Send`, `Sync`) refuses unsynchronized sharing at compile time; Python does not.
- "A crash or error in one thread can cause the entire program to crash": true for crashes, not for
  errors: an exception (Python) or panic (Rust) in a thread ends only that thread.

*See `02_fault_isolation.ipynb` (crashes and panics), `03_memory_spaces.ipynb` (memory) and
`04_cost.ipynb` (cost, CPU-bound versus waiting).*
"""),
    md(r"""
## Q3. Write a python code to create a process using the multiprocessing module.

The Python original:

```python
import multiprocessing

def cubes(n):
    return n**3

if __name__=='__main__':
    with multiprocessing.Pool(processes=4) as pool:
        out=pool.map(cubes , [1,2,3,4,5])
        pool.close()
        pool.join()
        print(out)
```

In Rust, the function given to a pool is a plain `fn` (it has to be found again in the worker
processes), and its argument and result are values that can be sent between processes. Define it in a
cell of its own, as Python defines it at the top level of a module:
"""),
    code(r"""
fn cubes(n: u64) -> u64 {
    n.pow(3)
}
"""),
    md(r"""
Now the pool. Python's `with Pool(processes=4) as pool:` block becomes `Pool::with(4, |pool| { ... })`:
the pool exists inside the braces and is shut down when they end. `map` sends the five numbers to the
four workers and gives back the results **in the order of the inputs**, whichever worker computed each
one. Calls that can fail return a `Result`: `?` stops at the first error and passes it on, and the
block ends with `Ok(out)` to hand the list out. Watch for `[1, 8, 27, 64, 125]`.
"""),
    code(r"""
let out = Pool::with(4, |pool| {
    let out = pool.map(cubes, vec![1, 2, 3, 4, 5])?;
    pool.close();
    pool.join()?;
    Ok(out)
})?;
println!("{:?}", out);
"""),
    md(r"""
## Q4. What is a multiprocessing pool in python? Why is it used?

A **pool** is a fixed set of worker processes, started once and then reused for many calls of a function.
You give it a function and a list of inputs (`map`), or single calls (`apply_async`); the pool cuts the
inputs into chunks, sends each chunk to an idle worker through a pipe, and collects the results, in the
order of the inputs for `map`. The workers stay alive between calls until the pool is closed.

Why it is used:

- **It pays the start-up cost once.** Starting a process is expensive compared with calling a function
  (see `04_cost.ipynb`); a pool starts its workers once and sends them task after task.
- **It caps the parallelism.** With `n` workers, at most `n` tasks run at once, whatever the number of
  inputs. The usual choice is one worker per core; more workers than cores does not make CPU-bound work
  faster (see `01_performance.ipynb`).
- **It does the bookkeeping.** Splitting the input, handing chunks to whichever worker is free,
  gathering results in order and passing errors back to the caller. The original calls this "the
  communication and synchronization between the main process and the worker processes": concretely,
  every argument and every result is serialized, sent through a pipe and rebuilt on the other side.
  That is why only functions the workers can find and values that can be serialized can be used
  (Python: picklable; here: `fn` items and values with serde's traits).

A pool runs on one machine: it does not spread work across computers. And what happens when a task
fails is part of its job: a task that raises (Python) or panics (Rust) returns the error to the caller;
a worker that dies makes Python's `Pool` hang, while this crate returns an error and replaces the
worker (see `02_fault_isolation.ipynb`). *Watch the pool assign tasks to workers in
`05_pool_at_work.ipynb`.*
"""),
    md(r"""
## Q5. How can we create a pool of worker processes in python using the multiprocessing module?

The Python original:

```python
#We can create a pool of worker processes in Python using the multiprocessing.Pool class.

import multiprocessing

# Define a function to be executed by the worker processes
def worker_function(n):
    # do some work here
    return n**2

if __name__ == '__main__':
    # Create a pool of 4 worker processes
    pool = multiprocessing.Pool(processes=4)

    # Submit tasks to the pool for execution
    results = pool.map(worker_function, [1,2,3,4,5])

    # Close the pool to prevent further submissions
    pool.close()

    # Wait for all tasks to complete and collect the results
    pool.join()

    # Process the results as needed
    print(results)
```

The same in Rust, step by step. First the function the workers run:
"""),
    code(r"""
// The function to be run by the worker processes.
fn worker_function(n: u64) -> u64 {
    // do some work here
    n.pow(2)
}
"""),
    md(r"""
Then the pool, the tasks, closing and waiting, as in the Python code. Watch for `[1, 4, 9, 16, 25]`.
"""),
    code(r"""
// Create a pool of 4 worker processes.
let pool = Pool::new(4)?;

// Submit tasks to the pool; map waits for all of them and returns the results in order.
let results = pool.map(worker_function, vec![1, 2, 3, 4, 5])?;

// Close the pool to prevent further submissions.
pool.close();

// Wait for the worker processes to exit.
pool.join()?;

// Process the results as needed.
println!("{:?}", results);
"""),
    md(r"""
## Q6. Write a python program to create 4 processes, each process should print a different number using the multiprocessing module in python.

The Python original:

```python
import multiprocessing
import time

start = time.perf_counter()

def print_number(num):
    print(f"Process ID: {multiprocessing.current_process().name}, Number: {num}")

if __name__ == '__main__':
    processes = []
    for i in range(1, 5):
        process = multiprocessing.Process(target=print_number, args=(i,))
        processes.append(process)
        process.start()

    for process in processes:
        process.join()

    finish = time.perf_counter()

    print(f"Process finished in {round(finish-start,2)} seconds")
```

Its saved output is only `Process finished in 0.24 seconds`: the four lines printed by the child
processes never reached the notebook. That run used the *spawn* start method: each child was a new
Python program, whose output went to the terminal that started Jupyter, not to the notebook. Here the
crate passes each child's output on to the cell, so the four lines appear.

The function each process runs:
"""),
    code(r"""
fn print_number(num: i32) {
    println!("Process ID: {}, Number: {}", current_process().name(), num);
}
"""),
    md(r"""
Four processes, started one after the other, then joined. `move || print_number(i)` is the target:
a closure that the child runs, holding its own copy of `i` (Python passes `args=(i,)`).

The four children run at the same time, so **their lines can come in any order** from one run to the
next. Watch for four `Process ID` lines with numbers 1 to 4, then the time taken.
"""),
    code(r"""
use std::time::Instant;

let start = Instant::now();

let mut processes = Vec::new();
for i in 1..5 {
    let mut process = Process::new(move || print_number(i));
    process.start()?;
    processes.push(process);
}

for process in processes.iter_mut() {
    process.join()?;
};

let finish = start.elapsed();

println!("Process finished in {:.3} seconds", finish.as_secs_f64());
""", UNORDERED),
    md(r"""
The time is printed with three decimals rather than Python's two (`round(..., 2)`): with two it would
read 0.00. Compare with the seed's *0.24 seconds*: that run used the *spawn* start method, which starts a fresh
Python interpreter for each child. `fork` copies the running process instead, which is much faster
(`04_cost.ipynb` measures it).
"""),
]

# --------------------------------------------------------------------------------------------
# 01: performance
# --------------------------------------------------------------------------------------------

PERFORMANCE = [
    md(r"""
# 1. Performance: does a pool make CPU-bound work faster?

The claim (Q1): *"multiprocessing can take advantage of multiple CPUs or CPU cores to execute those
tasks simultaneously, leading to significant performance improvements."*

We run one CPU-bound job (counting prime numbers by trial division) in five ways and time each:

1. serially, in this process;
2. with a pool of 1, 2 and 4 worker processes;
3. with 1, 2 and 4 threads.

What to expect: the speedup can not go beyond the number of cores. This notebook was run on a machine
with **2 cores** (shared with other programs, so figures wobble a little from run to run).
"""),
    md(r"""
The chart at the end needs the plotting crate `plotters` (only its SVG part). The project's
installer fetches and builds it beforehand, so this works offline; the first time in a new kernel it
may take some seconds.
"""),
    code(PLOTTERS_DEP),
    code(SVG_TYPE),
    md(r"""
The job: count the primes in a range of numbers. `count_primes` is a plain `fn` so that pool workers
can run it. The work is cut into 32 ranges; ranges of big numbers take longer than ranges of small
ones, so handing them out one by one to whoever is free keeps all workers busy. Each way is timed 3
times and the fastest run kept.
"""),
    code(r"""
fn count_primes(range: (u64, u64)) -> u64 {
    let (low, high) = range;
    let mut count = 0;
    for n in low.max(2)..high {
        let mut divisor = 2;
        let mut prime = true;
        while divisor * divisor <= n {
            if n % divisor == 0 {
                prime = false;
                break;
            }
            divisor += 1;
        }
        if prime {
            count += 1;
        }
    }
    count
}

/// Cuts 0..limit into `pieces` ranges of equal length.
fn ranges(limit: u64, pieces: u64) -> Vec<(u64, u64)> {
    let step = limit / pieces;
    (0..pieces).map(|i| (i * step, if i + 1 == pieces { limit } else { (i + 1) * step })).collect()
}

use std::time::Instant;

/// Runs `job` 3 times; returns its result and its shortest wall time in seconds (the run least
/// disturbed by other programs on the machine).
fn fastest_of_3(mut job: impl FnMut() -> Result<u64>) -> Result<(u64, f64)> {
    let mut best = f64::MAX;
    let mut result = 0;
    for _ in 0..3 {
        let start = Instant::now();
        result = job()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((result, best))
}
"""),
    md(r"""
How many cores does this machine have (`cpu_count()`, as in Python)? The ideal speedup with `n`
workers is `min(n, cores)`.
"""),
    code(r"""
let cores = cpu_count();
println!("cores: {cores}");
""", IGNORE),
    md(r"""
### Serially

One process, one thread, one range after the other. This is the time to beat. Watch for the count
(216816 primes below 3 million) and the time.
"""),
    code(r"""
let work = ranges(3_000_000, 32);
let (total, serial) = fastest_of_3(|| Ok(work.iter().map(|&r| count_primes(r)).sum()))?;
println!("serial: {total} primes in {serial:.3} s");
"""),
    md(r"""
### With a pool of processes

For 1, 2 and 4 workers: start the pool, `map` the 32 ranges, add up. Only the `map` is timed; starting
the pool is shown separately (it is small here, see `04_cost.ipynb`). Watch the time drop from 1 to 2
workers, and **not** from 2 to 4: there are only 2 cores.
"""),
    code(r"""
let mut pool_times: Vec<(usize, f64)> = Vec::new();
for workers in [1, 2, 4] {
    let started = Instant::now();
    let pool = Pool::new(workers)?;
    let start_up = started.elapsed().as_secs_f64();

    let (total, seconds) = fastest_of_3(|| Ok(pool.map(count_primes, work.clone())?.iter().sum()))?;

    pool.close();
    pool.join()?;
    pool_times.push((workers, seconds));
    println!("pool of {workers}: {total} primes in {seconds:.3} s (starting the pool: {:.1} ms)", start_up * 1e3);
};
"""),
    md(r"""
### With threads

The same 32 ranges, shared by 1, 2 and 4 threads of this process. Each thread takes the next range
that nobody has taken yet (a shared atomic counter), as pool workers do. In Rust there is no global
interpreter lock: threads run on both cores at once.
"""),
    code(r"""
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

fn with_threads(threads: usize, work: &[(u64, u64)]) -> u64 {
    let next = AtomicUsize::new(0);
    let total = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= work.len() {
                    break;
                }
                total.fetch_add(count_primes(work[i]), Ordering::Relaxed);
            });
        }
    });
    total.into_inner()
}
"""),
    code(r"""
let mut thread_times: Vec<(usize, f64)> = Vec::new();
for threads in [1, 2, 4] {
    let (total, seconds) = fastest_of_3(|| Ok(with_threads(threads, &work)))?;
    thread_times.push((threads, seconds));
    println!("{threads} threads: {total} primes in {seconds:.3} s");
};
"""),
    md(r"""
### The figures side by side

Speedup = serial time / time. Watch both columns reach about 2 with 2 workers (the number of cores),
and stay there with 4.
"""),
    code(r"""
println!("{:>8} | {:>10} {:>8} | {:>10} {:>8}", "workers", "pool", "speedup", "threads", "speedup");
for (&(n, p), &(_, t)) in pool_times.iter().zip(&thread_times) {
    println!("{:>8} | {:>8.3} s {:>7.2}x | {:>8.3} s {:>7.2}x", n, p, serial / p, t, serial / t);
};
println!("serial: {serial:.3} s");
""", IGNORE),
    md(r"""
The same as a chart: wall times on the left, speedups on the right. The black line on the right is the
ideal: `n` times faster with `n` workers, up to the number of cores, then flat.
"""),
    code(r"""
fn performance_chart(cores: usize, serial: f64, pool: &[(usize, f64)], threads: &[(usize, f64)]) -> Svg {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 360)).into_drawing_area();
        root.fill(&WHITE).unwrap();
        let (left, right) = root.split_horizontally(480);
        let most = pool.iter().chain(threads).map(|&(n, _)| n).max().unwrap_or(4) as f64 + 0.5;
        let integers = |x: &f64| if x.fract() == 0.0 { format!("{x}") } else { String::new() };

        // Left: wall time, with the serial time as a flat line.
        let slowest = pool.iter().chain(threads).map(|&(_, t)| t).fold(serial, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(&left)
            .caption("Wall time (lower is better)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.5f64..most, 0f64..slowest)
            .unwrap();
        chart.configure_mesh().x_label_formatter(&integers).x_desc("workers (processes or threads)").y_desc("seconds").draw().unwrap();
        chart
            .draw_series(LineSeries::new(vec![(0.5, serial), (most, serial)], BLACK.stroke_width(1)))
            .unwrap()
            .label("serial")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        for (label, times, color) in [("pool of processes", pool, BLUE), ("threads", threads, RED)] {
            let points: Vec<(f64, f64)> = times.iter().map(|&(n, t)| (n as f64, t)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .unwrap()
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))).unwrap();
        }
        chart.configure_series_labels().position(SeriesLabelPosition::LowerLeft).border_style(BLACK).background_style(WHITE).draw().unwrap();

        // Right: speedup, with the ideal for this machine's cores.
        let mut chart = ChartBuilder::on(&right)
            .caption(format!("Speedup (higher is better), {cores} cores"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(45)
            .build_cartesian_2d(0.5f64..most, 0f64..most)
            .unwrap();
        chart.configure_mesh().x_label_formatter(&integers).x_desc("workers (processes or threads)").y_desc("serial time / time").draw().unwrap();
        let ideal: Vec<(f64, f64)> = pool.iter().map(|&(n, _)| (n as f64, n.min(cores) as f64)).collect();
        chart
            .draw_series(LineSeries::new(ideal, BLACK.stroke_width(1)))
            .unwrap()
            .label(format!("ideal: min(workers, {cores})"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        for (label, times, color) in [("pool of processes", pool, BLUE), ("threads", threads, RED)] {
            let points: Vec<(f64, f64)> = times.iter().map(|&(n, t)| (n as f64, serial / t)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .unwrap()
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))).unwrap();
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).background_style(WHITE).draw().unwrap();
        root.present().unwrap();
    }
    Svg(svg)
}
"""),
    code(r"""
performance_chart(cores, serial, &pool_times, &thread_times)
""", IGNORE),
    md(r"""
### What this shows

- **A pool of processes does make CPU-bound work faster**, up to the number of cores: about 2x here.
  A pool of 1 is as fast as the serial run (plus a little for sending ranges and results through pipes).
- **More workers than cores gains nothing** for CPU-bound work: 4 workers on 2 cores take turns.
- **In Rust, threads do exactly as well as processes** for this job, because nothing stops two threads
  from computing at the same time. The original's claim that processes are "more suitable for CPU-bound
  tasks" than threads is about CPython, and its GIL.
"""),
    md(r"""
### The same comparison in CPython, for contrast

If a Python 3 interpreter is available (the kernel passes the project's one in `RUST_MP_PYTHON`), this
cell runs the Python twin of the job (a smaller range: Python is much slower) with 2 threads and with a
`multiprocessing.Pool(2)`. Watch the threads give **no** speedup in Python, while the pool does.
"""),
    code(r'''
const PYTHON_TWIN: &str = r#"
import multiprocessing as mp, threading, time
def count_primes(r):
    lo, hi = r; c = 0
    for n in range(max(lo, 2), hi):
        d = 2; p = True
        while d * d <= n:
            if n % d == 0: p = False; break
            d += 1
        c += p
    return c
def fastest_of_3(job):
    best = None
    for _ in range(3):
        t = time.perf_counter(); result = job(); dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return result, best
def with_threads(work):
    out = []
    def run(part):
        for r in part: out.append(count_primes(r))
    ts = [threading.Thread(target=run, args=(work[i::2],)) for i in range(2)]
    [t.start() for t in ts]; [t.join() for t in ts]
    return sum(out)
if __name__ == '__main__':
    work = [(i * 6000, (i + 1) * 6000) for i in range(16)]
    total, serial = fastest_of_3(lambda: sum(map(count_primes, work)))
    print(f"python serial:    {total} primes in {serial:.3f} s")
    total, dt = fastest_of_3(lambda: with_threads(work))
    print(f"python 2 threads: {total} primes in {dt:.3f} s, speedup {serial / dt:.2f}x")
    with mp.get_context("fork").Pool(2) as pool:
        total, dt = fastest_of_3(lambda: sum(pool.map(count_primes, work, chunksize=1)))
    print(f"python Pool(2):   {total} primes in {dt:.3f} s, speedup {serial / dt:.2f}x")
"#;

let python = std::env::var("RUST_MP_PYTHON").unwrap_or_else(|_| "python3".to_string());
match std::process::Command::new(&python).arg("-c").arg(PYTHON_TWIN).output() {
    Ok(out) if out.status.success() => println!("{}", String::from_utf8_lossy(&out.stdout).trim_end()),
    Ok(out) => println!("{python} failed: {}", String::from_utf8_lossy(&out.stderr)),
    Err(e) => println!("no Python here ({python}: {e}); skipped"),
};
''', IGNORE),
]

# --------------------------------------------------------------------------------------------
# 02: fault isolation
# --------------------------------------------------------------------------------------------

FAULTS = [
    md(r"""
# 2. Reliability: a crash in a child does not take the parent down

The claims (Q1, Q2): *"running each process in a separate memory space ... isolating errors or crashes
to individual processes"*, and *"in multithreading, a crash or error in one thread can cause the entire
program to crash."*

We make child processes fail in three ways and watch this notebook's own process (the parent) carry on
and read how each child ended. Then we do the same in threads, then in a pool.

**Exit codes**, as in Python's `Process.exitcode`: `0` is success, a positive number is the code the
child exited with, and `-N` means the child was killed by signal `N` (6 is `SIGABRT`, 11 is `SIGSEGV`,
9 is `SIGKILL`).
"""),
    md(r"""
### Three children that fail

1. one **panics** (Rust's equivalent of an uncaught exception): the child's report appears below, on
   its standard error, under the line `Process Process-N:` as in Python, then where it panicked and
   the message;
2. one **aborts** (`std::process::abort()`, as C's `abort()`: no clean-up, ends on signal 6);
3. one **writes to an invalid address**: the operating system stops it with a segmentation fault
   (signal 11). In Python, this is what a bug in a C extension does.

The third needs `unsafe`: safe Rust never writes through an invalid pointer. Writing through a null
pointer is a segmentation fault: address 0 is never mapped.

Two things the crate does in every child, so that the children end as they would in a fresh program:
evcxr, the program that runs this notebook's code, catches segmentation faults to print a backtrace
and then aborts (which would turn -11 into -6), and asks Rust for a full backtrace with every panic.
A child gives the crash signals back their default action, and reports its panic in three lines,
without the backtrace. (The place, `src/lib.rs:line:column`, is in the file evcxr writes from this
notebook's cells: its line numbers are not the cell's.)

`join` waits for a child and returns its exit code. Watch the parent print its line after each child.
"""),
    code(r"""
fn crash_by_segfault() {
    // Address 0 is never mapped: writing there is a segmentation fault.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
}

let mut panics = Process::new(|| panic!("something went wrong in the child"));
let mut aborts = Process::new(|| std::process::abort());
let mut segfaults = Process::new(crash_by_segfault);

for (what, child) in [("panics", &mut panics), ("aborts", &mut aborts), ("segfaults", &mut segfaults)] {
    child.start()?;
    let code = child.join()?;
    println!("the child that {what} ended with exit code {code}");
}
println!("the parent is still running");
"""),
    md(r"""
### The same panic in a thread

A panic in a thread ends that thread only: `join` returns it as an `Err`, like an exception in a
Python thread that never reaches the main thread. So for *errors*, threads are isolated too.

These threads run in the notebook's own process, where evcxr's full backtrace would bury the message
under some twenty lines of the kernel's own code. So first a *panic hook* for this process (one per
process; the crate's children set their own) that prints only which thread panicked and why:
"""),
    code(r"""
std::panic::set_hook(Box::new(|info| {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let thread = std::thread::current();
    eprintln!("thread '{}' panicked: {message}", thread.name().unwrap_or("<unnamed>"));
}));
"""),
    code(r"""
let handle = std::thread::spawn(|| -> u32 { panic!("something went wrong in the thread") });
match handle.join() {
    Ok(value) => println!("the thread returned {value}"),
    Err(payload) => println!(
        "the thread panicked; join returned Err({:?})",
        payload.downcast_ref::<&str>().copied().unwrap_or("?")
    ),
}
println!("the process is still running");
"""),
    md(r"""
But threads share their memory, and a panic can leave shared data half-updated. Rust marks a lock
held by a panicking thread as **poisoned**, so that the other threads know. Here a thread panics in
the middle of moving 10 from one account to another:
"""),
    code(r"""
use std::sync::{Arc, Mutex};

let accounts = Arc::new(Mutex::new([100, 0]));
let in_thread = Arc::clone(&accounts);
let _ = std::thread::spawn(move || {
    let mut balances = in_thread.lock().unwrap();
    balances[0] -= 10;
    panic!("failed before crediting the second account");
})
.join();

match accounts.lock() {
    Ok(balances) => println!("balances: {:?}", *balances),
    Err(poisoned) => println!("the lock is poisoned; the data inside: {:?} (10 went missing)", *poisoned.into_inner()),
};
"""),
    md(r"""
### A crash in a thread ends every thread of its process

An abort or a segmentation fault is not an error that `join` can catch: the operating system ends the
**whole process**, with all its threads. We can not do that to the notebook's own process (we would
lose the kernel), so we do it inside a child process: its main thread starts a thread that crashes,
then waits for it. Watch for the child's first line, and the absence of its second one.
"""),
    code(r"""
let mut child = Process::new(|| {
    println!("child: starting a thread that will crash");
    let crashing = std::thread::spawn(crash_by_segfault);
    let _ = crashing.join();
    println!("child: the thread is finished, carrying on");
});
child.start()?;
let code = child.join()?;
println!("the whole child ended with exit code {code}: its main thread never printed its second line");
"""),
    md(r"""
### A task that panics in a pool

`risky` panics on the input 3. Python's `pool.map` would raise the exception in the parent; here `map`
returns an `Err` that says which task failed, in which worker, and why. The pool stays usable: the
next `map` works. Watch for the error, then for the results of the second call.
"""),
    code(r"""
fn risky(n: u64) -> u64 {
    if n == 3 {
        panic!("3 is not allowed");
    }
    n * 10
}
"""),
    code(r"""
let pool = Pool::new(2)?;
match pool.map(risky, vec![1, 2, 3, 4, 5]) {
    Ok(results) => println!("results: {results:?}"),
    Err(error) => println!("map returned an error: {error}"),
}
println!("the pool still works: {:?}", pool.map(risky, vec![1, 2, 4, 5])?);
""", IGNORE),
    md(r"""
### A worker killed in the middle of a `map`

Now a worker process dies while it runs a task, as when the out-of-memory killer picks it: on input 4,
`fragile` has the system `kill -9` its own process. **Python's `Pool.map` never returns in this case**
(the result never comes back and the pool waits forever: a known issue, bpo-22393). This crate notices
that the worker died, returns an error saying so, and starts a new worker in its place.
"""),
    code(r"""
fn fragile(n: u64) -> u64 {
    if n == 4 {
        let me = std::process::id().to_string();
        let _ = std::process::Command::new("kill").args(["-9", &me]).status();
        std::thread::sleep(std::time::Duration::from_secs(5)); // the signal arrives before this ends
    }
    n * 10
}
"""),
    code(r"""
match pool.map(fragile, vec![1, 2, 3, 4, 5, 6]) {
    Ok(results) => println!("results: {results:?}"),
    Err(error) => println!("map returned an error: {error}"),
}
println!("the pool still works: {:?}", pool.map(fragile, vec![1, 2, 3])?);
pool.close();
pool.join()?;
""", IGNORE),
    md(r"""
The same in CPython, if the kernel knows a Python 3 (`RUST_MP_PYTHON`). So that the cell ends, it asks
for the result with a timeout of 2 seconds instead of calling `map`, which would wait forever.
"""),
    code(r'''
const PYTHON_TWIN: &str = r#"
import multiprocessing as mp, os, signal, time
def fragile(n):
    if n == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return n * 10
if __name__ == '__main__':
    with mp.get_context("fork").Pool(2) as pool:
        result = pool.map_async(fragile, [1, 2, 3, 4, 5, 6], chunksize=1)
        try:
            print("python:", result.get(timeout=2))
        except mp.TimeoutError:
            print("python: no result and no error after 2 s: Pool.map would wait forever")
"#;

let python = std::env::var("RUST_MP_PYTHON").unwrap_or_else(|_| "python3".to_string());
match std::process::Command::new(&python).arg("-c").arg(PYTHON_TWIN).output() {
    Ok(out) if out.status.success() => println!("{}", String::from_utf8_lossy(&out.stdout).trim_end()),
    Ok(out) => println!("{python} failed: {}", String::from_utf8_lossy(&out.stderr)),
    Err(e) => println!("no Python here ({python}: {e}); skipped"),
};
''', IGNORE),
    md(r"""
### What this shows

| what fails | in a child process | in a thread |
|---|---|---|
| panic (Python: exception) | the child exits with code 1; the parent carries on | `join` returns `Err`; the process carries on, shared data may be left half-updated |
| abort | the child ends on signal 6; the parent carries on | the whole process ends |
| segmentation fault | the child ends on signal 11; the parent carries on | the whole process ends |

Processes protect against *crashes*; for ordinary errors, threads and processes both keep the failure
where it happened.
"""),
]

# --------------------------------------------------------------------------------------------
# 03: memory spaces
# --------------------------------------------------------------------------------------------

MEMORY = [
    md(r"""
# 3. Memory spaces: what a child changes stays in the child

The claim (Q2): *"Multiprocessing creates separate memory spaces for each process, whereas
multithreading shares the same memory space across all threads."*

We change the same value from a child process and from a thread and look at it in the parent. Then we
measure how much memory a child really uses after `fork`: not a full copy at once, but page by page,
when it writes (*copy-on-write*).
"""),
    md(r"""
### A value changed by a child, and by a thread

`numbers` is a list behind an `Arc<Mutex<...>>`, the standard way to share a value between threads in
Rust. We give a clone of that `Arc` to a child process and to a thread; each appends a number. The
child also prints the **address** of the list: it is the same address as in the parent, yet it is not
the same memory. Each process has its own address space, and after `fork` the child's addresses lead
to its own copy.
"""),
    code(r"""
use std::sync::{Arc, Mutex};

let numbers = Arc::new(Mutex::new(vec![1, 2, 3]));
println!("parent: numbers = {:?} at address {:p}", numbers.lock().unwrap(), Arc::as_ptr(&numbers));
""", IGNORE),
    md(r"""
The child appends 4 to its copy. Watch what the parent sees afterwards.
"""),
    code(r"""
let in_child = Arc::clone(&numbers);
let mut child = Process::new(move || {
    in_child.lock().unwrap().push(4);
    println!("child:  numbers = {:?} at address {:p}", in_child.lock().unwrap(), Arc::as_ptr(&in_child));
});
child.start()?;
child.join()?;
println!("parent: numbers = {:?} after the child", numbers.lock().unwrap());
""", IGNORE),
    md(r"""
Now a thread appends 4. Threads share the process's memory: the parent sees the change.
"""),
    code(r"""
let in_thread = Arc::clone(&numbers);
std::thread::spawn(move || in_thread.lock().unwrap().push(4)).join().unwrap();
println!("parent: numbers = {:?} after the thread", numbers.lock().unwrap());
"""),
    md(r"""
To share results between processes, they have to be *sent*: a pool returns them through a pipe
(`01_performance.ipynb`), Python also offers queues, pipes and shared-memory segments.

### Copy-on-write, measured

After `fork`, the child's memory is not copied at once. Parent and child share every page (4 KiB) until
one of them writes to it; only then does the kernel copy that page. Linux reports this per memory
region in `/proc/<pid>/smaps`:

- **Rss**: memory of the region that is in RAM, shared or not;
- **Pss**: the same, with each shared page divided by the number of processes sharing it (the
  process's fair share);
- **Private_Dirty**: pages written by this process alone (the copies it caused).

`region` finds the region that holds a given address in a process's `smaps` and returns these three
figures, in MiB.
"""),
    code(r"""
/// Rss, Pss and Private_Dirty (MiB) of the memory region of process `pid` that contains `address`.
fn region(pid: u32, address: usize) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut inside = false;
    let mut figures = Vec::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                inside = start <= address && address < end;
                continue;
            }
        }
        if inside {
            for key in ["Rss:", "Pss:", "Private_Dirty:"] {
                if first == key {
                    let kib: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                    figures.push(format!("{} {:>5.1} MiB", key.trim_end_matches(':'), kib / 1024.0));
                }
            }
        }
    }
    figures.join(", ")
}
"""),
    md(r"""
A buffer of 64 MiB, filled with 7s so that all its pages are really in RAM. Watch: Rss, Pss and
Private_Dirty all about 64 MiB; the parent owns every page alone.
"""),
    code(r"""
const SIZE: usize = 64 << 20;
let buffer = Arc::new(Mutex::new(vec![7u8; SIZE]));
let address = buffer.lock().unwrap().as_ptr() as usize;
println!("parent, alone:               {}", region(std::process::id(), address));
""", IGNORE),
    md(r"""
Now a child. It prints the same figures for itself: right after `fork`, then after **reading** the whole
buffer, then after **writing** one byte in each page of the first half. Watch:

- right after `fork`: Rss 64 MiB but Pss 32 MiB: every page is shared by two processes; nothing is
  private;
- after reading: nothing changes. Reading shares. (In CPython, merely *using* objects writes to their
  reference counts, so reading Python objects does copy pages: Rust values have no such counts.)
- after writing half: Private_Dirty 32 MiB, the pages the child copied; Pss 48 MiB (32 private + half
  of the 32 still shared).
"""),
    code(r"""
let in_child = Arc::clone(&buffer);
let mut child = Process::new(move || {
    let me = std::process::id();
    println!("child, right after fork:     {}", region(me, address));

    let mut data = in_child.lock().unwrap();
    let sum: u64 = data.iter().map(|&b| b as u64).sum();
    println!("child, after reading all:    {}   (sum {sum})", region(me, address));

    for i in (0..SIZE / 2).step_by(4096) {
        data[i] = 1;
    }
    println!("child, after writing half:   {}", region(me, address));
});
child.start()?;
child.join()?;
println!("parent, after the child:     {}", region(std::process::id(), address));
println!("parent's first byte: {} (the child wrote 1 there)", buffer.lock().unwrap()[0]);
""", IGNORE),
    md(r"""
### What this shows

- A child process works on **its own copy** of the parent's memory: same addresses, different
  memory. A thread works on the **same** memory as its parent.
- The copy is **lazy**: a forked child costs memory only for the pages it writes. This is why `fork`
  is fast, and why many workers that only read a big data set cost little memory (in Rust; in CPython,
  reference counting writes to the objects, so the pages get copied anyway).
"""),
]

# --------------------------------------------------------------------------------------------
# 04: cost
# --------------------------------------------------------------------------------------------

COST = [
    md(r"""
# 4. Cost: processes are heavier than threads

The claim (Q2): *"Multiprocessing may use more resources, as each process has its own memory space
and overhead, while multithreading uses fewer resources."* And: *"multiprocessing is better suited
for CPU-bound tasks ... multithreading is better suited for I/O-bound tasks."*

We measure both: what it costs to start 100 threads and 100 processes, then how threads and processes
do on work that computes and on work that waits.
"""),
    md(r"""
### Starting 100 threads, and 100 processes

Each thread or process does nothing: we time starting all 100 and waiting for them to end. Watch the
cost per start: tens of microseconds for a thread, ten times that or more for a process (`fork`
copies the parent's page tables, and the crate sets up pipes to relay the child's output).
"""),
    code(r"""
use std::time::{Duration, Instant};

let start = Instant::now();
let threads: Vec<_> = (0..100).map(|_| std::thread::spawn(|| {})).collect();
for thread in threads {
    thread.join().unwrap();
}
let thread_time = start.elapsed().as_secs_f64();
println!("100 threads:   {:.1} ms, {:.1} µs each", thread_time * 1e3, thread_time * 1e4);
"""),
    code(r"""
let start = Instant::now();
let mut processes: Vec<Process> = (0..100).map(|_| Process::new(|| {})).collect();
for process in processes.iter_mut() {
    process.start()?;
}
for process in processes.iter_mut() {
    process.join()?;
};
let process_time = start.elapsed().as_secs_f64();
println!("100 processes: {:.1} ms, {:.1} µs each", process_time * 1e3, process_time * 1e4);
"""),
    code(r"""
println!("a process costs about {:.0} times as much as a thread to start", process_time / thread_time);
""", IGNORE),
    md(r"""
For scale, the same in CPython, if the kernel knows a Python 3 (`RUST_MP_PYTHON`): 100 threads, 100
processes with `multiprocessing` and the *fork* start method (as here), and 10 with *spawn*, the
default on macOS and Windows, which starts a fresh interpreter for every child (the seed's Q6 run took
0.24 s for 4 of them).
"""),
    code(r'''
const PYTHON_TWIN: &str = r#"
import multiprocessing as mp, threading, time
def nothing(): pass
if __name__ == '__main__':
    t = time.perf_counter()
    ts = [threading.Thread(target=nothing) for _ in range(100)]
    [x.start() for x in ts]; [x.join() for x in ts]
    dt = time.perf_counter() - t
    print(f"python, 100 threads:           {dt * 1e3:.1f} ms, {dt * 1e4:.1f} µs each")
    for method, n in [("fork", 100), ("spawn", 10)]:
        ctx = mp.get_context(method)
        t = time.perf_counter()
        ps = [ctx.Process(target=nothing) for _ in range(n)]
        [p.start() for p in ps]; [p.join() for p in ps]
        dt = time.perf_counter() - t
        print(f"python, {n} processes ({method}): {dt * 1e3:.1f} ms, {dt / n * 1e6:.1f} µs each")
"#;

let python = std::env::var("RUST_MP_PYTHON").unwrap_or_else(|_| "python3".to_string());
// A file rather than `python -c`: spawned children import the script again to find `nothing`.
let script = std::env::temp_dir().join("multiprocessing_cost_twin.py");
std::fs::write(&script, PYTHON_TWIN).unwrap();
match std::process::Command::new(&python).arg(&script).output() {
    Ok(out) if out.status.success() => println!("{}", String::from_utf8_lossy(&out.stdout).trim_end()),
    Ok(out) => println!("{python} failed: {}", String::from_utf8_lossy(&out.stderr)),
    Err(e) => println!("no Python here ({python}: {e}); skipped"),
};
''', IGNORE),
    md(r"""
A pool pays this price once, when it starts its workers:
"""),
    code(r"""
let start = Instant::now();
let pool = Pool::new(2)?;
let started = start.elapsed().as_secs_f64();
pool.close();
pool.join()?;
println!("a pool of 2: started in {:.1} ms, closed and joined in {:.1} ms", started * 1e3, (start.elapsed().as_secs_f64() - started) * 1e3);
"""),
    md(r"""
### Work that computes, and work that waits

Eight tasks of each kind, each about 100 ms when run alone:

- `compute(steps)`: a fixed amount of arithmetic (CPU-bound); two tasks running at once on one core
  take twice as long each;
- `wait(ms)`: sleeps, as a task waiting for a disk, a network or a database would (I/O-bound).

Both are plain `fn`s, so that a pool can run them too. `compare` runs 8 tasks in four ways: one after
the other, in 8 threads, in 8 processes, and in a pool of 2 workers.
"""),
    code(r"""
fn compute(steps: u64) -> u64 {
    let mut x: u64 = 1;
    for _ in 0..steps {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
    }
    x % 2
}

fn wait(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    0
}

/// Runs `task(arg)` 8 times in each of four ways and prints the wall time of each.
fn compare(name: &str, task: fn(u64) -> u64, arg: u64) -> Result<()> {
    let tasks = vec![arg; 8];

    let start = Instant::now();
    for &arg in &tasks {
        task(arg);
    }
    println!("{name:>8}, serially:          {:.2} s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let threads: Vec<_> = tasks.iter().map(|&arg| std::thread::spawn(move || task(arg))).collect();
    for thread in threads {
        thread.join().unwrap();
    }
    println!("{name:>8}, 8 threads:         {:.2} s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let mut processes: Vec<Process> = tasks.iter().map(|&arg| Process::new(move || { task(arg); })).collect();
    for process in processes.iter_mut() {
        process.start()?;
    }
    for process in processes.iter_mut() {
        process.join()?;
    }
    println!("{name:>8}, 8 processes:       {:.2} s", start.elapsed().as_secs_f64());

    let pool = Pool::new(2)?;
    let start = Instant::now();
    pool.map(task, tasks.clone())?;
    println!("{name:>8}, pool of 2 workers: {:.2} s", start.elapsed().as_secs_f64());
    pool.close();
    pool.join()?;
    Ok(())
}
"""),
    md(r"""
How many steps of `compute` take 100 ms on this machine? Measure 10 million, and scale.
"""),
    code(r"""
let start = Instant::now();
compute(10_000_000);
let steps = (10_000_000.0 * 0.100 / start.elapsed().as_secs_f64()) as u64;
println!("{steps} steps take about 100 ms");
""", IGNORE),
    md(r"""
CPU-bound: 8 tasks of 100 ms of computing is 0.8 s of work for 2 cores. Watch threads, processes and
the pool all take about 0.4 s: 2 cores, 2 tasks at a time. More threads or processes can not do better.
"""),
    code(r"""
compare("compute", compute, steps)?;
"""),
    md(r"""
I/O-bound: 8 tasks of 100 ms of waiting. Waiting uses no core, so 8 threads or 8 processes all wait at
the same time and finish in about 0.1 s; a pool of 2 workers waits two at a time (0.4 s): for waiting
work, the limit is not the number of cores but the number of workers.
"""),
    code(r"""
compare("wait", wait, 100)?;
"""),
    md(r"""
### What this shows

- Starting a process costs far more than starting a thread (figures above), but both are
  milliseconds or less: for tasks of 100 ms, the difference does not matter; for many tiny tasks it
  does (a pool, and `chunksize`, are the answer: `05_pool_at_work.ipynb`).
- **CPU-bound**: in Rust, threads and processes do the same, limited by the cores. (In CPython, the
  threads line would stay at the serial time: the GIL.)
- **I/O-bound**: threads and processes both overlap the waiting; threads do it more cheaply. This
  part of the original is right for Python and for Rust.
"""),
]

# --------------------------------------------------------------------------------------------
# 05: the pool at work
# --------------------------------------------------------------------------------------------

POOL = [
    md(r"""
# 5. The pool at work: which worker ran which task, and when

The claim (Q4): *"The pool object manages the creation and management of the worker processes, as
well as the communication and synchronization between the main process and the worker processes."*

We watch it do that: every task reports which worker ran it, and when it started and ended. Drawn as
a timeline, one row per worker. Then we see what `chunksize` changes.
"""),
    code(PLOTTERS_DEP),
    code(SVG_TYPE),
    md(r"""
A task that reports on itself. Its input is the time the `map` started (seconds since 1970, a clock
that all processes share), the task's number and how long it should take. It sleeps for that long
(waiting rather than computing, so that other programs on this 2-core machine do not blur the
picture) and returns who ran it and when, in milliseconds since the start.
"""),
    code(r"""
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// (task, worker name, started ms, ended ms)
fn timed_task(input: (f64, usize, u64)) -> (usize, String, f64, f64) {
    let (t0, task, ms) = input;
    let started = now();
    std::thread::sleep(Duration::from_millis(ms));
    (task, current_process().name().to_string(), (started - t0) * 1e3, (now() - t0) * 1e3)
}

/// 12 tasks, each longer than the one before: 10, 20, 30, ..., 120 ms.
fn tasks(t0: f64) -> Vec<(f64, usize, u64)> {
    (0..12).map(|i| (t0, i, 10 * (i as u64 + 1))).collect()
}
"""),
    md(r"""
The timeline chart: one row per worker, one box per task, with the task's number in it. Both charts
below use the same time scale (at least 500 ms), so they can be compared.
"""),
    code(r"""
/// One row per worker, one box per task. The time axis shows at least `at_least_ms`, so that two
/// charts drawn with the same value can be compared by eye.
fn timeline(title: &str, runs: &[(usize, String, f64, f64)], at_least_ms: f64) -> Svg {
    let mut workers: Vec<String> = runs.iter().map(|r| r.1.clone()).collect();
    workers.sort();
    workers.dedup();
    let end = (runs.iter().map(|r| r.3).fold(0.0, f64::max) * 1.05).max(at_least_ms);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 90 + 60 * workers.len() as u32)).into_drawing_area();
        root.fill(&WHITE).unwrap();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(140)
            .build_cartesian_2d(0f64..end, 0f64..workers.len() as f64)
            .unwrap();
        let names = workers.clone();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(workers.len() * 2 + 1)
            .y_label_formatter(&move |y| {
                let row = y.floor() as usize;
                if (y - y.floor() - 0.5).abs() < 0.01 && row < names.len() { names[row].clone() } else { String::new() }
            })
            .x_desc("milliseconds since the map started")
            .draw()
            .unwrap();
        for (task, worker, started, ended) in runs {
            let row = workers.iter().position(|w| w == worker).unwrap() as f64;
            let color = Palette99::pick(*task);
            chart
                .draw_series(std::iter::once(Rectangle::new([(*started, row + 0.15), (*ended, row + 0.85)], color.filled())))
                .unwrap();
            chart
                .draw_series(std::iter::once(Text::new(task.to_string(), ((started + ended) / 2.0 - 3.0, row + 0.6), ("sans-serif", 14))))
                .unwrap();
        }
        root.present().unwrap();
    }
    Svg(svg)
}
"""),
    md(r"""
### Three workers, one task at a time

`map` with a chunk size of 1: each worker takes one task, and as soon as it is done, the next one that
is waiting. Watch the rows: a worker that got a short task comes back sooner for another, so the
workers stay busy and finish at about the same time. The numbers in the boxes show that the tasks
are started in order, 0, 1, 2, ..., by whichever worker is free.
"""),
    code(r"""
let pool = Pool::new(3)?;
let t0 = now();
let runs_1 = pool.chunked(1).map(timed_task, tasks(t0))?;
for (task, worker, started, ended) in &runs_1 {
    println!("task {task:>2} ran in {worker} from {started:>5.0} ms to {ended:>5.0} ms");
};
""", IGNORE),
    code(r"""
timeline("chunksize 1: 12 tasks on 3 workers", &runs_1, 500.0)
""", IGNORE),
    md(r"""
### Bigger chunks

With a chunk size of 4, the pool cuts the 12 tasks into 3 chunks of 4 consecutive tasks and sends each
chunk to a worker as one message. Fewer messages, but the pool can no longer balance the load: the
worker that got the last chunk (the longest tasks) works alone at the end while the others sit idle,
and the whole `map` takes longer. Compare where the last box ends in the two charts.
"""),
    code(r"""
let t0 = now();
let runs_4 = pool.chunked(4).map(timed_task, tasks(t0))?;
timeline("chunksize 4: the same 12 tasks, in chunks of 4", &runs_4, 500.0)
""", IGNORE),
    md(r"""
### What chunks are for: many tiny tasks

When each task is tiny, sending it costs more than running it, and chunks pay off. Here: 100 000 calls
of `cubes` on 2 workers, with chunk sizes from 1 to 10 000. Watch the throughput grow with the chunk
size. (Python's `map` picks a chunk size by itself: the number of inputs divided by 4 times the number
of workers; for this list, 12 500.)
"""),
    code(r"""
fn cubes(n: u64) -> u64 {
    n.pow(3)
}
"""),
    code(r"""
use std::time::Instant;

let pool2 = Pool::new(2)?;
let inputs: Vec<u64> = (0..100_000).collect();
for chunksize in [1, 10, 100, 1_000, 10_000] {
    let start = Instant::now();
    let out = pool2.chunked(chunksize).map(cubes, inputs.clone())?;
    let seconds = start.elapsed().as_secs_f64();
    println!("chunksize {chunksize:>6}: {:.3} s, {:>9.0} tasks/s (last result {})", seconds, out.len() as f64 / seconds, out[out.len() - 1]);
};
pool2.close();
pool2.join()?;
pool.close();
pool.join()?;
""", IGNORE),
    md(r"""
### What this shows

- The pool keeps a fixed set of workers and hands each task (or chunk) to whichever worker is free:
  that is the "management" and "synchronization" of the original, in practice.
- Small chunks balance the load best; big chunks save messages. For tasks that take milliseconds,
  use small chunks; for many tiny tasks, big ones.
"""),
]

NOTEBOOKS = {
    "00_seed_questions.ipynb": SEED,
    "01_performance.ipynb": PERFORMANCE,
    "02_fault_isolation.ipynb": FAULTS,
    "03_memory_spaces.ipynb": MEMORY,
    "04_cost.ipynb": COST,
    "05_pool_at_work.ipynb": POOL,
}


def fix_metadata():
    """After a run: evcxr reports its language as "Rust"; keep the lower-case name Jupyter tools expect."""
    for path in sorted(HERE.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if nb.metadata.get("language_info", {}).get("name") != "rust":
            nb.metadata.setdefault("language_info", {})["name"] = "rust"
            nbformat.write(nb, path)
            print("fixed metadata of", path.name)


def main():
    if sys.argv[1:] == ["--metadata"]:
        fix_metadata()
        return
    wanted = sys.argv[1:]
    for name, cells in NOTEBOOKS.items():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        nb = notebook(cells)
        kept = keep_outputs(nb, HERE / name)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print("wrote", name, "(outputs kept: only markdown changed)" if kept else "(no outputs: execute it)")


def keep_outputs(nb, path):
    """Carries the saved outputs over when no code cell changed (same sources and tags, same order)."""
    if not path.exists():
        return False
    old = nbformat.read(path, as_version=4)
    old_code = [c for c in old.cells if c.cell_type == "code"]
    new_code = [c for c in nb.cells if c.cell_type == "code"]
    same = len(old_code) == len(new_code) and all(
        a.source == b.source and a.metadata.get("tags") == b.metadata.get("tags") for a, b in zip(old_code, new_code)
    )
    if not same:
        return False
    for a, b in zip(old_code, new_code):
        b.outputs = a.outputs
        b.execution_count = a.execution_count
    nb.metadata = old.metadata
    return True


if __name__ == "__main__":
    main()
