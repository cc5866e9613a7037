// A value that must be used and is dropped at once is a compile error, not a warning: evcxr shows
// no warnings, and these are the silent bugs of a newcomer's translation from Python, where the
// call itself does the work or raises: `lock.acquire()?;` (the guard is dropped, nothing is
// locked), `p.start();` (an error ignored), `v.iter().map(..);` (nothing runs).
// (An inner attribute: first in the file, before any item.)
#![deny(unused_must_use)]
use multiprocessing::prelude::*;
// What a pool task, a Queue or a Pipe carries must be Serialize + Deserialize: with these (and
// the `:dep serde` in init.evcxr) a learner's own type needs only
// `#[derive(Serialize, Deserialize)]`, as rustc's note on the missing trait says.
use serde::{Deserialize, Serialize};
