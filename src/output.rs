//! Carries a child's stdout and stderr into the parent's, one whole line at a time.
//!
//! Inside evcxr the runtime's stdout is the kernel's control channel: a child writing to it directly
//! could glue a last line without newline onto the kernel's `EVCXR_EXECUTION_COMPLETE` marker (the cell
//! then hangs), and its lines would land in whatever cell runs when it writes. So a child's fd 1 and 2
//! are pipes, and the parent relays them with [`OutputRelay`] while it waits: lines arrive whole, in
//! the cell that waits for the child, a missing final newline is added, and a child printing
//! megabytes never blocks because the parent drains the pipes as it waits.
//!
//! One kind of line is not passed on: a child's request for input (`evcxr_input::get_string`),
//! which would make the notebook ask the learner for an answer that could never reach the child.
//! The relay writes an error on stderr instead that says why and what to do.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::error::Result;

/// Which of the parent's streams a pipe is relayed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Stdout,
    Stderr,
}

/// The child's ends of its output pipes, to be put on fd 1 and 2 right after fork.
#[derive(Debug)]
pub(crate) struct ChildEnds<'a> {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// `/dev/null` kept open by the parent (a pool's, one for all its workers): the child puts it
    /// on fd 0 and closes its own copy. Without it the child opens `/dev/null` itself.
    pub stdin: Option<BorrowedFd<'a>>,
}

impl ChildEnds<'_> {
    /// The descriptors (-1 for no stdin), for siblings forked in the same batch to close.
    pub(crate) fn raw_fds(&self) -> [std::os::fd::RawFd; 3] {
        [
            self.stdout.as_raw_fd(),
            self.stderr.as_raw_fd(),
            self.stdin.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        ]
    }

    /// In the child: makes the pipes its stdout and stderr, and `/dev/null` its stdin.
    ///
    /// Stdin matters inside evcxr: the runtime's stdin is the kernel's command channel, and a child
    /// that read it would steal the kernel's commands (Python's children also get `os.devnull`).
    /// [`fork_child`](crate::fork::fork_child) flushed Rust's buffers before forking, so nothing the
    /// parent had buffered is printed twice.
    pub(crate) fn install(self) {
        match self.stdin {
            Some(null) => {
                let _ = nix::unistd::dup2_stdin(null);
                // This process's copy of the parent's descriptor: fd 0 is the one it uses.
                crate::sys::close_raw(null.as_raw_fd());
            }
            None => {
                if let Ok(null) = std::fs::File::open("/dev/null") {
                    let _ = nix::unistd::dup2_stdin(&null);
                }
            }
        }
        // Rust's buffers are empty here (flushed before the fork, nothing printed since), so the
        // streams need no flush: the child's first line goes to the pipes.
        let _ = nix::unistd::dup2_stdout(&self.stdout);
        let _ = nix::unistd::dup2_stderr(&self.stderr);
    }
}

/// One pipe being relayed.
#[derive(Debug)]
struct RelayedPipe {
    fd: Option<OwnedFd>,
    pending: Vec<u8>,
    target: Target,
}

/// The parent's ends of a child's stdout and stderr pipes, relayed line by line.
#[derive(Debug)]
pub(crate) struct OutputRelay {
    pipes: [RelayedPipe; 2],
}

/// Creates the two pipes for a child about to be forked.
pub(crate) fn pipes_for_child() -> Result<(OutputRelay, ChildEnds<'static>)> {
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let relay = OutputRelay {
        pipes: [
            RelayedPipe {
                fd: Some(out_read),
                pending: Vec::new(),
                target: Target::Stdout,
            },
            RelayedPipe {
                fd: Some(err_read),
                pending: Vec::new(),
                target: Target::Stderr,
            },
        ],
    };
    Ok((
        relay,
        ChildEnds {
            stdout: out_write,
            stderr: err_write,
            stdin: None,
        },
    ))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    crate::wire::pipe(true, false, crate::wire::Buffer::Default)
}

impl OutputRelay {
    /// The descriptors still open, to wait on with `poll`.
    pub(crate) fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.pipes
            .iter()
            .filter_map(|p| p.fd.as_ref().map(|fd| fd.as_fd()))
    }

    /// True once both pipes reached end-of-file (every writer closed them).
    pub(crate) fn is_closed(&self) -> bool {
        self.pipes.iter().all(|p| p.fd.is_none())
    }

    /// Reads whatever is available without blocking and writes out every complete line.
    pub(crate) fn pump(&mut self) {
        for pipe in &mut self.pipes {
            pipe.pump();
        }
    }

    /// Reads what is available without blocking, then writes out any unfinished last line with a
    /// newline added, keeping the pipes open. The pool calls it when a worker has finished all the tasks
    /// it was given, so their output ends in whole lines in the cell that waits for them.
    pub(crate) fn pump_and_complete_lines(&mut self) {
        for pipe in &mut self.pipes {
            pipe.pump();
            pipe.flush_partial_line();
        }
    }

    /// Reads what is left without blocking, then writes out any unfinished last line with a newline
    /// added, and closes the pipes. Called once the child has exited.
    pub(crate) fn finish(&mut self) {
        for pipe in &mut self.pipes {
            pipe.pump();
            pipe.flush_partial_line();
            pipe.fd = None;
        }
    }
}

impl RelayedPipe {
    fn pump(&mut self) {
        loop {
            let Some(fd) = &self.fd else { return };
            // Read straight into the pending buffer (no zeroed scratch buffer: the pool pumps after
            // every result, mostly to find nothing).
            match crate::sys::read_append(fd.as_fd(), &mut self.pending, 64 * 1024) {
                Ok(0) => {
                    self.fd = None;
                    self.flush_partial_line();
                    return;
                }
                Ok(n) => {
                    self.write_complete_lines();
                    // Short of what was asked for: the pipe is empty now (see `wire::NbReader`).
                    if n < crate::sys::READ_AT_LEAST {
                        return;
                    }
                }
                Err(Errno::EINTR) => continue,
                // EAGAIN: nothing more for now. Any other error: the pipe is unusable; stop reading it.
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.fd = None;
                    self.flush_partial_line();
                    return;
                }
            }
        }
    }

    fn write_complete_lines(&mut self) {
        if let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(last_newline + 1);
            self.write_lines();
            self.pending = rest;
        }
    }

    fn flush_partial_line(&mut self) {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            self.write_lines();
            self.pending.clear();
        }
    }

    /// Writes out `pending`, whole lines, to the pipe's target; a child's input request goes to
    /// stderr as an error instead.
    fn write_lines(&self) {
        if self.target == Target::Stdout && has_input_request(&self.pending) {
            for (target, bytes) in route_input_requests(&self.pending) {
                write_to(target, &bytes);
            }
        } else {
            write_to(self.target, &self.pending);
        }
    }
}

/// How `evcxr_input::get_string` and `get_password` start the stdout line that asks the kernel for
/// input (`EVCXR_INPUT_REQUEST:prompt`, `EVCXR_INPUT_REQUEST_PASSWORD:prompt`).
const INPUT_REQUEST: &[u8] = b"EVCXR_INPUT_REQUEST";

/// True if a line of `lines` starts with [`INPUT_REQUEST`] (cheap: the pool relays after every
/// result).
fn has_input_request(lines: &[u8]) -> bool {
    lines.starts_with(INPUT_REQUEST)
        || lines
            .windows(INPUT_REQUEST.len() + 1)
            .any(|w| w[0] == b'\n' && &w[1..] == INPUT_REQUEST)
}

/// Splits whole `lines` of a child's stdout into what goes on to stdout and, for each input
/// request, an error line for stderr. A child's stdin is `/dev/null` (as in Python), so the
/// request cannot be answered: passed on, it would make the notebook ask the learner for nothing.
fn route_input_requests(lines: &[u8]) -> Vec<(Target, Vec<u8>)> {
    let mut routed: Vec<(Target, Vec<u8>)> = Vec::new();
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let (target, bytes) = if line.starts_with(INPUT_REQUEST) {
            let text = String::from_utf8_lossy(line);
            let prompt = text
                .trim_end_matches(['\n', '\r'])
                .split_once(':')
                .map_or("", |(_, p)| p);
            let message = format!(
                "Error: a child process asked for input (prompt {prompt:?}), but only the cell \
                 itself can ask: a child's stdin is /dev/null, so it read an empty line. Ask in \
                 the cell (evcxr_input::get_string) and pass the answer to the child (an \
                 argument of its function, or a Queue).\n"
            );
            (Target::Stderr, message.into_bytes())
        } else {
            (Target::Stdout, line.to_vec())
        };
        match routed.last_mut() {
            Some((last, joined)) if *last == target => joined.extend_from_slice(&bytes),
            _ => routed.push((target, bytes)),
        }
    }
    routed
}

fn write_to(target: Target, bytes: &[u8]) {
    // Errors writing to our own stdout/stderr cannot be reported anywhere better; drop them.
    match target {
        Target::Stdout => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }
        Target::Stderr => {
            let mut err = io::stderr().lock();
            let _ = err.write_all(bytes);
            let _ = err.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_input_request_becomes_an_error_on_stderr() {
        let lines = b"before\nEVCXR_INPUT_REQUEST:name? \nafter\nmore\n";
        assert!(has_input_request(lines));
        let routed = route_input_requests(lines);
        assert_eq!(routed.len(), 3, "{routed:?}");
        assert_eq!(routed[0], (Target::Stdout, b"before\n".to_vec()));
        assert_eq!(routed[1].0, Target::Stderr);
        let error = String::from_utf8(routed[1].1.clone()).unwrap();
        assert!(
            error.contains("child process asked for input (prompt \"name? \")"),
            "{error}"
        );
        assert!(error.contains("/dev/null"), "{error}");
        assert_eq!(routed[2], (Target::Stdout, b"after\nmore\n".to_vec()));
    }

    #[test]
    fn a_password_request_is_caught_and_other_lines_are_not() {
        assert!(has_input_request(b"EVCXR_INPUT_REQUEST_PASSWORD:pin: \n"));
        let routed = route_input_requests(b"EVCXR_INPUT_REQUEST_PASSWORD:pin: \n");
        assert_eq!(routed.len(), 1);
        let error = String::from_utf8(routed[0].1.clone()).unwrap();
        assert!(error.contains("(prompt \"pin: \")"), "{error}");
        assert!(!has_input_request(b"say EVCXR_INPUT_REQUEST:x\n"));
        assert!(!has_input_request(b"plain\nlines\n"));
    }
}
