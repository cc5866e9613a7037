//! Watching the pool work in the notebook (issue 12), through the installed kernel: a long `map`
//! shows a progress display that is updated in place while it runs and ends as a one-line summary
//! (or the error); a short one shows nothing; progress turned off shows nothing; a `Pool`, an
//! `Error`, a `Process` and a `TaskStream` ending a cell show their rich displays; the task stream
//! can be turned off.

mod common;

use std::time::Duration;

use common::{run_ok, start_kernel, Checks};
use kernel_client::{ExecuteOutcome, TimedMessage};

/// The cell's display and update messages, in arrival order.
fn displays(outcome: &ExecuteOutcome) -> Vec<&TimedMessage> {
    outcome
        .timeline
        .iter()
        .filter(|m| m.msg_type == "display_data" || m.msg_type == "update_display_data")
        .collect()
}

fn plain(m: &TimedMessage) -> String {
    m.content["data"]["text/plain"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The text/html of the cell's result (`execute_result`).
fn result_html(outcome: &ExecuteOutcome) -> String {
    outcome
        .results
        .get("text/html")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn pool_progress_and_rich_displays() {
    let mut kernel = start_kernel("kernel_watch");
    let mut checks = Checks::default();
    run_ok(
        &mut kernel,
        r#"use multiprocessing::{Pool, Progress};
fn slow(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(30)); x }
fn fails_at_100(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(30)); if x == 100 { panic!("no 100") } x }
let pool = Pool::new(2)?;"#,
    );

    checks.check(
        "a 3-second map: several updates spread over time, then the summary",
        || {
            let outcome = run_ok(
                &mut kernel,
                "let out = pool.map(slow, 0..200u64)?; println!(\"{}\", out.len());",
            );
            assert!(outcome.stdout.contains("200"), "{}", outcome.stdout);
            let shown = displays(&outcome);
            assert!(
                shown.len() >= 5,
                "expected a display and several updates, got {}: {shown:#?}",
                shown.len()
            );
            for m in &shown {
                eprintln!(
                    "  {:>7.3} s {}: {}",
                    m.at.as_secs_f64(),
                    m.msg_type,
                    plain(m)
                );
            }
            assert_eq!(shown[0].msg_type, "display_data");
            assert!(
                shown[0].at >= Duration::from_millis(900),
                "shown before ~1 s: {:?}",
                shown[0].at
            );
            let id = &shown[0].content["transient"]["display_id"];
            assert!(id.is_string(), "{}", shown[0].content);
            for m in &shown[1..] {
                assert_eq!(m.msg_type, "update_display_data");
                assert_eq!(&m.content["transient"]["display_id"], id);
            }
            // Spread over the run, at most ~4 a second.
            let span = shown.last().unwrap().at - shown[0].at;
            assert!(
                span >= Duration::from_millis(1500),
                "updates within {span:?}"
            );
            let per_s = shown.len() as f64 / span.as_secs_f64();
            assert!(per_s <= 6.0, "{} updates in {span:?}", shown.len());
            // Mid-run updates count tasks (a partly filled bar), the last is the summary.
            assert!(
                shown[1..shown.len() - 1]
                    .iter()
                    .any(|m| plain(m).contains("/200 tasks") && !plain(m).contains(" 0/200")),
                "{:#?}",
                shown.iter().map(|m| plain(m)).collect::<Vec<_>>()
            );
            let last = plain(shown.last().unwrap());
            assert!(last.starts_with("map: 200 tasks in "), "{last}");
            let html = shown.last().unwrap().content["data"]["text/html"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(html.contains("200 tasks in"), "{html}");
        },
    );

    checks.check("a 50 ms map sends no display", || {
        let outcome = run_ok(&mut kernel, "pool.map(slow, 0..3u64)?.len()");
        assert!(displays(&outcome).is_empty(), "{:#?}", outcome.timeline);
    });

    checks.check("progress off (per call, per pool) sends none", || {
        let outcome = run_ok(
            &mut kernel,
            "pool.with_progress(Progress::Never).map(slow, 0..100u64)?.len()",
        );
        assert!(displays(&outcome).is_empty(), "{:#?}", outcome.timeline);
        let outcome = run_ok(
            &mut kernel,
            "pool.chunked(2).progress(Progress::Never).map(slow, 0..100u64)?.len()",
        );
        assert!(
            outcome.elapsed >= Duration::from_millis(1300),
            "{:?}",
            outcome.elapsed
        );
        assert!(displays(&outcome).is_empty(), "{:#?}", outcome.timeline);
        let outcome = run_ok(
            &mut kernel,
            "let quiet = Pool::builder().processes(2).progress(Progress::Never).build()?; quiet.map(slow, 0..100u64)?.len()",
        );
        assert!(displays(&outcome).is_empty(), "{:#?}", outcome.timeline);
    });

    checks.check("a failing long map leaves the error in its display", || {
        let outcome = common::run(
            &mut kernel,
            "pool.chunked(1).map(fails_at_100, 0..200u64)?.len()",
        );
        assert!(outcome.is_error(), "{outcome:?}");
        let shown = displays(&outcome);
        assert!(!shown.is_empty(), "no display: {:#?}", outcome.timeline);
        let last = plain(shown.last().unwrap());
        assert!(
            last.contains("failed after") && last.contains("task 100 panicked"),
            "{last}"
        );
    });

    checks.check("a pool displays its worker table", || {
        let outcome = run_ok(&mut kernel, "pool");
        let html = result_html(&outcome);
        assert!(html.contains("<table"), "{html}");
        assert!(html.contains("ForkPoolWorker-"), "{html}");
        assert!(html.contains("tasks done"), "{html}");
        assert!(html.contains("idle"), "{html}");
    });

    checks.check("an error displays its message and fix", || {
        let outcome = run_ok(&mut kernel, "Pool::new(0).unwrap_err()");
        let html = result_html(&outcome);
        assert!(html.contains("ZeroProcesses"), "{html}");
        assert!(
            html.contains("a pool needs at least one worker process"),
            "{html}"
        );
        assert!(html.contains("Fix:"), "{html}");
    });

    checks.check("a process displays name, pid, state, exit code", || {
        let outcome = run_ok(
            &mut kernel,
            "let mut p = multiprocessing::Process::new(|| ()); p.start()?; p.join()?; p",
        );
        let html = result_html(&outcome);
        assert!(
            html.contains("Process-") && html.contains("exit code 0"),
            "{html}"
        );
    });

    checks.check(
        "the task stream is a timeline chart: a row per worker, labelled bars, a time axis",
        || {
            let outcome = run_ok(&mut kernel, "pool.task_stream()");
            let svg = outcome
                .results
                .get("image/svg+xml")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            assert!(svg.starts_with("<svg"), "{:?}", outcome.results);
            for worker in ["ForkPoolWorker-1", "ForkPoolWorker-2"] {
                assert!(svg.contains(worker), "no row for {worker}: {svg}");
            }
            assert!(svg.contains("<title>ForkPoolWorker-"), "no bars: {svg}");
            assert!(
                svg.contains("since the first chunk started"),
                "no axis: {svg}"
            );
            assert!(svg.contains("Task stream: "), "no title: {svg}");
        },
    );

    checks.check("the task stream can be off per call and per pool", || {
        let outcome = run_ok(
            &mut kernel,
            "let before = pool.task_stream().records().len();
pool.chunked(1).record_tasks(false).map(slow, 0..4u64)?;
let unrecorded = Pool::builder().processes(1).record_tasks(false).build()?;
unrecorded.map(slow, 0..4u64)?;
println!(\"{} {}\", pool.task_stream().records().len() - before, unrecorded.task_stream().records().len());",
        );
        assert_eq!(outcome.stdout.trim(), "0 0", "{}", outcome.stdout);
    });

    checks.finish();
}
