//! The example `mpi_map` under `mpirun`, as a user runs it: on 2 and 4 ranks its gathered result is
//! what `Pool::map` gives on the same work, each rank ran its own block, and a rank that panics or
//! is killed ends the run with a non-zero exit and a message saying so, within seconds.

#[path = "../examples/mpi_map/work.rs"]
mod work;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use multiprocessing::Pool;

/// The longest a run may take before the test kills it and fails (a hang is a failure).
const DEADLINE: Duration = Duration::from_secs(60);
/// A failing run must end within this (the issue: "within seconds"; the machine may be loaded).
const FAILS_WITHIN: Duration = Duration::from_secs(20);

/// The example's binary, built once by this test with the same profile as the test.
/// The tests run one at a time. `Pool::map` forks, and a fork made while another test thread holds
/// std's environment lock (spawning `mpirun` reads the environment) leaves the child waiting for
/// that lock forever (seen: a pool worker stuck in `unsetenv`). With one test at a time, the other
/// test threads wait on this mutex and hold nothing at a fork.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

fn example() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args([
            "build",
            "--quiet",
            "-p",
            "multiprocessing-mpi",
            "--example",
            "mpi_map",
        ]);
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example mpi_map failed");
    });
    // target/<profile>/deps/mpirun-HASH -> target/<profile>/examples/mpi_map
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples/mpi_map")
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `mpirun -n ranks --oversubscribe mpi_map args...`, with the two Open MPI variables that
/// allow root when we are root.
fn mpirun(ranks: usize, args: &[&str]) -> Run {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", &ranks.to_string(), "--oversubscribe"])
        .arg(example())
        .args(args);
    if nix::unistd::geteuid().is_root() {
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    run(cmd)
}

/// Runs `cmd` with its output in files (no pipe fills), killed and failed at DEADLINE.
fn run(mut cmd: Command) -> Run {
    let dir = std::env::temp_dir().join(format!(
        "mpi-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .env_remove("RUST_BACKTRACE");
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (mpirun comes with Open MPI: run ./install.sh)"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            // SIGTERM first: mpirun passes it on to the ranks it started.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {DEADLINE:?}: a hang\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        took: started.elapsed(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// The list after "gathered on rank 0: ".
fn gathered(run: &Run) -> Vec<u64> {
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("gathered on rank 0: "))
        .unwrap_or_else(|| panic!("no 'gathered on rank 0' line\n{}", run.all()));
    line.trim_matches(['[', ']'])
        .split(", ")
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"))
        })
        .collect()
}

fn agrees_with_pool_map(ranks: usize) {
    let run = mpirun(ranks, &[]);
    assert_eq!(run.code, Some(0), "mpirun -n {ranks} failed\n{}", run.all());
    let pool = Pool::with(2, |pool| pool.map(work::count_primes, work::inputs())).unwrap();
    assert_eq!(gathered(&run), pool, "\n{}", run.all());
    // Each input ran once, on the rank whose block holds it.
    let inputs = work::inputs();
    for rank in 0..ranks {
        for i in multiprocessing_mpi::block(inputs.len(), rank, ranks) {
            let line = format!(
                "rank {rank} of {ranks}: count_primes({}) = {}",
                inputs[i], pool[i]
            );
            let times = run.stdout.lines().filter(|l| *l == line).count();
            assert_eq!(times, 1, "{line:?} printed {times} times\n{}", run.all());
        }
    }
    let lines = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("rank "))
        .count();
    assert_eq!(lines, inputs.len(), "\n{}", run.all());
}

#[test]
fn two_ranks_agree_with_pool_map() {
    let _serial = one_at_a_time();
    agrees_with_pool_map(2);
}

#[test]
fn four_ranks_agree_with_pool_map() {
    let _serial = one_at_a_time();
    agrees_with_pool_map(4);
}

#[test]
fn a_panicking_rank_fails_the_run_with_the_panic_message() {
    let _serial = one_at_a_time();
    // 130 000 is input 12, the first of rank 3's block (12..16).
    let run = mpirun(4, &["--panic-at", "130000"]);
    assert!(
        run.code.is_some_and(|c| c != 0),
        "exit {:?}\n{}",
        run.code,
        run.all()
    );
    assert!(
        run.took < FAILS_WITHIN,
        "took {:?}\n{}",
        run.took,
        run.all()
    );
    // The panic's own report on rank 3, and rank 0's error naming the task and the rank.
    assert!(
        run.stderr.contains("asked to panic on input 130000"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr
            .contains("mpi_map: task 12 panicked on rank 3: asked to panic on input 130000"),
        "{}",
        run.all()
    );
    assert!(!run.stdout.contains("gathered on rank 0"), "{}", run.all());
}

#[test]
fn a_killed_rank_ends_the_run() {
    let _serial = one_at_a_time();
    // 60 000 is input 5, in rank 1's block (4..8); rank 0 then waits in the gather.
    let run = mpirun(4, &["--kill-at", "60000"]);
    assert!(
        run.code.is_some_and(|c| c != 0),
        "exit {:?}\n{}",
        run.code,
        run.all()
    );
    assert!(
        run.took < FAILS_WITHIN,
        "took {:?}\n{}",
        run.took,
        run.all()
    );
    assert!(
        run.stderr.contains("process rank 1") && run.stderr.contains("signal 9"),
        "mpirun should say that rank 1 died of signal 9\n{}",
        run.all()
    );
    assert!(!run.stdout.contains("gathered on rank 0"), "{}", run.all());
}

#[test]
fn without_mpirun_the_program_is_a_world_of_one() {
    let _serial = one_at_a_time();
    // Open MPI's singleton start: no mpirun, so no root check either.
    let run = run(Command::new(example()));
    assert_eq!(run.code, Some(0), "{}", run.all());
    let expected: Vec<u64> = work::inputs().into_iter().map(work::count_primes).collect();
    assert_eq!(gathered(&run), expected, "{}", run.all());
    assert!(
        run.stdout
            .contains("rank 0 of 1: count_primes(160000) = 14683"),
        "{}",
        run.all()
    );
}
