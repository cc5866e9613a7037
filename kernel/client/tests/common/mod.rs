//! Shared helpers of the kernel tests: where the kernel spec is looked up, how a
//! kernel is started, and soft checks that let one shared kernel run several checks
//! and report every failure at the end.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kernel_client::{ExecuteOutcome, KernelClient, KernelOptions};

/// The kernel under test; `TEST_KERNEL_NAME` overrides it (e.g. to try the
/// client against a plain evcxr spec).
pub fn kernel_name() -> String {
    std::env::var("TEST_KERNEL_NAME").unwrap_or_else(|_| "rust-multiprocessing".to_string())
}

/// The repo root (this crate is `kernel/client`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Kernel spec directories: the project's venv first, then Jupyter's usual ones.
pub fn kernel_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![repo_root().join(".venv/share/jupyter/kernels")];
    dirs.extend(kernel_client::default_kernel_dirs());
    dirs
}

/// Starts the kernel under test (startup 120 s, cells 60 s) and prints how long it took.
pub fn start_kernel(label: &str) -> KernelClient {
    start_kernel_with(label, KernelOptions::default())
}

/// Starts the kernel under test with `options`.
pub fn start_kernel_with(label: &str, options: KernelOptions) -> KernelClient {
    let name = kernel_name();
    let started = Instant::now();
    let kernel = KernelClient::start_by_name(&name, &kernel_dirs(), options)
        .unwrap_or_else(|error| panic!("[{label}] cannot start kernel `{name}`: {error}"));
    eprintln!(
        "[{label}] kernel `{name}` ready in {:.1} s (pid {})",
        started.elapsed().as_secs_f64(),
        kernel.pid()
    );
    kernel
}

/// Runs `code`, fails on a client error (time-out, dead kernel), returns the outcome.
pub fn run(kernel: &mut KernelClient, code: &str) -> ExecuteOutcome {
    kernel
        .execute(code)
        .unwrap_or_else(|error| panic!("cell failed to complete: {error}\ncell:\n{code}"))
}

/// Runs `code` and fails unless the cell succeeded.
pub fn run_ok(kernel: &mut KernelClient, code: &str) -> ExecuteOutcome {
    let outcome = run(kernel, code);
    assert!(
        !outcome.is_error(),
        "cell failed: {:?}\nerrors: {}\nstdout: {}\nstderr: {}\ncell:\n{code}",
        outcome.status,
        outcome.error_text(),
        outcome.stdout,
        outcome.stderr
    );
    outcome
}

/// Runs a cell that prints one value per line and returns the last line parsed.
pub fn run_value<T: std::str::FromStr>(kernel: &mut KernelClient, code: &str) -> T {
    let outcome = run_ok(kernel, code);
    let line = outcome
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    line.parse().unwrap_or_else(|_| {
        panic!(
            "cannot parse {line:?} from cell output {:?}",
            outcome.stdout
        )
    })
}

/// Soft checks: each runs, its failure is recorded with its name, and [`Checks::finish`]
/// fails the test listing all of them. Timings are printed for the lead's report.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Runs `check`; a panic inside is recorded, not propagated.
    pub fn check(&mut self, name: &str, check: impl FnOnce()) {
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
        let took = started.elapsed();
        match result {
            Ok(()) => eprintln!("[check] {name}: ok ({})", seconds(took)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".to_string());
                eprintln!("[check] {name}: FAILED ({})", seconds(took));
                self.failures.push(format!("{name}: {message}"));
            }
        }
    }

    /// Fails the test if any check failed.
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} check(s) failed:\n\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
    }
}

/// `1.234 s`.
pub fn seconds(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

/// Pid of evcxr's code-running subprocess (the "runtime"), asked from a cell.
pub fn runtime_pid(kernel: &mut KernelClient) -> u32 {
    run_value(kernel, "println!(\"{}\", std::process::id());")
}

/// Running (non-zombie) processes among `snapshot` (compared by pid and start time,
/// so a reused pid does not count), after waiting up to `timeout` for them to end.
pub fn still_running(
    snapshot: &[kernel_client::procs::ProcessInfo],
    timeout: Duration,
) -> Vec<kernel_client::procs::ProcessInfo> {
    kernel_client::procs::wait_until_none(timeout, || {
        snapshot
            .iter()
            .filter(|p| kernel_client::procs::is_running(p.pid, p.start_time))
            .cloned()
            .collect()
    })
}

/// One line per process, for failure messages.
pub fn describe(processes: &[kernel_client::procs::ProcessInfo]) -> String {
    processes
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
