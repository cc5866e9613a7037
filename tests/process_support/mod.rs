//! Runs a test's body in a fresh copy of the test binary (re-executed, not forked), so that:
//! - the session state (process numbering, the child registry) starts empty for each test, whatever
//!   other tests run in parallel on libtest's threads (`cargo test`) or not (`cargo nextest run`);
//! - the body's stdout and stderr are pipes the outer test reads and checks;
//! - `println!` in forked children reaches fd 1 (the inner run uses `--nocapture`: libtest's
//!   per-thread capture would otherwise swallow a child's output);
//! - a body that hangs fails the test after a timeout instead of hanging it.
#![allow(dead_code, unused_macros)]

pub mod interrupt;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const INNER_VAR: &str = "MULTIPROCESSING_TEST_INNER";

/// At the top of a test named `$name`: in the outer run, runs the test again isolated (see
/// [`isolate`]), asserts it passed and returns; in the inner run, goes on with the body.
macro_rules! isolated {
    ($name:ident) => {
        if let Some(out) = $crate::process_support::isolate(stringify!($name)) {
            out.assert_success();
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use isolated;

/// A started `Process` running `target`.
pub fn start(target: impl FnOnce() + 'static) -> multiprocessing::Process {
    let mut p = multiprocessing::Process::new(target);
    p.start().unwrap();
    p
}

/// What the inner run printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub status: ExitStatus,
    pub elapsed: Duration,
}

impl Outcome {
    /// Panics with both streams shown unless the inner test passed.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "inner test failed: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The stdout lines the body printed, without libtest's own lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| {
                !(l.is_empty()
                    || *l == "."
                    || l.starts_with("running ")
                    || l.starts_with("test result:"))
            })
            .collect()
    }
}

/// `None` inside the inner run (run the body), else runs `name` in a fresh process and returns what
/// it printed. `name` must be the test function's name.
pub fn isolate(name: &str) -> Option<Outcome> {
    isolate_with(name, Duration::from_secs(120), &[])
}

/// [`isolate`] with a timeout and extra environment variables for the inner run.
pub fn isolate_with(name: &str, timeout: Duration, env: &[(&str, &str)]) -> Option<Outcome> {
    if std::env::var(INNER_VAR).as_deref() == Ok(name) {
        return None;
    }
    let started = Instant::now();
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command
        // -q: libtest's "test <name> ... " (no newline) would otherwise glue onto the first line.
        .args([name, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(INNER_VAR, name)
        .env_remove("RUST_MULTIPROCESSING_STATE")
        .env_remove("RUST_MULTIPROCESSING_CHILDREN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("re-run the test binary");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the inner test") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "inner test {name} still running after {timeout:?}: killed (a hang or a deadlock)"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    Some(Outcome {
        stdout,
        stderr,
        status,
        elapsed: started.elapsed(),
    })
}

/// The pids of this process's children (all threads), from `/proc`.
pub fn child_pids() -> Vec<i32> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    pids.sort_unstable();
    pids
}

/// The open file descriptors of this process.
pub fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .map(|e| {
            let link = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{} -> {link}", e.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    fds
}

/// Whether `pid` is gone or a zombie (dead, not yet reaped by whoever inherited it).
pub fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}
