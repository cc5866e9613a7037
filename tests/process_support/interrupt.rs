//! The kernel's interrupt, without the kernel: a nonblocking pipe whose read end is named in
//! `RUST_MP_INTERRUPT_FD` (as the project's evcxr runtime does), and a helper that writes one byte
//! into its write end after a while (as the runtime's SIGINT handler does).

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::time::{Duration, Instant};

use multiprocessing::Error;

/// How long after the start of a wait the helper writes the byte.
pub const DELAY: Duration = Duration::from_millis(300);
/// The contract is 200 ms; the machine is shared (and the helper process must be scheduled), so
/// allow scheduling noise on top. The latency seen is printed.
pub const PROMPT: Duration = Duration::from_millis(200 + 1300);

/// Makes the interrupt pipe, names its read end in the environment, returns the write end.
pub fn interrupt_pipe() -> OwnedFd {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let read = read.into_raw_fd();
    std::env::set_var("RUST_MP_INTERRUPT_FD", read.to_string());
    write
}

/// Runs `wait` while a helper process writes one byte into the interrupt pipe after [`DELAY`];
/// checks that `wait` returned `Interrupted` promptly, and returns that error.
///
/// The helper is a shell started with `std::process::Command` (fork + exec), not a crate `Process`:
/// an interrupt sends SIGINT to every running `Process` child (as Ctrl-C does), which would race
/// with the helper's own exit; and a child forked by this crate from the test harness's
/// multi-threaded process could, rarely, inherit a lock held by another thread and never write.
pub fn interrupted<T: std::fmt::Debug>(
    pipe: &OwnedFd,
    what: &str,
    wait: impl FnOnce() -> multiprocessing::Result<T>,
) -> Error {
    let path = format!("/proc/{}/fd/{}", std::process::id(), pipe.as_raw_fd());
    let t = Instant::now();
    let mut helper = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("sleep {}; printf x > {path}", DELAY.as_secs_f64()))
        .spawn()
        .unwrap();
    let got = wait();
    let took = t.elapsed();
    assert!(helper.wait().unwrap().success());
    let err = match got {
        Err(err @ Error::Interrupted { .. }) => err,
        other => panic!("{what}: expected Interrupted, got {other:?}"),
    };
    assert!(
        took >= DELAY && took < DELAY + PROMPT,
        "{what}: returned {took:?} after the start; the byte came at {DELAY:?}"
    );
    println!("{what}: {:?} after the byte: {err}", took - DELAY);
    err
}
