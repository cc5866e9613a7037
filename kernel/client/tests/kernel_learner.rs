//! A newcomer's session through the installed kernel: the things a learner coming from the Python
//! tutorial types early, where the kernel once did worse than ipykernel. Output without a trailing
//! newline (`print!`, with or without a flush) ends its cell and shows in it (it used to hang the
//! cell, or show up in a later one); the learner's own struct goes through a `Pool` with
//! `#[derive(Serialize, Deserialize)]` and nothing else; a compile error keeps rustc's line that
//! says what to do; a panic in a cell is reported without evcxr's backtrace; a cell that ends in
//! `println!(..)` without a semicolon shows no `()`; a cell that ends the runtime
//! (`std::process::exit`) says that every variable is lost; `lock.acquire()?;` (a guard dropped at
//! once, Python's habit) and `p.start();` (a `Result` dropped unseen) are compile errors, since evcxr
//! shows no warnings; Python's `print(conn.recv())` as `println!("{:?}", conn.recv()?)` is told to
//! name the type; a `Process`, a `Pool` or an `Error` as a cell's result comes with a `text/plain`
//! form beside its HTML card (a `Process`: Python's repr); a `:dep` the offline kernel cannot fetch
//! says how to go online. One kernel is shared.

mod common;

use std::time::Duration;

use common::{run, run_ok, start_kernel, Checks};
use kernel_client::messages::ReplyStatus;
use kernel_client::KernelClient;
use regex::Regex;

/// `text` without ANSI colour codes (compile errors are coloured).
fn plain(text: &str) -> String {
    Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
        .unwrap()
        .replace_all(text, "")
        .into_owned()
}

/// Runs `code` with a time limit shorter than the client's default: a cell that does not end is
/// the bug some checks look for. Such a cell is interrupted, so that the later checks still run.
fn run_within(
    kernel: &mut KernelClient,
    code: &str,
    limit: Duration,
) -> kernel_client::ExecuteOutcome {
    match kernel.execute_with_timeout(code, limit) {
        Ok(outcome) => outcome,
        Err(error) => {
            let _ = kernel.interrupt();
            // Waits for the kernel to answer again (the interrupted cell ends first).
            let _ = kernel.execute_with_timeout("", Duration::from_secs(30));
            panic!("the cell did not complete within {limit:?}: {error}\ncell:\n{code}")
        }
    }
}

#[test]
fn a_newcomers_session_behaves() {
    let mut kernel = start_kernel("learner");
    let mut checks = Checks::default();
    let limit = Duration::from_secs(30);

    run_ok(&mut kernel, "let kept = 7;");

    checks.check(
        "print! and a flush: the cell ends and shows the text",
        || {
            let outcome = run_within(
            &mut kernel,
            "use std::io::Write;\nprint!(\"no newline, flushed\");\nstd::io::stdout().flush()?;",
            limit,
        );
            assert_eq!(outcome.status, ReplyStatus::Ok, "{}", outcome.error_text());
            assert_eq!(outcome.stdout, "no newline, flushed\n");
            let next = run_ok(&mut kernel, "println!(\"next cell {kept}\");");
            assert_eq!(
                next.stdout, "next cell 7\n",
                "the session or the output order was lost"
            );
        },
    );

    checks.check(
        "print! without a flush shows in its own cell, not the next",
        || {
            let outcome = run_within(&mut kernel, "print!(\"no newline\");", limit);
            assert_eq!(outcome.stdout, "no newline\n");
            let next = run_ok(&mut kernel, "println!(\"next cell\");");
            assert_eq!(next.stdout, "next cell\n");
        },
    );

    checks.check(
        "a partial line before a value, a rich display and an error",
        || {
            let value = run_within(&mut kernel, "print!(\"before a value \"); 6 * 7", limit);
            assert_eq!(value.stdout, "before a value \n");
            assert_eq!(value.result_text("text/plain").as_deref(), Some("42"));

            let pool = run_within(
                &mut kernel,
                "print!(\"before a pool \");\nPool::new(1)?",
                limit,
            );
            assert_eq!(pool.stdout, "before a pool \n");
            let html = pool.result_text("text/html").unwrap_or_default();
            assert!(html.contains("ForkPoolWorker-"), "no pool table: {html:?}");

            let error = run_within(
                &mut kernel,
                "print!(\"before an error \");\nlet n: i32 = \"x\".parse()?;",
                limit,
            );
            assert_eq!(error.status, ReplyStatus::Error);
            assert_eq!(error.stdout, "before an error \n");
            assert!(
                error.error_text().contains("invalid digit"),
                "{}",
                error.error_text()
            );
        },
    );

    checks.check(
        "the crate's rich results carry text/plain too, as IPython's do",
        || {
            let process = run_within(
                &mut kernel,
                "let mut p = Process::new(|| ());\np.start()?;\np.join()?;\np",
                limit,
            );
            assert_eq!(process.status, ReplyStatus::Ok, "{}", process.error_text());
            let text = process.result_text("text/plain").unwrap_or_default();
            assert!(
                text.starts_with("<Process name='Process-") && text.contains("stopped exitcode=0>"),
                "not Python's repr: {text:?}"
            );
            assert!(process.result_text("text/html").is_some(), "no HTML card");

            let pool = run_within(&mut kernel, "Pool::new(1)?", limit);
            let text = pool.result_text("text/plain").unwrap_or_default();
            assert!(
                text.starts_with("Pool: 1 process, running") && text.contains("ForkPoolWorker-"),
                "no plain pool table: {text:?}"
            );

            let error = run_within(&mut kernel, "multiprocessing::Error::ZeroProcesses", limit);
            let text = error.result_text("text/plain").unwrap_or_default();
            assert!(
                text.starts_with("Error::ZeroProcesses: ") && text.contains("Pool::new(n)"),
                "no plain error: {text:?}"
            );
        },
    );

    checks.check("a partial line in front of the progress display", || {
        let outcome = run_within(
            &mut kernel,
            "fn nap(n: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(150)); n }\n\
             print!(\"working... \");\n\
             Pool::new(2)?.chunked(1).map(nap, 0..14)?.len()",
            limit,
        );
        assert_eq!(outcome.status, ReplyStatus::Ok, "{}", outcome.error_text());
        assert_eq!(outcome.stdout, "working... \n");
        assert!(
            !outcome.stdout.contains("EVCXR_"),
            "a control line shown as text: {:?}",
            outcome.stdout
        );
        assert!(
            !outcome.displays.is_empty(),
            "the map's progress display did not arrive as a display"
        );
        assert_eq!(outcome.result_text("text/plain").as_deref(), Some("14"));
    });

    checks.check(
        "a cell that ends in () shows no result, as Python's None",
        || {
            let outcome = run_ok(&mut kernel, "println!(\"hello\")");
            assert_eq!(outcome.stdout, "hello\n");
            assert!(
                outcome.results.is_empty(),
                "a result shown for (): {:?}",
                outcome.results
            );
            let outcome = run_ok(&mut kernel, "for i in 0..2 { println!(\"{i}\") }");
            assert_eq!(outcome.stdout, "0\n1\n");
            assert!(outcome.results.is_empty(), "{:?}", outcome.results);
            // Other values still show, the unit inside them too.
            let outcome = run_ok(&mut kernel, "(1, ())");
            assert_eq!(
                outcome.result_text("text/plain").as_deref(),
                Some("(1, ())")
            );
        },
    );

    checks.check(
        "a learner's own struct goes through a Pool with derive",
        || {
            let outcome = run_ok(
                &mut kernel,
                r#"#[derive(Serialize, Deserialize, Debug)]
struct Point { x: i32, y: i32 }
fn norm(p: Point) -> i32 { p.x * p.x + p.y * p.y }
Pool::new(2)?.map(norm, vec![Point { x: 1, y: 2 }, Point { x: 3, y: 4 }])?"#,
            );
            assert_eq!(
                outcome.result_text("text/plain").as_deref(),
                Some("[5, 25]")
            );
            // The spelling rustc's note suggests works too.
            let outcome = run_ok(
                &mut kernel,
                r#"#[derive(serde::Serialize, serde::Deserialize)]
struct Pair(u8, u8);
let q = Queue::new()?;
q.put(&Pair(1, 2))?;
let Pair(a, b) = q.get()?;
a + b"#,
            );
            assert_eq!(outcome.result_text("text/plain").as_deref(), Some("3"));
        },
    );

    checks.check(
        "a compile error keeps rustc's note that names the fix",
        || {
            let outcome = run(
                &mut kernel,
                r#"struct Plain { x: i32 }
fn get_x(p: Plain) -> i32 { p.x }
Pool::new(2)?.map(get_x, vec![Plain { x: 1 }])?"#,
            );
            assert_eq!(outcome.status, ReplyStatus::Error);
            let text = plain(&outcome.error_text());
            assert!(
                text.contains("consider adding `#[derive(serde::Serialize)]` to your `Plain` type"),
                "no derive hint:\n{text}"
            );
            assert!(
                !text.contains("126 others"),
                "the list of every Serialize type is noise:\n{text}"
            );
        },
    );

    checks.check(
        "a compile error keeps rustc's suggested fix, as the fixed line",
        || {
            let outcome = run(
                &mut kernel,
                "let q = Queue::new()?;\nfor i in 0..3 { q.put(i * i)?; }",
            );
            assert_eq!(outcome.status, ReplyStatus::Error);
            let text = plain(&outcome.error_text());
            assert!(
                text.contains("consider borrowing here: `for i in 0..3 { q.put(&(i * i))?; }`"),
                "no suggested fix:\n{text}"
            );
        },
    );

    checks.check("a panic in a cell: its message and place, no backtrace", || {
        let outcome = run(&mut kernel, "let n: i32 = \"abc\".parse().unwrap();");
        assert_eq!(outcome.status, ReplyStatus::Error);
        assert_eq!(outcome.reply.ename.as_deref(), Some("panic"));
        let stderr = format!("{}{}", outcome.stderr, outcome.late_stderr);
        assert!(
            stderr.contains("panicked at ")
                && stderr.contains("called `Result::unwrap()` on an `Err` value: ParseIntError"),
            "no panic report: {stderr:?}"
        );
        assert!(
            !stderr.contains("stack backtrace") && !stderr.contains("evcxr::runtime"),
            "the kernel's backtrace is shown: {stderr:?}"
        );
        // A named thread is named, as std does.
        let outcome = run_ok(
            &mut kernel,
            "std::thread::Builder::new().name(\"helper\".into()).spawn(|| panic!(\"in a thread\"))?.join().is_err()",
        );
        let stderr = format!("{}{}", outcome.stderr, outcome.late_stderr);
        assert!(
            stderr.contains("thread 'helper' panicked at ") && stderr.contains("in a thread"),
            "{stderr:?}"
        );
        assert_eq!(outcome.result_text("text/plain").as_deref(), Some("true"));
    });

    checks.check(
        "Python's lock.acquire() without a guard is a compile error, not a silent no-op",
        || {
            let outcome = run(
                &mut kernel,
                "let lock = Lock::new()?;\nlock.acquire()?;\nprintln!(\"locked?\");",
            );
            assert_eq!(outcome.status, ReplyStatus::Error);
            assert!(
                outcome.stdout.is_empty(),
                "the cell ran: {:?}",
                outcome.stdout
            );
            let text = plain(&outcome.error_text());
            assert!(
                text.contains("unused `LockGuard` that must be used")
                    && text.contains("let guard = lock.acquire()?;"),
                "{text}"
            );
            // A Result dropped unseen: the error it may hold would be lost.
            let outcome = run(
                &mut kernel,
                "let mut p = Process::new(|| ());\np.start();\np.join()?",
            );
            assert_eq!(outcome.status, ReplyStatus::Error);
            let text = plain(&outcome.error_text());
            assert!(text.contains("unused `Result` that must be used"), "{text}");
        },
    );

    checks.check(
        "Python's print(conn.recv()): the error says to name the type",
        || {
            let outcome = run(
                &mut kernel,
                "let (parent_conn, child_conn) = Pipe::new()?;\n\
             println!(\"{:?}\", parent_conn.recv()?);",
            );
            assert_eq!(outcome.status, ReplyStatus::Error);
            let text = plain(&outcome.error_text());
            assert!(
                text.contains("cannot be received")
                    && text.contains("name the type: `let value: Vec<i32> = conn.recv()?;`"),
                "{text}"
            );
            let outcome = run_ok(
                &mut kernel,
                "let (a, b) = Pipe::new()?;\na.send(&vec![42, 7])?;\nb.recv::<Vec<i32>>()?",
            );
            assert_eq!(
                outcome.result_text("text/plain").as_deref(),
                Some("[42, 7]")
            );
        },
    );

    checks.check(
        "a :dep that needs the network says how to turn offline mode off",
        || {
            // A crate no cache holds: cargo, offline since the kernel's startup, cannot find it.
            let outcome = run(&mut kernel, ":dep no_such_crate_rust_mp_learner = \"1\"");
            assert_eq!(outcome.status, ReplyStatus::Error);
            let text = plain(&outcome.error_text());
            assert!(
                text.contains("run `:offline 0` in a cell") && !text.contains("Locking"),
                "{text}"
            );
            // The failed :dep is not kept: the next cell compiles as before.
            let next = run_ok(&mut kernel, "println!(\"still fine\");");
            assert_eq!(next.stdout, "still fine\n");
        },
    );

    // Last: it ends the process that runs the cells.
    checks.check(
        "std::process::exit in a cell: the error says the variables are lost",
        || {
            let outcome = run(&mut kernel, "std::process::exit(3);");
            assert_eq!(outcome.status, ReplyStatus::Error);
            assert_eq!(outcome.reply.ename.as_deref(), Some("RuntimeDied"));
            let text = outcome.error_text();
            assert!(
                text.contains("exit status: 3")
                    && text.contains("every variable is lost")
                    && text.contains("run the cells that define the variables again"),
                "{text}"
            );
            let next = run(&mut kernel, "kept");
            assert!(
                next.error_text().contains("cannot find value `kept`"),
                "the variable outlived the process: {}",
                next.error_text()
            );
            let next = run_ok(&mut kernel, "println!(\"the kernel goes on\");");
            assert_eq!(next.stdout, "the kernel goes on\n");
            // The new process reports a panic as the first one did: no backtrace.
            let outcome = run(&mut kernel, "let n: i32 = \"abc\".parse().unwrap();");
            assert_eq!(outcome.reply.ename.as_deref(), Some("panic"));
            let stderr = format!("{}{}", outcome.stderr, outcome.late_stderr);
            assert!(
                stderr.contains("ParseIntError")
                    && !stderr.contains("stack backtrace")
                    && !stderr.contains("evcxr::runtime"),
                "after the restart the kernel's backtrace is shown: {stderr:?}"
            );
        },
    );

    checks.finish();
}
