//! [`World`]: this process's place among the MPI ranks, and `map`, the pool's contract over them.
//!
//! One `map` is five collective calls on `MPI_COMM_WORLD`, each made by every rank in the same order:
//! 1. scatter of a header per rank (the byte length of its inputs and the index of its first one,
//!    or "none: rank 0 failed before sending", so no rank waits for bytes that never come);
//! 2. scatterv of the inputs, encoded with postcard, one contiguous block per rank ([`block`]);
//! 3. allgather of each rank's reply length (every rank learns whether the gather fits MPI's counts);
//! 4. gatherv of the replies to rank 0, which decodes them in rank order: the results in input order;
//! 5. broadcast of rank 0's outcome, so that a failed map returns the same error on every rank.
//!
//! A panic in the function is caught on its rank and travels in the reply, so every rank still
//! makes every call. A rank that dies (killed, aborted) is not caught here: `mpirun` sees it and
//! ends the whole job with a non-zero exit (Open MPI does this by default), so nobody hangs. A
//! panic outside `map` drops the `World` while unwinding, which calls `MPI_Abort` (not
//! `MPI_Finalize`, which would wait for ranks that may be waiting for this one).

use std::panic::{catch_unwind, AssertUnwindSafe};

use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{panic_message, Error, Result};
use crate::split::block;

/// The rank that scatters the inputs and gathers the results.
const ROOT: i32 = 0;
/// Header length that tells a rank "no inputs are coming: rank 0 failed before sending them".
const ROOT_FAILED: u64 = u64::MAX;
/// The exit code of every rank when one panics outside `map` (Rust's own for a panic).
const PANIC_EXIT_CODE: i32 = 101;
/// The largest byte count one rank can send or receive in one call (MPI counts are C `int`s).
const MAX_COUNT: u64 = Count::MAX as u64;

/// This process's place among the ranks `mpirun` started: MPI, initialized once per process, and
/// finalized when the `World` is dropped.
///
/// Every rank runs the same program; rank 0 gets the results of a [`map`](World::map):
///
/// ```no_run
/// use multiprocessing_mpi::World;
///
/// fn cube(x: u64) -> u64 {
///     x * x * x
/// }
///
/// fn main() -> Result<(), multiprocessing_mpi::Error> {
///     let world = World::init()?;
///     // Every rank calls map; only rank 0's inputs count, and only rank 0 gets Some(results).
///     if let Some(out) = world.map(cube, vec![1, 2, 3, 4, 5])? {
///         assert_eq!(out, [1, 8, 27, 64, 125]);
///     }
///     Ok(())
/// }
/// ```
/// Run it with `mpirun -n 4 target/debug/examples/NAME` (add `--oversubscribe` for more ranks than
/// cores). The Python twin, with mpi4py:
/// ```python
/// comm = MPI.COMM_WORLD
/// chunks = [xs[r * n // size:(r + 1) * n // size] for r in range(size)] if comm.rank == 0 else None
/// mine = [cube(x) for x in comm.scatter(chunks, root=0)]
/// out = comm.gather(mine, root=0)   # a list of lists on rank 0, None elsewhere
/// ```
pub struct World {
    // Declared before `_universe`: dropped first, while MPI is still initialized.
    comm: SimpleCommunicator,
    // MPI_Finalize when dropped.
    _universe: mpi::environment::Universe,
}

/// What a rank sends back to rank 0.
#[derive(Serialize, Deserialize)]
enum Reply<R> {
    /// The results of its block, in input order.
    Done(Vec<R>),
    /// The function panicked on input `index`; the rank ran none of its later inputs.
    Panicked { index: u64, message: String },
    /// The rank could not decode its inputs, or encode its results.
    Failed(Failure),
}

#[derive(Serialize, Deserialize)]
enum Failure {
    Decode(String),
    Encode(String),
    TooLarge(u64),
}

impl World {
    /// Initializes MPI (`MPI_Init`) and joins the world of ranks `mpirun` started; a program run
    /// without `mpirun` is a world of one rank.
    ///
    /// Python twin: `from mpi4py import MPI; comm = MPI.COMM_WORLD` (mpi4py initializes on import).
    ///
    /// Errors: [`Error::AlreadyInitialized`] on a second call in the same process.
    pub fn init() -> Result<World> {
        let universe = mpi::initialize().ok_or(Error::AlreadyInitialized)?;
        Ok(World {
            comm: universe.world(),
            _universe: universe,
        })
    }

    /// This process's rank, `0..size()` (mpi4py: `comm.rank`).
    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    /// How many ranks there are (`mpirun -n`; mpi4py: `comm.size`).
    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// Whether this is rank 0, the one that gets a map's results.
    pub fn is_root(&self) -> bool {
        self.comm.rank() == ROOT
    }

    /// The name of the machine this rank runs on (`MPI_Get_processor_name`).
    pub fn processor_name(&self) -> String {
        mpi::environment::processor_name().unwrap_or_else(|_| "(not UTF-8)".into())
    }

    /// Waits until every rank has called `barrier` (mpi4py: `comm.Barrier()`).
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// `Pool::map` over the ranks: `f` applied to each of rank 0's `items`, on the rank whose
    /// block holds it ([`block`]: contiguous, sizes within one of each other), the results gathered
    /// in input order on rank 0.
    ///
    /// Every rank must call it (it is a collective call); `items` counts only on rank 0 and is not
    /// even iterated elsewhere. Rank 0 gets `Ok(Some(results))`, every other rank `Ok(None)`; a
    /// failed map returns the same error on every rank, so all ranks leave the call in step (with
    /// `?` on every rank, every rank ends; having handled it, every rank goes on).
    ///
    /// Errors: [`Error::TaskPanicked`] for the first input (lowest index) whose call panicked
    /// (that rank runs none of its later inputs, the other ranks finish theirs);
    /// [`Error::Encode`], [`Error::Decode`], [`Error::TooLarge`] when values cannot travel. A rank
    /// killed meanwhile ends the whole job: `mpirun` kills the others and exits non-zero, saying
    /// which rank died and how.
    ///
    /// `f` is a `fn` (or a closure that captures nothing), as in `Pool::map`: each rank runs it from
    /// its own copy of the program, so it cannot carry values from rank 0's memory:
    /// ```compile_fail,E0308
    /// # fn f(world: &multiprocessing_mpi::World) {
    /// let offset = 10;
    /// world.map(move |x: u64| x + offset, vec![1, 2, 3]);
    /// # }
    /// ```
    pub fn map<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Option<Vec<R>>>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let root = self.comm.process_at_rank(ROOT);
        let ranks = self.size();

        // 1 + 2: rank 0 encodes and scatters the blocks.
        let mut header = [0u64; 2];
        let mine = if self.is_root() {
            let items: Vec<T> = items.into_iter().collect();
            let sent = encode_blocks(&items, ranks);
            let headers: Vec<u64> = match &sent {
                Ok((_, counts, firsts)) => counts
                    .iter()
                    .zip(firsts)
                    .flat_map(|(&len, &first)| [len as u64, first as u64])
                    .collect(),
                Err(_) => vec![ROOT_FAILED; 2 * ranks],
            };
            root.scatter_into_root(&headers[..], &mut header[..]);
            let (bytes, counts, _) = match sent {
                Ok(sent) => sent,
                Err(e) => return Err(self.share_outcome(Some(e)).unwrap_err()),
            };
            let displs = offsets(&counts);
            let mut mine = vec![0u8; header[0] as usize];
            root.scatter_varcount_into_root(
                &Partition::new(&bytes[..], &counts[..], &displs[..]),
                &mut mine[..],
            );
            mine
        } else {
            root.scatter_into(&mut header[..]);
            if header[0] == ROOT_FAILED {
                return self.share_outcome(None).map(|()| None);
            }
            let mut mine = vec![0u8; header[0] as usize];
            root.scatter_varcount_into(&mut mine[..]);
            mine
        };

        // Run this rank's block.
        let reply = run_block(f, &mine, header[1]);
        drop(mine);

        // 3: every rank learns every reply's length.
        let mut lengths = vec![0u64; ranks];
        self.comm
            .all_gather_into(&(reply.len() as u64), &mut lengths[..]);
        let total: u64 = lengths.iter().sum();
        if total > MAX_COUNT {
            // Every rank knows: none enters the gather, whose displacements would not fit.
            return Err(Error::TooLarge {
                what: "the results of all ranks".into(),
                bytes: total,
            });
        }

        // 4: rank 0 gathers the replies and decodes them in rank order.
        if !self.is_root() {
            root.gather_varcount_into(&reply[..]);
            return self.share_outcome(None).map(|()| None);
        }
        let counts: Vec<Count> = lengths.iter().map(|&n| n as Count).collect();
        let displs = offsets(&counts);
        let mut gathered = vec![0u8; total as usize];
        root.gather_varcount_into_root(
            &reply[..],
            &mut PartitionMut::new(&mut gathered[..], &counts[..], &displs[..]),
        );
        match decode_replies(&gathered, &counts, &displs) {
            Ok(out) => self.share_outcome(None).map(|()| Some(out)),
            Err(e) => Err(self.share_outcome(Some(e)).unwrap_err()),
        }
    }

    /// 5: rank 0's outcome of a map, sent to every rank, so that every rank returns the same
    /// `Result` and code that writes `world.map(..)?` on every rank leaves in step. Rank 0 passes
    /// its error, if any, and gets it back; the other ranks pass `None` and get a copy of it.
    fn share_outcome(&self, error: Option<Error>) -> Result<()> {
        let root = self.comm.process_at_rank(ROOT);
        if self.is_root() {
            let mut bytes = match &error {
                // An Error holds strings and integers: postcard encodes it.
                Some(e) => postcard::to_stdvec(e).unwrap_or_default(),
                None => Vec::new(),
            };
            let mut len = bytes.len() as u64;
            root.broadcast_into(&mut len);
            if len > 0 {
                root.broadcast_into(&mut bytes[..]);
            }
            return error.map_or(Ok(()), Err);
        }
        let mut len = 0u64;
        root.broadcast_into(&mut len);
        if len == 0 {
            return Ok(());
        }
        let mut bytes = vec![0u8; len as usize];
        root.broadcast_into(&mut bytes[..]);
        Err(
            postcard::from_bytes(&bytes).unwrap_or_else(|e| Error::Decode {
                what: "rank 0's report of a failed map".into(),
                message: e.to_string(),
            }),
        )
    }
}

impl Drop for World {
    /// A rank that unwinds out of its `main` with the `World` (a panic outside `map`) must not call
    /// `MPI_Finalize`: Open MPI's waits for every rank, and the others may be waiting in a `map` for
    /// this one, so nobody would ever return. `MPI_Abort` ends every rank instead.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "rank {} of {} panicked: ending every rank (MPI_Abort), since the others may be waiting for it",
                self.rank(),
                self.size()
            );
            self.comm.abort(PANIC_EXIT_CODE);
        }
    }
}

/// Rank 0's decoding of the gathered replies, in rank order: the results in input order, or the
/// first failure (lowest rank, and so lowest input index).
fn decode_replies<R: DeserializeOwned>(
    gathered: &[u8],
    counts: &[Count],
    displs: &[Count],
) -> Result<Vec<R>> {
    let mut out = Vec::new();
    for (rank, (&at, &len)) in displs.iter().zip(counts).enumerate() {
        let bytes = &gathered[at as usize..(at + len) as usize];
        let reply: Reply<R> = postcard::from_bytes(bytes).map_err(|e| Error::Decode {
            what: format!("rank {rank}'s results"),
            message: e.to_string(),
        })?;
        match reply {
            Reply::Done(results) => out.extend(results),
            Reply::Panicked { index, message } => {
                return Err(Error::TaskPanicked {
                    index: index as usize,
                    rank,
                    message,
                })
            }
            Reply::Failed(Failure::Decode(message)) => {
                return Err(Error::Decode {
                    what: format!("rank {rank}'s inputs (as rank {rank} read them)"),
                    message,
                })
            }
            Reply::Failed(Failure::Encode(message)) => {
                return Err(Error::Encode {
                    what: format!("rank {rank}'s results"),
                    message,
                })
            }
            Reply::Failed(Failure::TooLarge(bytes)) => {
                return Err(Error::TooLarge {
                    what: format!("rank {rank}'s results"),
                    bytes,
                })
            }
        }
    }
    Ok(out)
}

/// Encodes each rank's block of `items`: the bytes end to end, each block's length, and the index
/// of each block's first input.
fn encode_blocks<T: Serialize>(
    items: &[T],
    ranks: usize,
) -> Result<(Vec<u8>, Vec<Count>, Vec<usize>)> {
    let mut bytes = Vec::new();
    let (mut counts, mut firsts) = (Vec::with_capacity(ranks), Vec::with_capacity(ranks));
    for rank in 0..ranks {
        let range = block(items.len(), rank, ranks);
        let before = bytes.len();
        bytes = postcard::to_extend(&items[range.clone()], bytes).map_err(|e| Error::Encode {
            what: "the inputs".into(),
            message: e.to_string(),
        })?;
        let len = (bytes.len() - before) as u64;
        if bytes.len() as u64 > MAX_COUNT {
            return Err(Error::TooLarge {
                what: format!("the inputs up to rank {rank}'s"),
                bytes: bytes.len() as u64,
            });
        }
        counts.push(len as Count);
        firsts.push(range.start);
    }
    Ok((bytes, counts, firsts))
}

/// Decodes a block, applies `f` to each input (catching a panic), and encodes the reply.
fn run_block<T, R>(f: fn(T) -> R, bytes: &[u8], first: u64) -> Vec<u8>
where
    T: DeserializeOwned,
    R: Serialize,
{
    let reply: Reply<R> = match postcard::from_bytes::<Vec<T>>(bytes) {
        Err(e) => Reply::Failed(Failure::Decode(e.to_string())),
        Ok(inputs) => {
            let mut results = Vec::with_capacity(inputs.len());
            let mut panicked = None;
            for (i, input) in inputs.into_iter().enumerate() {
                match catch_unwind(AssertUnwindSafe(|| f(input))) {
                    Ok(r) => results.push(r),
                    Err(payload) => {
                        panicked = Some(Reply::Panicked {
                            index: first + i as u64,
                            message: panic_message(&*payload),
                        });
                        break;
                    }
                }
            }
            panicked.unwrap_or(Reply::Done(results))
        }
    };
    let encoded = match postcard::to_stdvec(&reply) {
        Ok(bytes) => bytes,
        Err(e) => encode_failure(Failure::Encode(e.to_string())),
    };
    if encoded.len() as u64 > MAX_COUNT {
        return encode_failure(Failure::TooLarge(encoded.len() as u64));
    }
    encoded
}

fn encode_failure(failure: Failure) -> Vec<u8> {
    // A Reply::Failed holds only strings and integers: postcard encodes it.
    postcard::to_stdvec(&Reply::<()>::Failed(failure)).unwrap_or_default()
}

/// Where each of `counts` starts when they are laid end to end.
fn offsets(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0, |at, &n| {
            let here = *at;
            *at += n;
            Some(here)
        })
        .collect()
}
