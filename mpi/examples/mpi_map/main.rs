//! `Pool::map` over MPI ranks: counts the primes below each of 16 limits, scattered over the ranks
//! `mpirun` started, and prints the results gathered in input order on rank 0.
//!
//! ```sh
//! cargo build -p multiprocessing-mpi --example mpi_map
//! mpirun -n 4 --oversubscribe target/debug/examples/mpi_map     # 4 ranks on this machine
//! mpirun -n 8 --hostfile hosts target/debug/examples/mpi_map    # 8 ranks on the machines in `hosts`
//! ```
//! (As root Open MPI refuses to start unless OMPI_ALLOW_RUN_AS_ROOT=1 and
//! OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 are set, or `--allow-run-as-root` is given.)
//!
//! Each rank prints a line per input it ran (`rank 1 of 4: count_primes(50000) = 5133`); rank 0
//! then prints `gathered on rank 0: [...]`. Options, for the tests and the notebook:
//! - `--panic-at N`: the function panics on input N (the run ends with exit code 1 and the message);
//! - `--kill-at N`: the rank that gets input N SIGKILLs itself (mpirun ends every rank);
//! - `--startup`: only MPI_Init, a barrier and MPI_Finalize; rank 0 prints how long MPI_Init took;
//! - `--bench`: what a map costs here: rank 0 prints the time per map of one tiny input per rank,
//!   and per input of 1 000 000 tiny inputs.

mod work;

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use multiprocessing_mpi::World;
use nix::sys::signal::{raise, Signal};

/// (rank, size), for the lines `work` prints.
static PLACE: OnceLock<(usize, usize)> = OnceLock::new();
/// `--panic-at N` / `--kill-at N`.
static FAULT: OnceLock<Fault> = OnceLock::new();

#[derive(Clone, Copy)]
enum Fault {
    PanicAt(u64),
    KillAt(u64),
}

enum Mode {
    Map,
    Startup,
    Bench,
}

/// The function the ranks map: `work::count_primes`, with a line of output and the fault asked for.
fn count_primes_here(below: u64) -> u64 {
    let (rank, size) = PLACE.get().copied().unwrap_or((0, 1));
    match FAULT.get() {
        Some(Fault::PanicAt(n)) if *n == below => panic!("asked to panic on input {below}"),
        Some(Fault::KillAt(n)) if *n == below => {
            println!("rank {rank} of {size}: killing myself (SIGKILL) on input {below}");
            let _ = raise(Signal::SIGKILL);
        }
        _ => {}
    }
    let n = work::count_primes(below);
    println!("rank {rank} of {size}: count_primes({below}) = {n}");
    n
}

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

fn parse_args() -> Result<Mode, String> {
    let mut args = std::env::args().skip(1);
    let mut mode = Mode::Map;
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{flag} needs a number, e.g. {flag} 50000"))
        };
        match arg.as_str() {
            "--panic-at" => _ = FAULT.set(Fault::PanicAt(number("--panic-at")?)),
            "--kill-at" => _ = FAULT.set(Fault::KillAt(number("--kill-at")?)),
            "--startup" => mode = Mode::Startup,
            "--bench" => mode = Mode::Bench,
            other => {
                return Err(format!(
                "unknown argument {other:?}; use --panic-at N, --kill-at N, --startup or --bench"
            ))
            }
        }
    }
    Ok(mode)
}

/// Runs the mode. A failed map fails on every rank; rank 0 says why, before MPI_Finalize (once a
/// rank has exited non-zero, mpirun may kill the others before they print).
fn run(mode: Mode) -> ExitCode {
    let t0 = Instant::now();
    let world = match World::init() {
        Ok(world) => world,
        Err(e) => {
            eprintln!("mpi_map: {e}");
            return ExitCode::FAILURE;
        }
    };
    let init = t0.elapsed();
    let _ = PLACE.set((world.rank(), world.size()));
    let done = match mode {
        Mode::Startup => {
            world.barrier();
            if world.is_root() {
                println!("MPI_Init on rank 0: {:.1} ms", init.as_secs_f64() * 1e3);
            }
            Ok(())
        }
        Mode::Map => world.map(count_primes_here, work::inputs()).map(|out| {
            if let Some(out) = out {
                println!("gathered on rank 0: {out:?}");
            }
        }),
        Mode::Bench => bench(&world),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if world.is_root() {
                eprintln!("mpi_map: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What a map costs: one tiny input per rank, many times (the fixed cost of a map: five collective
/// calls), and a million tiny inputs in one map (the cost per input: postcard and the copies).
fn bench(world: &World) -> multiprocessing_mpi::Result<()> {
    let ranks = world.size() as u64;
    world.map(square, 0..ranks)?; // warm-up: MPI sets up its connections on first use
    world.barrier();
    let rounds = 200;
    let t = Instant::now();
    for _ in 0..rounds {
        world.map(square, 0..ranks)?;
    }
    let per_map = t.elapsed().as_secs_f64() / rounds as f64;

    let n = 1_000_000u64;
    world.barrier();
    let t = Instant::now();
    let out = world.map(square, 0..n)?;
    let big = t.elapsed().as_secs_f64();
    if let Some(out) = out {
        assert_eq!(out.len() as u64, n);
        println!(
            "a map of {ranks} tiny inputs (one per rank), mean of {rounds}: {:.1} µs",
            per_map * 1e6
        );
        println!(
            "a map of {n} tiny inputs: {:.1} ms, {:.1} ns per input",
            big * 1e3,
            big * 1e9 / n as f64
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let mode = match parse_args() {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("mpi_map: {e}");
            return ExitCode::from(2);
        }
    };
    // `run` owns the World: MPI is finalized before the exit code is returned.
    run(mode)
}
