// Runs in every process that runs the cells: at startup (with prelude.rs, one compilation) and
// again after that process was started anew (a cell ended it, an interrupt had to kill it, or
// `:clear`), which keeps no process state: kernel/patches/0015-runtime-start-code.patch.
// A panic in a cell: std's report without the backtrace that evcxr forces on (RUST_BACKTRACE=1):
// its frames are the kernel's own (`evcxr::runtime::Runtime::run_loop`, ...) and the cell's error
// already carries the message. Children and pool workers report the same way (the crate's own
// hook). `RUST_BACKTRACE=full` in the kernel's environment keeps std's report.
{
    let std_report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value == "full") {
            return std_report(info);
        }
        // The thread that runs the cells has no name in the cells' std (std named it in the
        // kernel's own copy): only other threads are named, as the children's reports do.
        let thread = std::thread::current()
            .name()
            .map(|name| format!("thread '{name}' "))
            .unwrap_or_default();
        let place = info
            .location()
            .map(|at| format!(" at {}:{}:{}", at.file(), at.line(), at.column()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".into());
        // One write: stderr reaches the notebook as written, piece by piece.
        let report = format!("{thread}panicked{place}:\n{message}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
    }));
}
