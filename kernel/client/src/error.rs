//! The error type of the client: every failure names what went wrong and, for
//! time-outs, what was being awaited.

use std::path::PathBuf;
use std::time::Duration;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while finding, starting or talking to a kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `kernel.json` for the kernel name in any directory searched.
    #[error("kernel spec `{name}` not found; searched: {searched:?}")]
    KernelSpecNotFound {
        /// The kernel name asked for.
        name: String,
        /// The kernelspec directories that were searched, in order.
        searched: Vec<PathBuf>,
    },
    /// A `kernel.json` exists but cannot be used.
    #[error("kernel spec {path}: {reason}")]
    BadKernelSpec {
        /// Path of the `kernel.json`.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Something did not arrive in time.
    #[error("timed out after {after:?} waiting for {awaited}")]
    Timeout {
        /// What was awaited, e.g. "execute_reply and iopub status idle for msg_id ...".
        awaited: String,
        /// How long the client waited.
        after: Duration,
    },
    /// The kernel process ended while the client was waiting for it.
    #[error(
        "kernel process exited ({status}) while waiting for {awaited}; end of its log:\n{log_tail}"
    )]
    KernelExited {
        /// How the process ended.
        status: String,
        /// What was awaited when it was found dead.
        awaited: String,
        /// The last lines of the kernel's stdout/stderr log.
        log_tail: String,
    },
    /// A message whose HMAC signature does not match its content.
    #[error("message signature does not match (channel {channel})")]
    BadSignature {
        /// The channel the message came from.
        channel: String,
    },
    /// A message that does not follow the wire format.
    #[error("malformed message: {0}")]
    Framing(String),
    /// A message with JSON that does not match the expected shape.
    #[error("cannot decode {what}: {source}")]
    Json {
        /// Which part of which message.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A zmq call failed.
    #[error("zmq {op}: {source}")]
    Zmq {
        /// The zmq operation that failed.
        op: String,
        /// The zmq error.
        #[source]
        source: zmq::Error,
    },
    /// A file or process operation failed.
    #[error("{op}: {source}")]
    Io {
        /// The operation that failed, e.g. "write connection file /tmp/...".
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered, but not in a way this client accepts.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Error {
    /// Wraps a zmq error with the operation that failed.
    pub(crate) fn zmq(op: impl Into<String>) -> impl FnOnce(zmq::Error) -> Error {
        let op = op.into();
        move |source| Error::Zmq { op, source }
    }

    /// Wraps an I/O error with the operation that failed.
    pub(crate) fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let op = op.into();
        move |source| Error::Io { op, source }
    }

    /// Wraps a JSON error with what was being decoded.
    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |source| Error::Json { what, source }
    }

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}
