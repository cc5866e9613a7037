//! A failed map returns the same error on every rank, every rank leaves it, and the next map works
//! on all of them; a rank that panics outside `map` ends every rank instead of leaving them waiting.
//! This test binary runs itself under `mpirun` (each rank runs one test below, with
//! RANKS_IN_STEP_CHILD set), and each rank checks what its `map` calls return.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multiprocessing_mpi::{Error, World};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Deserializer, Serialize};

const CHILD: &str = "RANKS_IN_STEP_CHILD";

fn cube(x: u64) -> u64 {
    x * x * x
}

fn panics_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("three is not allowed");
    }
    x
}

/// A value postcard cannot encode (a sequence of unknown length): rank 0 fails before sending.
struct NoLength;

impl Serialize for NoLength {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_seq(None)?.end()
    }
}

impl<'de> Deserialize<'de> for NoLength {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(NoLength)
    }
}

fn ignore(_: NoLength) -> u8 {
    0
}

/// What each rank does under mpirun.
fn as_a_rank() {
    let world = World::init().expect("MPI_Init");
    let (rank, root) = (world.rank(), world.is_root());
    assert_eq!(world.size(), 3);

    // 0..9 over 3 ranks: 3 is the first input of rank 1's block. Every rank gets the same error.
    match world.map(panics_on_three, 0..9) {
        Err(Error::TaskPanicked {
            index,
            rank: at,
            message,
        }) => assert_eq!(
            (index, at, message.as_str()),
            (3, 1, "three is not allowed"),
            "rank {rank}"
        ),
        other => panic!("rank {rank}: after a panic on rank 1, map returned {other:?}"),
    }
    match world.map(ignore, vec![NoLength, NoLength, NoLength]) {
        Err(Error::Encode { what, .. }) => assert_eq!(what, "the inputs", "rank {rank}"),
        other => panic!("rank {rank}: after rank 0 failed to encode, map returned {other:?}"),
    }
    let out = world.map(cube, 0..7).expect("a map after two failed ones");
    assert_eq!(
        out,
        root.then(|| vec![0, 1, 8, 27, 64, 125, 216]),
        "rank {rank}"
    );
    println!("rank {rank}: in step");
}

/// A rank that panics outside `map`, while the others wait for it in one.
fn as_a_rank_that_gives_up() {
    let world = World::init().expect("MPI_Init");
    if world.rank() == 1 {
        panic!("rank 1 gives up before the map");
    }
    let _ = world.map(cube, 0..6);
    println!("rank {}: the map returned, which it cannot", world.rank());
}

struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs this test binary's test `name` as each of `ranks` ranks under mpirun, killed after 60 s.
fn under_mpirun(name: &str, ranks: usize) -> Run {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", &ranks.to_string(), "--oversubscribe"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if nix::unistd::geteuid().is_root() {
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    // The output is small (a few lines per rank): reading it after the exit cannot block mpirun.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "mpirun still running after 60 s: a rank waits for one that left\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == name)
}

#[test]
fn ranks_stay_in_step_after_a_failed_map() {
    if is_child("ranks_stay_in_step_after_a_failed_map") {
        return as_a_rank();
    }
    let run = under_mpirun("ranks_stay_in_step_after_a_failed_map", 3);
    let all = format!("{}\n{}\n{}", run.status, run.stdout, run.stderr);
    assert!(run.status.success(), "{all}");
    for rank in 0..3 {
        assert!(
            run.stdout.contains(&format!("rank {rank}: in step")),
            "{all}"
        );
    }
}

#[test]
fn a_rank_that_panics_outside_map_ends_every_rank() {
    if is_child("a_rank_that_panics_outside_map_ends_every_rank") {
        return as_a_rank_that_gives_up();
    }
    let run = under_mpirun("a_rank_that_panics_outside_map_ends_every_rank", 3);
    let all = format!("{}\n{}\n{}", run.status, run.stdout, run.stderr);
    assert!(!run.status.success(), "{all}");
    assert!(
        run.took < Duration::from_secs(20),
        "took {:?}\n{all}",
        run.took
    );
    assert!(
        run.stdout.contains("rank 1 gives up before the map")
            || run.stderr.contains("rank 1 gives up before the map"),
        "{all}"
    );
    assert!(
        run.stderr
            .contains("rank 1 of 3 panicked: ending every rank (MPI_Abort)"),
        "{all}"
    );
    assert!(!run.stdout.contains("the map returned"), "{all}");
}
