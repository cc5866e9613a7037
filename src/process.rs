//! `Process`: one child process running a closure, as Python's `multiprocessing.Process`.
//! (Skeleton: being written.)

use crate::child::Child;
use crate::error::{Error, Result};
use crate::output::{self, OutputRelay};
use crate::{session, sys};

/// A closure run in a child process (skeleton).
pub struct Process {
    target: Option<Box<dyn FnOnce()>>,
    name: String,
    identity: Vec<u64>,
    child: Option<(Child, OutputRelay)>,
}

impl Process {
    /// Creates a process that will run `target` once started.
    pub fn new(target: impl FnOnce() + 'static) -> Self {
        let (identity, name) = session::number_new_child("Process");
        Process { target: Some(Box::new(target)), name, identity, child: None }
    }

    /// Starts the child.
    pub fn start(&mut self) -> Result<()> {
        let target = self.target.take().ok_or_else(|| Error::AlreadyStarted { name: self.name.clone() })?;
        let (relay, ends) = output::pipes_for_child()?;
        let parent_pid = std::process::id() as i32;
        let (name, identity) = (self.name.clone(), self.identity.clone());
        let pid = sys::fork_child(move || {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if nix::unistd::getppid().as_raw() != parent_pid {
                return 1;
            }
            ends.install();
            session::become_child(&name, identity, parent_pid, false);
            target();
            0
        })?;
        self.child = Some((Child::new(pid), relay));
        Ok(())
    }

    /// Waits for the child to end.
    pub fn join(&mut self) -> Result<()> {
        let (child, relay) = self
            .child
            .as_mut()
            .ok_or_else(|| Error::NotStarted { name: self.name.clone(), call: "join" })?;
        child.wait_relaying(Some(relay), None)?;
        Ok(())
    }

    /// Exit code once joined.
    pub fn exitcode(&self) -> Option<i32> {
        self.child.as_ref().and_then(|(c, _)| c.exit_code())
    }
}
