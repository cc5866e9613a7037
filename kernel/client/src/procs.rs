//! Reading the process table from `/proc`, so tests can check that a kernel
//! leaves no process and no file descriptor behind.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One process, from `/proc/<pid>/stat` and `/proc/<pid>/cmdline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process group id.
    pub pgid: u32,
    /// State letter: R, S, D, Z (zombie), T, ...
    pub state: char,
    /// Start time in clock ticks after boot; with the pid it names a process uniquely.
    pub start_time: u64,
    /// The command name (`comm`).
    pub name: String,
    /// The command line, arguments joined by spaces (empty for zombies).
    pub cmdline: String,
}

impl ProcessInfo {
    /// True for a zombie (ended, not yet reaped).
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }
}

impl std::fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ppid {} pgid {} state {} {} [{}]",
            self.pid, self.ppid, self.pgid, self.state, self.name, self.cmdline
        )
    }
}

/// Parses the text of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> Option<ProcessInfo> {
    // "pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    //  utime stime cutime cstime priority nice num_threads itrealvalue starttime ..."
    // comm may hold spaces and parentheses: it ends at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let name = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(ProcessInfo {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
        name,
        cmdline: String::new(),
    })
}

/// Reads one process; `None` if it is gone.
pub fn process(pid: u32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut info = parse_stat(&stat)?;
    if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
        info.cmdline = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .filter(|arg| !arg.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
    }
    Some(info)
}

/// All processes visible in `/proc`, by pid.
pub fn all_processes() -> BTreeMap<u32, ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .map(|info| (info.pid, info))
        .collect()
}

/// Processes whose parent chain contains `ancestor` (not `ancestor` itself).
pub fn descendants(ancestor: u32) -> Vec<ProcessInfo> {
    let table = all_processes();
    table
        .values()
        .filter(|info| {
            let mut current = info.ppid;
            // Bounded walk in case of a cycle from a racing read.
            for _ in 0..table.len() {
                if current == ancestor {
                    return true;
                }
                match table.get(&current) {
                    Some(parent) if parent.pid != parent.ppid => current = parent.ppid,
                    _ => return false,
                }
            }
            false
        })
        .cloned()
        .collect()
}

/// Processes in process group `pgid`.
pub fn in_process_group(pgid: u32) -> Vec<ProcessInfo> {
    all_processes()
        .into_values()
        .filter(|info| info.pgid == pgid)
        .collect()
}

/// True while the process `pid` that started at `start_time` exists and is not a zombie.
pub fn is_running(pid: u32, start_time: u64) -> bool {
    process(pid).is_some_and(|info| info.start_time == start_time && !info.is_zombie())
}

/// Polls `list` every 50 ms until it returns no process that is still running (zombies
/// do not count) or `timeout` passes; returns the running ones left (empty on success).
/// Processes take a moment to end after their parent or their pipe goes away.
pub fn wait_until_none(
    timeout: std::time::Duration,
    mut list: impl FnMut() -> Vec<ProcessInfo>,
) -> Vec<ProcessInfo> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left: Vec<ProcessInfo> = list().into_iter().filter(|p| !p.is_zombie()).collect();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Open file descriptors of `pid`: fd number -> what it points to (`readlink`).
pub fn open_fds(pid: u32) -> std::io::Result<BTreeMap<i32, String>> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let mut fds = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let target = std::fs::read_link(entry.path())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "?".to_string());
        fds.insert(fd, target);
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let text =
            "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let info = parse_stat(text).unwrap();
        assert_eq!(info.pid, 1234);
        assert_eq!(info.name, "a (b) c");
        assert_eq!(info.state, 'S');
        assert_eq!(info.ppid, 1);
        assert_eq!(info.pgid, 1234);
        assert_eq!(info.start_time, 987654);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn sees_this_process_and_a_child() {
        let me = std::process::id();
        let info = process(me).unwrap();
        assert!(is_running(me, info.start_time));
        assert!(!is_running(me, info.start_time + 1));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = descendants(me).iter().any(|p| p.pid == child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found);
        assert!(!open_fds(me).unwrap().is_empty());
        assert!(in_process_group(info.pgid).iter().any(|p| p.pid == me));
    }
}
