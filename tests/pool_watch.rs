//! Watching a pool outside a notebook: the task stream's record (worker-measured times, per-pool and
//! per-call switches) and progress, which stays silent unless asked for. The notebook side (display
//! messages through the kernel) is tested in `kernel/client/tests/kernel_watch.rs`.

#[path = "process_support/mod.rs"]
mod process_support;

use std::time::Duration;

use multiprocessing::{Pool, Progress};
use process_support::{isolate, isolated};

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn double(x: u32) -> u32 {
    2 * x
}

#[test]
fn task_stream_records_every_chunk_with_the_workers_times() {
    isolated!(task_stream_records_every_chunk_with_the_workers_times);
    let pool = Pool::new(3).unwrap();
    let tasks: Vec<u64> = (1..=12).map(|i| 5 * i).collect();
    pool.chunked(1).map(sleep_ms, tasks).unwrap();
    let stream = pool.task_stream();
    let records = stream.records();
    assert_eq!(records.len(), 12, "{stream}");
    let mut firsts: Vec<usize> = records.iter().map(|r| r.first).collect();
    firsts.sort_unstable();
    assert_eq!(firsts, (0..12).collect::<Vec<_>>());
    let workers: Vec<String> = pool.workers().into_iter().map(|(name, _)| name).collect();
    for r in records {
        assert_eq!(r.tasks, 1);
        assert!(r.ok);
        assert!(workers.contains(&r.worker), "{r:?} not in {workers:?}");
        // The worker slept at least the task's time: its own clock says so.
        let slept = 0.005 * (r.first + 1) as f64;
        assert!(r.end - r.start >= slept * 0.99, "{r:?}");
    }
    // A worker runs one chunk at a time: on each worker's row the bars never overlap.
    for w in &workers {
        let mut mine: Vec<_> = records.iter().filter(|r| &r.worker == w).collect();
        mine.sort_by(|a, b| a.start.total_cmp(&b.start));
        for pair in mine.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "{:?} overlaps {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    let svg = stream.svg();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    for w in &workers {
        assert!(svg.contains(w.as_str()), "no row for {w}");
    }
    assert_eq!(svg.matches("<title>").count(), 12, "one bar per chunk");
    assert!(svg.contains("milliseconds since the first chunk started"));
}

#[test]
fn task_stream_last_call_and_switches() {
    isolated!(task_stream_last_call_and_switches);
    let pool = Pool::new(2).unwrap();
    pool.chunked(5).map(double, 0..10).unwrap();
    pool.chunked(2).map(double, 0..10).unwrap();
    let stream = pool.task_stream();
    assert_eq!(stream.records().len(), 2 + 5);
    let last = stream.last_call();
    assert_eq!(last.records().len(), 5);
    assert!(last.records().iter().all(|r| r.tasks == 2));
    // Per call: not recorded.
    pool.chunked(1)
        .record_tasks(false)
        .map(double, 0..10)
        .unwrap();
    pool.with_progress(Progress::Never)
        .record_tasks(false)
        .map(double, 0..10)
        .unwrap();
    assert_eq!(pool.task_stream().records().len(), 7);
    // Per pool: off, and a call may turn it back on.
    pool.set_record_tasks(false);
    pool.map(double, 0..10).unwrap();
    assert_eq!(pool.task_stream().records().len(), 7);
    pool.chunked(10)
        .record_tasks(true)
        .map(double, 0..10)
        .unwrap();
    assert_eq!(pool.task_stream().records().len(), 8);
    let quiet = Pool::builder()
        .processes(1)
        .record_tasks(false)
        .build()
        .unwrap();
    quiet.map(double, 0..10).unwrap();
    assert!(quiet.task_stream().records().is_empty());
    assert!(quiet.task_stream().svg().starts_with("<svg"), "empty chart");
}

#[test]
fn progress_is_silent_outside_a_notebook_unless_asked() {
    // The default (Auto) outside a notebook, then Always, each on a call of ~1.5 s.
    let out = isolate("progress_bodies").unwrap();
    out.assert_success();
    let (auto, always) = out
        .stderr
        .split_once("-- always --")
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(!auto.contains("tasks"), "Auto printed progress: {auto:?}");
    assert!(always.contains('\r'), "{always:?}");
    assert!(always.contains("/60 tasks"), "{always:?}");
    assert!(
        always.contains("map: 60 tasks in "),
        "no summary: {always:?}"
    );
}

#[test]
fn progress_bodies() {
    if std::env::var_os("MULTIPROCESSING_TEST_INNER").is_none() {
        return; // run by the test above only
    }
    assert!(std::env::var_os("EVCXR_IS_RUNTIME").is_none());
    let pool = Pool::new(2).unwrap();
    pool.map(sleep_ms, [50; 60]).unwrap();
    eprintln!("-- always --");
    pool.with_progress(Progress::Always)
        .map(sleep_ms, [50; 60])
        .unwrap();
}
