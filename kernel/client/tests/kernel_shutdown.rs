//! Kernel shutdown (through control) while a pool and started processes are alive:
//! afterwards no process of the kernel is left. Uses a kernel of its own.

mod common;

use std::time::{Duration, Instant};

use common::{describe, run_ok, runtime_pid, seconds, start_kernel, still_running};
use kernel_client::procs;

#[test]
fn shutdown_with_a_pool_and_running_processes_leaves_no_process() {
    let mut kernel = start_kernel("shutdown");
    let kernel_pid = kernel.pid();
    let runtime = runtime_pid(&mut kernel);
    run_ok(
        &mut kernel,
        r#"fn square(x: u64) -> u64 { x * x }
let pool = Pool::new(4)?;
println!("{:?}", pool.map(square, 0..4u64)?);
let mut sleepers: Vec<Process> = (0..2)
    .map(|_| Process::new(|| std::thread::sleep(std::time::Duration::from_secs(600))))
    .collect();
for p in sleepers.iter_mut() { p.start()?; }
println!("started");"#,
    );
    let mut snapshot = procs::descendants(kernel_pid);
    snapshot.extend(procs::process(kernel_pid));
    let runtime_children = procs::descendants(runtime);
    eprintln!(
        "[shutdown] kernel tree before shutdown: {} processes, {} under the runtime",
        snapshot.len(),
        runtime_children.len()
    );
    assert!(
        runtime_children.len() >= 6,
        "pool + sleepers not running:\n{}",
        describe(&runtime_children)
    );

    let started = Instant::now();
    let outcome = kernel.shutdown().expect("shutdown");
    let left = still_running(&snapshot, Duration::from_secs(5));
    let group_left = procs::wait_until_none(Duration::from_secs(1), || {
        procs::in_process_group(kernel_pid)
    });
    eprintln!(
        "[shutdown] {outcome:?}; nothing left after {}",
        seconds(started.elapsed())
    );
    assert!(outcome.replied, "no shutdown_reply");
    assert!(outcome.exited_by_itself, "the kernel had to be killed");
    assert!(
        left.is_empty(),
        "processes left after shutdown:\n{}",
        describe(&left)
    );
    assert!(
        group_left.is_empty(),
        "processes left in the kernel's group:\n{}",
        describe(&group_left)
    );
}
