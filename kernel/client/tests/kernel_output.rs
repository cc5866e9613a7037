//! The installed kernel, through the client: the crate is preloaded, and output of
//! forked children reaches the right cell whatever its shape (no newline, 10 MB,
//! stderr after the cell ended). One kernel is shared by these checks.

mod common;

use std::time::Instant;

use common::{run, run_ok, start_kernel, Checks};

#[test]
fn crate_is_preloaded_and_child_output_reaches_the_right_cell() {
    let mut kernel = start_kernel("output");
    let mut checks = Checks::default();

    checks.check(
        "crate preloaded: Process, Pool, current_process with no :dep/use",
        || {
            let outcome = run_ok(
                &mut kernel,
                r#"fn double(x: u64) -> u64 { x * 2 }
let mut p = Process::new(|| println!("child is {}", current_process().name()));
p.start()?;
let code = p.join()?;
let pool = Pool::new(2)?;
let doubled = pool.map(double, vec![1, 2, 3])?;
pool.close();
pool.join()?;
println!("exit {code} {:?} main is {}", doubled, current_process().name());"#,
            );
            assert!(
                outcome.stdout.contains("child is Process-"),
                "{:?}",
                outcome.stdout
            );
            assert!(
                outcome
                    .stdout
                    .contains("exit 0 [2, 4, 6] main is MainProcess"),
                "{:?}",
                outcome.stdout
            );
        },
    );

    checks.check(
        "output of forked children arrives in the executing cell",
        || {
            let outcome = run_ok(
                &mut kernel,
                r#"fn shout(x: u32) -> u32 { println!("task {x} ran in a worker"); x }
let mut children: Vec<Process> = (0..4)
    .map(|i| Process::new(move || println!("hello from child {i}")))
    .collect();
for child in children.iter_mut() { child.start()?; }
for child in children.iter() { child.join()?; }
let pool = Pool::new(2)?;
pool.map(shout, 0..4u32)?;
pool.close();
pool.join()?;
println!("parent done");"#,
            );
            let mut lines: Vec<&str> = outcome.stdout.lines().collect();
            assert_eq!(lines.last(), Some(&"parent done"), "{:?}", outcome.stdout);
            lines.sort_unstable();
            let mut expected: Vec<String> = (0..4)
                .map(|i| format!("hello from child {i}"))
                .chain((0..4).map(|i| format!("task {i} ran in a worker")))
                .chain(["parent done".to_string()])
                .collect();
            expected.sort_unstable();
            assert_eq!(lines, expected);
            let next = run_ok(&mut kernel, "println!(\"next cell\");");
            assert_eq!(
                next.stdout, "next cell\n",
                "children's lines leaked into the next cell"
            );
        },
    );

    checks.check(
        "a child's last line without newline: shown whole, no hang",
        || {
            let started = Instant::now();
            let outcome = run_ok(
                &mut kernel,
                r#"let mut p = Process::new(|| { print!("first line\nno newline at the end"); });
p.start()?;
p.join()?;
println!("parent after join");"#,
            );
            eprintln!(
                "  no-newline cell took {}",
                common::seconds(started.elapsed())
            );
            assert_eq!(
                outcome.stdout, "first line\nno newline at the end\nparent after join\n",
                "the unterminated line must be completed, not glued or lost"
            );
            let next = run_ok(&mut kernel, "println!(\"next cell\");");
            assert_eq!(next.stdout, "next cell\n");
        },
    );

    checks.check(
        "a child printing 10 MB: every line arrives, in order, no hang",
        || {
            let started = Instant::now();
            let outcome = run_ok(
                &mut kernel,
                r#"let mut p = Process::new(|| {
    let filler = "x".repeat(1000);
    for i in 0..10_000 { println!("{i:05} {filler}"); }
});
p.start()?;
let code = p.join()?;
println!("joined {code}");"#,
            );
            let took = started.elapsed();
            let lines: Vec<&str> = outcome.stdout.lines().collect();
            eprintln!(
                "  10 MB cell took {} ({} bytes of stdout, {} lines)",
                common::seconds(took),
                outcome.stdout.len(),
                lines.len()
            );
            assert_eq!(lines.len(), 10_001);
            let filler = "x".repeat(1000);
            for (i, line) in lines[..10_000].iter().enumerate() {
                assert_eq!(*line, format!("{i:05} {filler}"), "line {i}");
            }
            assert_eq!(lines[10_000], "joined 0");
        },
    );

    checks.check("a child writing to stderr after its cell ended", || {
        // Cell A starts a child that writes one stderr line 700 ms later and returns
        // without joining. Cell B runs while the line is written. Cell C joins.
        //
        // What we see, and why: the child's stderr is a pipe to the runtime, which the
        // crate drains only while a crate call runs (there are no background threads),
        // so the line is shown by the cell that next waits on that child (C, the
        // join) - never by A, never by B, exactly once. Without the relay, evcxr would
        // attribute stderr written after a cell to the last executed cell, whichever.
        let a = run_ok(
            &mut kernel,
            r#"let mut late = Process::new(|| {
    std::thread::sleep(std::time::Duration::from_millis(700));
    eprintln!("late stderr line");
});
late.start()?;
println!("started");"#,
        );
        let b = run_ok(
            &mut kernel,
            "std::thread::sleep(std::time::Duration::from_millis(1500));\nprintln!(\"slept\");",
        );
        let c = run_ok(&mut kernel, "late.join()?;\nprintln!(\"joined\");");
        let stray = kernel.take_stray();
        eprintln!(
            "  stderr: A {:?}, B {:?}, C {:?} (C late part {:?}), stray {}",
            a.stderr,
            b.stderr,
            c.stderr,
            c.late_stderr,
            stray.len()
        );
        let count = |text: &str| text.matches("late stderr line").count();
        assert_eq!(
            count(&a.stderr) + count(&b.stderr),
            0,
            "line shown before the join"
        );
        assert_eq!(
            count(&c.stderr),
            1,
            "line not shown exactly once by the joining cell"
        );
        assert!(stray
            .iter()
            .all(|(_, m)| !m.content.to_string().contains("late stderr line")));
        assert_eq!(c.stdout, "joined\n");
    });

    checks.check("stdout and stderr of one child keep their streams", || {
        let outcome = run(
            &mut kernel,
            r#"let mut p = Process::new(|| { println!("to stdout"); eprintln!("to stderr"); });
p.start()?;
p.join()?;"#,
        );
        assert_eq!(outcome.stdout, "to stdout\n");
        assert_eq!(outcome.stderr, "to stderr\n");
    });

    checks.finish();
}
