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

/// The floor under `map(upper)` over many short strings: the same work with no library, in
/// seconds (best of `runs`, as the crate's row). What any process-based map of `String -> String`
/// must do besides moving bytes: decode every input into a `String` in a worker and every result
/// into a `String` in the parent, and free the inputs and the results (the crate's row times the
/// drop of its results too). Here, by hand: `workers` forked processes, one pipe each way (1 MiB),
/// each gets one frame with its share of the inputs (a length, then a `u32` length and the bytes
/// of each string), decodes them, upper-cases them, and writes one frame back; the parent writes
/// every share, drops the inputs, then decodes the results in order into one `Vec<String>` and
/// drops it. The inputs are cloned outside the timing, as for the crate.
pub fn raw_strings_floor(words: &[String], workers: usize, runs: usize) -> f64 {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;
    use nix::unistd::{pipe, read, write, ForkResult};
    use std::os::fd::{BorrowedFd, OwnedFd};

    fn read_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8]) -> bool {
        while !buf.is_empty() {
            match read(fd, buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf = &mut buf[n..],
            }
        }
        true
    }
    fn write_all(fd: &OwnedFd, mut buf: &[u8]) {
        while !buf.is_empty() {
            buf = &buf[write(fd, buf).unwrap()..];
        }
    }
    /// One frame: its length, then per string a `u32` length and the bytes.
    fn encode<'a>(strings: impl ExactSizeIterator<Item = &'a String>) -> Vec<u8> {
        let mut out = vec![0u8; 8];
        for s in strings {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let len = (out.len() - 8) as u64;
        out[..8].copy_from_slice(&len.to_le_bytes());
        out
    }
    fn read_frame(fd: BorrowedFd<'_>, body: &mut Vec<u8>) -> bool {
        let mut len = [0u8; 8];
        if !read_exact(fd, &mut len) {
            return false;
        }
        body.resize(u64::from_le_bytes(len) as usize, 0);
        read_exact(fd, body)
    }
    fn decode_into(mut bytes: &[u8], out: &mut Vec<String>) {
        while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            out.push(std::str::from_utf8(&rest[..len]).unwrap().to_owned());
            bytes = &rest[len..];
        }
    }
    fn big_pipe() -> (OwnedFd, OwnedFd) {
        use std::os::fd::AsRawFd;
        let (r, w) = pipe().unwrap();
        // SAFETY: F_SETPIPE_SZ on a pipe this function owns; a failure leaves the default size.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        (r, w)
    }

    let mut children = Vec::new();
    for _ in 0..workers {
        let (task_r, task_w) = big_pipe();
        let (result_r, result_w) = big_pipe();
        // SAFETY: this program has one thread here; the child only runs the loop below and
        // `_exit`s, never returning into the parent's code.
        let pid = match unsafe { nix::unistd::fork() }.unwrap() {
            ForkResult::Parent { child } => child,
            ForkResult::Child => {
                drop(task_w);
                drop(result_r);
                let mut body = Vec::new();
                while read_frame(task_r.as_fd(), &mut body) {
                    let mut items = Vec::new();
                    decode_into(&body, &mut items);
                    let upper: Vec<String> = items.into_iter().map(|s| s.to_uppercase()).collect();
                    write_all(&result_w, &encode(upper.iter()));
                }
                // SAFETY: ends the child at once, without running the parent's destructors.
                unsafe { libc::_exit(0) }
            }
        };
        drop((task_r, result_w));
        children.push((pid, task_w, result_r));
    }
    let mut best = f64::MAX;
    let mut body = Vec::new();
    for _ in 0..runs {
        let input = words.to_vec();
        let t = Instant::now();
        let share = input.len().div_ceil(workers);
        for (chunk, (_, task_w, _)) in input.chunks(share).zip(&children) {
            write_all(task_w, &encode(chunk.iter()));
        }
        drop(input);
        let mut out: Vec<String> = Vec::with_capacity(words.len());
        for (_, _, result_r) in &children {
            assert!(read_frame(result_r.as_fd(), &mut body));
            decode_into(&body, &mut out);
        }
        assert_eq!(out[1], words[1].to_uppercase());
        drop(out);
        best = best.min(t.elapsed().as_secs_f64());
    }
    for (pid, task_w, result_r) in children {
        drop((task_w, result_r));
        let _ = kill(pid, Signal::SIGKILL);
        waitpid(pid, None).unwrap();
    }
    best
}

/// The part of [`raw_strings_floor`]'s work that falls on the parent whatever the design, in one
/// process with no transport, in seconds (best of `runs`): write the inputs' bytes into one buffer,
/// free the inputs, make a `String` of each result from the buffer, free the results. (Workers may
/// run beside it; on a 2-core machine they also take CPU from it.)
pub fn strings_parent_share(words: &[String], runs: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let input = words.to_vec();
        let t = Instant::now();
        let mut bytes = Vec::with_capacity(input.iter().map(|s| s.len() + 4).sum());
        for s in &input {
            bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
            bytes.extend_from_slice(s.as_bytes());
        }
        drop(input);
        let mut out: Vec<String> = Vec::with_capacity(words.len());
        let mut rest = &bytes[..];
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            out.push(std::str::from_utf8(&tail[..len]).unwrap().to_owned());
            rest = &tail[len..];
        }
        assert_eq!(out.len(), words.len());
        drop(out);
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}
