//! `Pool::map`'s contract over MPI ranks: the same `fn(T) -> R` and serde values, the inputs
//! scattered over the ranks `mpirun` started, the results gathered in input order on rank 0.
//!
//! A `multiprocessing::Pool` runs on one machine: its workers are
//! forks of the calling process. Past one machine, clusters run MPI: `mpirun -n 64 --hostfile hosts
//! ./program` starts 64 copies of one program on the machines the host file lists (or Slurm's
//! `srun` does), and the copies, the *ranks*, talk through MPI. This crate puts the pool's `map` on
//! that engine (Open MPI through the [`mpi`] crate, rsmpi), so the same function moves from
//! `Pool::map` to many machines:
//!
//! | `multiprocessing` (one machine) | `multiprocessing-mpi` (one or many) | mpi4py |
//! |---|---|---|
//! | `Pool::with(4, \|pool\| pool.map(f, xs))?` | `World::init()?.map(f, xs)?` under `mpirun -n 4` | `comm.scatter` + `comm.gather` |
//! | the parent gets `Vec<R>` | rank 0 gets `Some(Vec<R>)`, the others `None` | `gather` returns `None` off the root |
//! | chunks handed to idle workers as they finish | one contiguous block per rank ([`block`]) | the chunks you scatter |
//! | `Err(TaskPanicked { index, worker, message })` | `Err(Error::TaskPanicked { index, rank, message })` on every rank | the exception, on its rank only |
//! | a worker killed: `Err(WorkerDied { .. })`, the pool goes on | a rank killed: `mpirun` ends every rank, exits non-zero | the same (mpirun) |
//!
//! ```no_run
//! use multiprocessing_mpi::World;
//!
//! fn count_primes(below: u64) -> u64 {
//!     (2..below).filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)).count() as u64
//! }
//!
//! fn main() -> Result<(), multiprocessing_mpi::Error> {
//!     let world = World::init()?;
//!     let inputs = vec![10_000, 20_000, 30_000, 40_000];
//!     if let Some(counts) = world.map(count_primes, inputs)? {
//!         println!("{counts:?}"); // rank 0 only: [1229, 2262, 3245, 4203]
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The repository's example, `mpi/examples/mpi_map`, is that program with per-rank output; run it
//! with `mpirun -n 4 --oversubscribe target/debug/examples/mpi_map` (as root, Open MPI also wants
//! `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`).
//!
//! The contract, and where it differs from the pool's:
//! - Every rank runs the whole program and every rank calls `map` (it is a collective call); only
//!   rank 0's inputs count. Write `main` as if it ran once, and guard what only rank 0 should do
//!   with `if let Some(out)` (or [`World::is_root`]).
//! - Values travel as postcard bytes, as in the pool: `T` and `R` are `Serialize + DeserializeOwned`.
//! - The split is static: rank `r` gets inputs `block(n, r, size)`; a slow input delays its whole
//!   block (the pool hands chunks to whichever worker is idle).
//! - A panic in `f` stops that rank's block and comes back as [`Error::TaskPanicked`], the same
//!   error on every rank (rank 0 sends it round), so `world.map(..)?` ends every rank in step, and
//!   a program that handles it goes on in step. A panic outside `map` aborts every rank
//!   (`MPI_Abort`, when the `World` is dropped while unwinding) rather than leave them waiting for
//!   a rank that left. A rank that dies (signal, abort) cannot answer: Open MPI's `mpirun` sees it
//!   exit and kills the other ranks, printing which rank died and how, and exits non-zero. Nothing
//!   waits forever.
//! - The one way to hang is MPI's own: ranks that make different collective calls (one calls
//!   `map` or `barrier`, another returns from `main` normally); every rank must make the same calls
//!   in the same order.

mod error;
mod split;
mod world;

pub use error::{Error, Result};
pub use split::block;
pub use world::World;

/// The [`mpi`] crate (rsmpi) itself, for programs that go beyond `map` (point-to-point messages,
/// reductions) on the same initialized MPI.
pub use mpi;
