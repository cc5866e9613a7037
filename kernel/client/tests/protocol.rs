//! The client itself against the installed kernel: startup, stdout/stderr/results,
//! errors, late stderr, time-outs that name what they awaited, interrupt and shutdown.
//! Uses only plain Rust cells, so it also runs against a plain evcxr spec.

mod common;

use std::time::{Duration, Instant};

use common::{run, run_ok, start_kernel, Checks};
use kernel_client::messages::ReplyStatus;
use kernel_client::Error;

#[test]
fn client_speaks_the_protocol() {
    let mut kernel = start_kernel("protocol");
    assert_eq!(
        kernel.kernel_info().language_info.name.to_lowercase(),
        "rust"
    );
    let mut checks = Checks::default();

    checks.check("stdout, stderr and execute_result of one cell", || {
        let outcome = run_ok(
            &mut kernel,
            "println!(\"out 1\");\neprintln!(\"err 1\");\nprintln!(\"out 2\");\n6 * 7",
        );
        assert_eq!(outcome.stdout, "out 1\nout 2\n");
        assert_eq!(outcome.stderr, "err 1\n");
        assert_eq!(outcome.result_text("text/plain").as_deref(), Some("42"));
        assert_eq!(outcome.status, ReplyStatus::Ok);
        eprintln!(
            "  cell took {:?}, late stderr {:?}",
            outcome.elapsed, outcome.late_stderr
        );
    });

    checks.check("compile error: error status and an error message", || {
        let outcome = run(&mut kernel, "let x: u32 = \"text\";");
        assert_eq!(outcome.status, ReplyStatus::Error);
        assert!(!outcome.errors.is_empty(), "no iopub error: {outcome:?}");
        assert!(
            outcome.error_text().contains("mismatched types"),
            "{}",
            outcome.error_text()
        );
    });

    checks.check("variables survive between cells", || {
        run_ok(&mut kernel, "let kept = 5u64;");
        let outcome = run_ok(&mut kernel, "println!(\"{}\", kept * 2);");
        assert_eq!(outcome.stdout, "10\n");
    });

    checks.check("a cell time-out names what was awaited", || {
        let error = kernel
            .execute_with_timeout(
                "std::thread::sleep(std::time::Duration::from_secs(3));",
                Duration::from_millis(500),
            )
            .unwrap_err();
        assert!(error.is_timeout(), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("execute_reply and iopub status idle"),
            "{text}"
        );
        // Let the sleeping cell end; its reply then goes to the stray list.
        std::thread::sleep(Duration::from_secs(3));
        run_ok(&mut kernel, "1");
        assert!(!kernel.take_stray().is_empty());
    });

    checks.check("interrupt ends a long cell and the next cell runs", || {
        let msg_id = kernel
            .send_execute("loop { std::thread::sleep(std::time::Duration::from_millis(10)); }")
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let reply = kernel.interrupt().unwrap();
        assert_eq!(reply.status, ReplyStatus::Ok);
        let interrupted = kernel
            .wait_execute(&msg_id, Duration::from_secs(30))
            .unwrap();
        eprintln!(
            "  interrupt: reply + cell end in {:.3} s, status {:?}, errors {}",
            started.elapsed().as_secs_f64(),
            interrupted.status,
            interrupted.error_text().trim()
        );
        assert!(interrupted.is_error());
        let outcome = run_ok(&mut kernel, "println!(\"after\");");
        assert_eq!(outcome.stdout, "after\n");
        eprintln!(
            "  next cell answered {:.3} s after the interrupt",
            started.elapsed().as_secs_f64()
        );
    });

    checks.check("notebook runner: tags, sanitizer, comparisons", || {
        use kernel_client::notebook::{run_notebook, Notebook, Sanitizer, Verdict};
        let stream = |text: &str| serde_json::json!([{"output_type": "stream", "name": "stdout", "text": text}]);
        let code = |source: &str, tags: &[&str], outputs: serde_json::Value| {
            serde_json::json!({"cell_type": "code", "source": source, "execution_count": 1,
                               "metadata": {"tags": tags}, "outputs": outputs})
        };
        let json = serde_json::json!({"metadata": {}, "nbformat": 4, "nbformat_minor": 5, "cells": [
            {"cell_type": "markdown", "source": "# runner self-test", "metadata": {}},
            code("println!(\"pid {}\", std::process::id());", &[], stream("pid 1\n")),
            code("for i in [3, 1, 2] { println!(\"{i}\"); };", &["unordered-output"], stream("1\n2\n3\n")),
            code("let x: u32 = \"s\";", &["raises-exception"], serde_json::json!([
                {"output_type": "error", "ename": "CompileError", "evalue": "mismatched types", "traceback": []}])),
            code("panic!(\"skipped\")", &["nbval-skip"], serde_json::json!([])),
            code("println!(\"{}\", 12345);", &["nbval-ignore-output"], stream("other\n")),
            code("1 + 1", &[], serde_json::json!([{"output_type": "execute_result", "execution_count": 1,
                "metadata": {}, "data": {"text/plain": "2"}}])),
            code("println!(\"changed\");", &[], stream("original\n")),
        ]});
        let notebook = Notebook::from_json(std::path::Path::new("self-test.ipynb"), &json).unwrap();
        let sanitizer = Sanitizer::load(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sanitize.cfg"),
        )
        .unwrap();
        let reports = run_notebook(&mut kernel, &notebook, &sanitizer, Duration::from_secs(60));
        let verdicts: Vec<(usize, Verdict)> =
            reports.iter().map(|r| (r.index, r.verdict.clone())).collect();
        assert_eq!(verdicts.len(), 7, "{verdicts:#?}");
        for (index, verdict) in &verdicts[..6] {
            assert!(
                matches!(verdict, Verdict::Passed(_) | Verdict::Skipped),
                "cell {index}: {verdict:?}"
            );
        }
        assert_eq!(verdicts[3].1, Verdict::Skipped);
        assert!(
            matches!(&verdicts[6].1, Verdict::Failed(why) if why.contains("changed")),
            "{:?}",
            verdicts[6]
        );
    });

    checks.finish();

    let pid = kernel.pid();
    let shutdown = kernel.shutdown().expect("shutdown");
    eprintln!("[protocol] shutdown: {shutdown:?}");
    assert!(
        shutdown.replied && shutdown.exited_by_itself,
        "{shutdown:?}"
    );
    let left = kernel_client::procs::wait_until_none(Duration::from_secs(5), || {
        kernel_client::procs::in_process_group(pid)
    });
    assert!(left.is_empty(), "left after shutdown: {left:#?}");
}

#[test]
fn a_missing_kernel_spec_is_a_clear_error() {
    let error = kernel_client::KernelClient::start_by_name(
        "no-such-kernel",
        &common::kernel_dirs(),
        Default::default(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::KernelSpecNotFound { .. }), "{error}");
    assert!(
        error.to_string().contains(".venv/share/jupyter/kernels"),
        "{error}"
    );
}
