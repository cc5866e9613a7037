//! The raw fork floor under Q6 and Q3: the same process work with no library, shared by
//! `pool_bench` (printed beside the crate's figures) and `one_workload` (alternated with them).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The floor under Q6 and Q3 on this machine: the same process work with no library, in
/// milliseconds (medians of 50 and 30, as the crate's). Q6: fork 4 children that `_exit` at once, reap each. Q3:
/// fork 4 children, each with a pipe for tasks and one for results (one byte in, eight out); send
/// 5 tasks as the pool does (one per child, the fifth after the first result), read the results,
/// then SIGKILL and reap every child and close the pipes.
pub fn raw_fork_floors() -> (f64, f64) {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;
    use nix::unistd::{pipe, read, write, ForkResult};
    fn fork_child(body: impl FnOnce()) -> nix::unistd::Pid {
        // SAFETY: this program has one thread here; the child only reads, writes and `_exit`s
        // (async-signal-safe), never returning into the parent's code.
        match unsafe { nix::unistd::fork() }.unwrap() {
            ForkResult::Parent { child } => child,
            ForkResult::Child => {
                body();
                // SAFETY: ends the child at once, without running the parent's destructors.
                unsafe { libc::_exit(0) }
            }
        }
    }
    let mut q6 = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let pids: Vec<_> = (0..4).map(|_| fork_child(|| ())).collect();
        for pid in pids {
            waitpid(pid, None).unwrap();
        }
        q6.push(t.elapsed());
    }
    let mut q3 = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let mut children = Vec::new();
        for _ in 0..4 {
            let (task_r, task_w) = pipe().unwrap();
            let (result_r, result_w) = pipe().unwrap();
            let pid = fork_child(|| {
                let mut b = [0u8; 1];
                while read(task_r.as_fd(), &mut b) == Ok(1) {
                    let cube = u64::from(b[0]).pow(3).to_le_bytes();
                    let _ = write(&result_w, &cube);
                }
            });
            drop((task_r, result_w));
            children.push((pid, task_w, result_r));
        }
        let mut out = [0u8; 8];
        for (i, (_, task_w, _)) in children.iter().enumerate() {
            write(task_w, &[i as u8 + 1]).unwrap();
        }
        read(children[0].2.as_fd(), &mut out).unwrap();
        write(&children[0].1, &[5]).unwrap();
        for (_, _, result_r) in &children {
            read(result_r.as_fd(), &mut out).unwrap();
        }
        for (pid, _, _) in &children {
            kill(*pid, Signal::SIGKILL).unwrap();
        }
        for (pid, _, _) in children {
            waitpid(pid, None).unwrap();
        }
        q3.push(t.elapsed());
    }
    (
        median(q6).as_secs_f64() * 1e3,
        median(q3).as_secs_f64() * 1e3,
    )
}
