//! What a Jupyter user expects of any kernel (ipykernel is the reference), through the installed
//! kernel: each error kind ends the cell with status "error", `ename`, `evalue` and `traceback`
//! plus an iopub `error`, and cells queued behind a failing one are aborted (Run All stops);
//! `is_complete` and `history`; stderr arrives as it is written (`\r` progress) and all of it
//! before idle; a display shown mid-cell and updated; an interrupt of a busy loop kills the runtime
//! after the grace period, says that the variables are lost, and leaves no process behind.
//! These need the project's patched evcxr (kernel/patches), not the crate's interrupt support.

mod common;

use std::time::{Duration, Instant};

use common::{describe, run, run_ok, runtime_pid, seconds, start_kernel, still_running, Checks};
use kernel_client::messages::ReplyStatus;
use kernel_client::{procs, Channel, ExecuteOutcome, KernelClient};
use serde_json::{json, Value};

/// The error fields of the reply, which must match the iopub error.
fn reply_error(outcome: &ExecuteOutcome) -> (String, String, Vec<String>) {
    assert_eq!(outcome.status, ReplyStatus::Error, "{outcome:?}");
    let reply = &outcome.reply;
    let fields = (
        reply.ename.clone().expect("execute_reply without ename"),
        reply.evalue.clone().expect("execute_reply without evalue"),
        reply
            .traceback
            .clone()
            .expect("execute_reply without traceback"),
    );
    let iopub = outcome.errors.last().expect("no iopub error message");
    assert_eq!(iopub.ename, fields.0, "reply and iopub error differ");
    assert_eq!(iopub.evalue, fields.1, "reply and iopub error differ");
    fields
}

fn shell(kernel: &mut KernelClient, msg_type: &str, content: Value) -> Value {
    kernel
        .request(Channel::Shell, msg_type, &content)
        .unwrap_or_else(|error| panic!("{msg_type}: {error}"))
        .content
}

#[test]
fn the_kernel_behaves_like_a_jupyter_kernel() {
    let mut kernel = start_kernel("jupyter");
    let mut checks = Checks::default();

    checks.check("compile error: reply has ename/evalue/traceback", || {
        let outcome = run(&mut kernel, "let x: u32 = \"text\";");
        let (ename, evalue, traceback) = reply_error(&outcome);
        assert_eq!(ename, "CompileError");
        assert!(evalue.contains("mismatched types"), "{evalue}");
        let plain = strip_ansi(&traceback.join("\n"));
        assert!(
            plain.contains("let x: u32 = \"text\";") && plain.contains("expected `u32`"),
            "traceback does not point into the cell: {plain}"
        );
    });

    checks.check(
        "`?` error: ename is the error's type, evalue its message",
        || {
            run_ok(&mut kernel, "let kept_after_error = 11u32;");
            let outcome = run(&mut kernel, "let n: u32 = \"x1\".parse()?;");
            let (ename, evalue, traceback) = reply_error(&outcome);
            assert!(ename.ends_with("ParseIntError"), "{ename}");
            assert_eq!(evalue, "invalid digit found in string");
            assert!(
                traceback.join("\n").contains("invalid digit"),
                "{traceback:?}"
            );
            // The crate's own error: its type and its message, which names the fix.
            let outcome = run(&mut kernel, "let pool = Pool::new(0)?;");
            let (ename, evalue, _) = reply_error(&outcome);
            assert!(ename.starts_with("multiprocessing::"), "{ename}");
            assert!(ename.ends_with("Error"), "{ename}");
            assert!(!evalue.is_empty());
            let next = run_ok(&mut kernel, "println!(\"{kept_after_error}\");");
            assert_eq!(next.stdout, "11\n");
        },
    );

    checks.check(
        "panic: ename panic, evalue the message, variables kept",
        || {
            run_ok(&mut kernel, "let kept_after_panic = 12u32;");
            let outcome = run(&mut kernel, "panic!(\"boom {}\", 1 + 1);");
            let (ename, evalue, _) = reply_error(&outcome);
            assert_eq!(ename, "panic");
            assert_eq!(evalue, "boom 2");
            let next = run_ok(&mut kernel, "println!(\"{kept_after_panic}\");");
            assert_eq!(next.stdout, "12\n");
        },
    );

    checks.check("cells queued behind a failing one are aborted", || {
        let first = kernel.send_execute("println!(\"one\");").unwrap();
        let failing = kernel.send_execute("panic!(\"stop here\");").unwrap();
        let queued = kernel.send_execute("println!(\"three\");").unwrap();
        let timeout = Duration::from_secs(120);
        assert_eq!(
            kernel.wait_execute(&first, timeout).unwrap().status,
            ReplyStatus::Ok
        );
        assert_eq!(
            kernel.wait_execute(&failing, timeout).unwrap().status,
            ReplyStatus::Error
        );
        let third = kernel.wait_execute(&queued, timeout).unwrap();
        assert_eq!(third.status, ReplyStatus::Aborted, "{third:?}");
        assert_eq!(third.stdout, "");
        // A cell sent after the failure runs.
        assert_eq!(run_ok(&mut kernel, "println!(\"four\");").stdout, "four\n");
    });

    checks.check(
        "is_complete: complete, incomplete with indent, invalid",
        || {
            for code in ["1", "println!(\"hi\");", "fn f() {}", ":dep foo = \"1\""] {
                let reply = shell(&mut kernel, "is_complete_request", json!({ "code": code }));
                assert_eq!(reply["status"], "complete", "{code}: {reply}");
            }
            for code in ["fn f() {", "let v = vec![1,", "let s = \"open", "/* open"] {
                let reply = shell(&mut kernel, "is_complete_request", json!({ "code": code }));
                assert_eq!(reply["status"], "incomplete", "{code}: {reply}");
                assert!(reply["indent"].is_string(), "{code}: {reply}");
            }
            for code in ["fn f() { )", "}", "let x = (1, 2];"] {
                let reply = shell(&mut kernel, "is_complete_request", json!({ "code": code }));
                assert_eq!(reply["status"], "invalid", "{code}: {reply}");
            }
        },
    );

    checks.check("history: tail, range and search over this session", || {
        run_ok(&mut kernel, "let history_marker = 1;");
        let reply = shell(
            &mut kernel,
            "history_request",
            json!({"hist_access_type": "tail", "n": 2, "output": false, "raw": true}),
        );
        assert_eq!(reply["status"], "ok");
        let history = reply["history"].as_array().expect("history list");
        assert_eq!(history.len(), 2, "{reply}");
        assert_eq!(history[1][2], "let history_marker = 1;");
        let count = history[1][1].as_u64().unwrap();
        let reply = shell(
            &mut kernel,
            "history_request",
            json!({"hist_access_type": "range", "session": 0, "start": count, "stop": count + 1,
                   "output": true, "raw": true}),
        );
        assert_eq!(
            reply["history"][0][2][0], "let history_marker = 1;",
            "{reply}"
        );
        let reply = shell(
            &mut kernel,
            "history_request",
            json!({"hist_access_type": "search", "pattern": "let history_ma*", "n": 10,
                   "unique": true, "output": false, "raw": true}),
        );
        assert_eq!(
            reply["history"].as_array().map(Vec::len),
            Some(1),
            "{reply}"
        );
    });

    checks.check(
        "comm_info and unknown requests are answered, never silent",
        || {
            let reply = shell(&mut kernel, "comm_info_request", json!({}));
            assert_eq!(reply["status"], "ok", "{reply}");
            assert!(reply["comms"].is_object(), "{reply}");
            let reply = shell(&mut kernel, "no_such_request", json!({}));
            assert_eq!(reply["status"], "error", "{reply}");
            assert!(
                reply["evalue"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no_such_request"),
                "{reply}"
            );
            let reply = kernel
                .request(Channel::Control, "no_such_request", &json!({}))
                .expect("control answers an unknown request")
                .content;
            assert_eq!(reply["status"], "error", "{reply}");
        },
    );

    checks.check(
        "input asked where the front end allows none: a clear error",
        || {
            run_ok(&mut kernel, "let kept_after_input = 14u32;");
            // What evcxr_input::get_string("name? ") does (this client sends allow_stdin false).
            let outcome = run(
                &mut kernel,
                "println!(\"EVCXR_INPUT_REQUEST:name? \");\n\
             let mut line = String::new();\nstd::io::stdin().read_line(&mut line)?;",
            );
            let (ename, evalue, _) = reply_error(&outcome);
            assert_eq!(ename, "StdinNotAllowed");
            assert!(evalue.contains("allow_stdin"), "{evalue}");
            assert_eq!(
                run_ok(&mut kernel, "println!(\"{kept_after_input}\");").stdout,
                "14\n"
            );
        },
    );

    checks.check(
        "stderr is live: a \\r progress over 2 s arrives spread out",
        || {
            let outcome = run_ok(
                &mut kernel,
                r#"for i in 0..=10 {
    eprint!("\rprogress {i:2}/10");
    std::thread::sleep(std::time::Duration::from_millis(200));
}
eprintln!(" done");"#,
            );
            let times: Vec<Duration> = outcome
                .timeline
                .iter()
                .filter(|m| m.msg_type == "stream" && m.content["name"] == "stderr")
                .map(|m| m.at)
                .collect();
            assert!(times.len() >= 5, "only {} stderr messages", times.len());
            let spread = *times.last().unwrap() - times[0];
            assert!(
                spread >= Duration::from_millis(1200),
                "all within {spread:?}"
            );
            assert!(
                outcome.stderr.contains("\rprogress  5/10"),
                "{:?}",
                outcome.stderr
            );
            assert!(
                outcome.stderr.ends_with("progress 10/10 done\n"),
                "{:?}",
                outcome.stderr
            );
            assert_eq!(outcome.late_stderr, "", "stderr arrived after idle");
            eprintln!("  {} stderr messages over {spread:?}", times.len());
        },
    );

    checks.check(
        "stderr written just before the cell ends comes before idle",
        || {
            for round in 0..5 {
                let outcome = run_ok(&mut kernel, &format!("eprintln!(\"last words {round}\");"));
                assert_eq!(outcome.stderr, format!("last words {round}\n"));
                assert_eq!(outcome.late_stderr, "");
            }
        },
    );

    checks.check("display mid-cell, then update_display_data with its id", || {
        let outcome = run_ok(
            &mut kernel,
            r#"let shown = multiprocessing::display::display(&[("text/plain", "step 0"), ("text/html", "<b>step 0</b>")])?;
std::thread::sleep(std::time::Duration::from_millis(800));
shown.update(&[("text/plain", "step 1")])?;"#,
        );
        let display = outcome
            .timeline
            .iter()
            .find(|m| m.msg_type == "display_data")
            .expect("no display_data");
        let update = outcome
            .timeline
            .iter()
            .find(|m| m.msg_type == "update_display_data")
            .expect("no update_display_data");
        assert_eq!(display.content["data"]["text/html"], "<b>step 0</b>");
        assert_eq!(update.content["data"]["text/plain"], "step 1");
        let id = &display.content["transient"]["display_id"];
        assert!(id.is_string(), "{}", display.content);
        assert_eq!(&update.content["transient"]["display_id"], id);
        assert!(
            update.at >= display.at + Duration::from_millis(600),
            "the display did not come while the cell ran: {:?} then {:?}",
            display.at,
            update.at
        );
    });

    // Last: it restarts the runtime.
    checks.check(
        "interrupt of a busy loop: killed after the grace period, says so",
        || {
            run_ok(&mut kernel, "let lost_by_kill = 13u32;");
            let runtime = runtime_pid(&mut kernel);
            let before = procs::descendants(runtime);
            let msg_id = kernel
                .send_execute(
                    "let mut spins = 0u64; loop { spins = std::hint::black_box(spins + 1); }",
                )
                .unwrap();
            wait_until_busy(runtime);
            let started = Instant::now();
            let reply = kernel.interrupt().unwrap();
            assert_eq!(reply.status, ReplyStatus::Ok);
            let outcome = kernel
                .wait_execute(&msg_id, Duration::from_secs(30))
                .unwrap();
            let took = started.elapsed();
            eprintln!("  busy loop: interrupt to cell end {}", seconds(took));
            let (ename, evalue, _) = reply_error(&outcome);
            assert_eq!(ename, "Interrupted");
            assert!(evalue.contains("every variable is lost"), "{evalue}");
            assert!(
                took >= Duration::from_millis(1900),
                "killed before the grace: {took:?}"
            );
            assert!(took < Duration::from_secs(6), "{took:?}");
            let mut old = before;
            old.extend(procs::process(runtime));
            let left = still_running(&old, Duration::from_secs(5));
            assert!(left.is_empty(), "left:\n{}", describe(&left));
            assert_ne!(runtime_pid(&mut kernel), runtime);
            let gone = run(&mut kernel, "println!(\"{lost_by_kill}\");");
            assert_eq!(gone.status, ReplyStatus::Error);
        },
    );

    checks.finish();
    kernel.shutdown().unwrap();
}

/// `text` without ANSI colour codes (evcxr colours each character of a compile error's source).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte (a letter)
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Waits until the runtime process burns CPU (the cell's code runs, compiling is over).
fn wait_until_busy(runtime: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let ticks = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
                Some(after.get(11)?.parse::<u64>().ok()? + after.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    loop {
        let a = ticks(runtime);
        std::thread::sleep(Duration::from_millis(300));
        if ticks(runtime) >= a + 10 || Instant::now() > deadline {
            return;
        }
    }
}
