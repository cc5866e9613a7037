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
