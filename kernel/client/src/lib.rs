//! A small Jupyter client on zmq, used by this project's tests to drive the
//! `rust-multiprocessing` kernel (evcxr with the `multiprocessing` crate preloaded)
//! and to re-run the notebooks.
//!
//! ```no_run
//! use kernel_client::{KernelClient, KernelOptions, default_kernel_dirs};
//! let mut kernel =
//!     KernelClient::start_by_name("rust-multiprocessing", &default_kernel_dirs(), KernelOptions::default())?;
//! let outcome = kernel.execute("println!(\"hi\");")?;
//! assert_eq!(outcome.stdout, "hi\n");
//! # Ok::<(), kernel_client::Error>(())
//! ```
//!
//! Modules: [`kernelspec`] finds `kernel.json`, [`connection`] writes the connection
//! file, [`signing`] and [`wire`] sign and frame messages, [`messages`] types them,
//! [`client`] runs the kernel, [`procs`] reads `/proc` for leak checks and
//! [`notebook`] re-runs `.ipynb` files and compares their outputs.

pub mod client;
pub mod connection;
pub mod error;
pub mod kernelspec;
pub mod messages;
pub mod notebook;
pub mod procs;
pub mod signing;
pub mod wire;

pub use client::{
    Channel, ExecuteOutcome, InputExchange, KernelClient, KernelOptions, Output, ShutdownOutcome,
    TimedMessage,
};
pub use error::{Error, Result};
pub use kernelspec::{default_kernel_dirs, KernelSpec};
