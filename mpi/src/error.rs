//! Errors of an MPI map: one typed [`Error`], each variant a case the caller handles differently,
//! each message naming the fix.

/// What can go wrong in [`World::init`](crate::World::init) and [`World::map`](crate::World::map).
///
/// A failed map returns the same error on every rank (rank 0 sends it to the others), so code that
/// writes `world.map(..)?` on every rank leaves in step, and no rank waits for one that left.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// `World::init` was called a second time in this process (MPI initializes once per process).
    #[error("MPI is already initialized in this process: call World::init() once, at the start of main, and pass &World to the code that maps")]
    AlreadyInitialized,

    /// A value could not be encoded with postcard (rank 0's inputs, or a rank's results).
    #[error("could not encode {what} with postcard: {message}; give the type a Serialize that postcard supports (no #[serde(flatten)], no sequences of unknown length)")]
    Encode {
        /// What was being encoded, e.g. "the inputs".
        what: String,
        /// postcard's message.
        message: String,
    },

    /// Bytes sent between ranks did not decode as the values expected: the ranks run different builds.
    #[error("{what} do not decode: {message}; every rank must run the same build of the program (mpirun -n N one-binary), so that T and R agree")]
    Decode {
        /// Whose bytes, e.g. "rank 2's results".
        what: String,
        /// postcard's message.
        message: String,
    },

    /// The function panicked on one of the inputs. Python's twin: the exception `pool.map` re-raises.
    #[error("task {index} panicked on rank {rank}: {message}")]
    TaskPanicked {
        /// The index of the input it panicked on.
        index: usize,
        /// The rank that ran it.
        rank: usize,
        /// The panic message.
        message: String,
    },

    /// One rank's share of the inputs or results is too big for one MPI message (MPI counts are `int`).
    #[error("{what} come to {bytes} bytes, over MPI's limit of 2 GiB per collective call (its counts are 32-bit): split the input into several map calls")]
    TooLarge {
        /// Which bytes, e.g. "rank 2's inputs".
        what: String,
        /// How many bytes they came to.
        bytes: u64,
    },
}

/// This crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message a panic was raised with (`panic!("...")`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".into())
}
