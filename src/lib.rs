//! Python's `multiprocessing`, in Rust, on `fork`: [`Process`], [`current_process`], [`Pool`], made to
//! be read side by side with the Python original and run inside a Jupyter notebook (evcxr).
//!
//! (The Python-to-Rust table goes here.)

pub mod error;
pub mod process;

mod child;
mod output;
mod session;
mod sys;

pub use error::{Error, Result};
pub use process::Process;

/// Everything a notebook needs, in one `use` (the project's kernel imports it at start-up).
pub mod prelude {
    pub use crate::error::{Error, Result};
    pub use crate::process::Process;
}
