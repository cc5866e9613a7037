//! Rich displays in a notebook: a cell that ends in a [`Process`], an
//! [`AsyncResult`](crate::AsyncResult) or an [`Error`] shows it as a small HTML card (evcxr calls a
//! value's `evcxr_display` method); a [`Pool`](crate::Pool) shows its worker table and a
//! [`TaskStream`](crate::TaskStream) its chart (both in [`crate::pool`]). Each also sends a
//! `text/plain` form (a `Process`: Python's repr), for clients that show no HTML. What `{}` and
//! `{:?}` print stays as it is.
//!
//! ```
//! use multiprocessing::{Error, Process};
//!
//! let mut p = Process::new(|| ());
//! p.start()?;
//! p.join()?;
//! p.evcxr_display(); // in a notebook: name, pid, state "ended", exit code 0
//! Error::ZeroProcesses.evcxr_display(); // the message and, apart, its fix
//! # Ok::<(), multiprocessing::Error>(())
//! ```

use crate::display::{escape, evcxr_bundle};
use crate::error::Error;
use crate::pool::AsyncResult;
use crate::process::Process;

impl Process {
    /// evcxr calls this to show a `Process` as a cell's result: name, pid, state and exit code.
    pub fn evcxr_display(&self) {
        let state = match (self.pid(), self.is_alive(), self.exitcode()) {
            (_, Err(Error::ProcessClosed { .. }), _) => "closed".to_string(),
            (_, Err(_), _) => "unknown: only the process that created it can ask".to_string(),
            (None, _, _) => "not started".to_string(),
            (Some(_), Ok(true), _) => "running".to_string(),
            (Some(_), Ok(false), None) => "ended".to_string(),
            (Some(_), Ok(false), Some(code)) => format!("ended, exit code {code}"),
        };
        let html = format!(
            "<div><b>Process</b> {} &nbsp; pid {} &nbsp; <i>{}</i>{}</div>",
            escape(self.name()),
            self.pid().map_or("-".to_string(), |p| p.to_string()),
            escape(&state),
            if self.daemon() {
                " &nbsp; (daemon)"
            } else {
                ""
            }
        );
        // Python's repr as the plain text: `<Process name='Process-1' pid=42 parent=7 started>`.
        evcxr_bundle(&[("text/html", &html), ("text/plain", &format!("{self:?}"))]);
    }
}

impl<R> AsyncResult<R> {
    /// evcxr calls this to show an `AsyncResult` as a cell's result: whether it is ready.
    pub fn evcxr_display(&self) {
        let (html, plain) = if self.ready() {
            (
                "<div><b>AsyncResult</b>: <span style=\"color:#2e7d32\">ready</span> (get() returns it)</div>",
                "AsyncResult: ready (get() returns it)",
            )
        } else {
            (
                "<div><b>AsyncResult</b>: <span style=\"color:#ef6c00\">not ready</span> (get() waits for it)</div>",
                "AsyncResult: not ready (get() waits for it)",
            )
        };
        evcxr_bundle(&[("text/html", html), ("text/plain", plain)]);
    }
}

impl Error {
    /// The message's parts: what happened, and the fix (after the first `"; "`), if it names one.
    fn what_and_fix(&self) -> (String, Option<String>) {
        let text = self.to_string();
        match text.split_once("; ") {
            Some((what, fix)) => (what.to_string(), Some(fix.to_string())),
            None => (text, None),
        }
    }

    /// The variant's name (`TaskPanicked`), as the kernel's `ename`.
    fn kind(&self) -> String {
        let debug = format!("{self:?}");
        debug
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or("Error")
            .to_string()
    }

    /// evcxr calls this to show an `Error` as a cell's result: its kind, its message and, apart,
    /// the fix.
    pub fn evcxr_display(&self) {
        let (what, fix) = self.what_and_fix();
        let mut html = format!(
            "<div style=\"border-left:4px solid #e53935;padding:4px 8px;background:#fdecea\">\
             <b style=\"color:#c62828\">Error::{}</b>: {}",
            escape(&self.kind()),
            escape(&what)
        );
        if let Some(fix) = fix {
            html.push_str(&format!("<div><b>Fix:</b> {}</div>", escape(&fix)));
        }
        html.push_str("</div>");
        // As the last line of a Python traceback: the kind, then the message.
        let plain = format!("Error::{}: {self}", self.kind());
        evcxr_bundle(&[("text/html", &html), ("text/plain", &plain)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_parts() {
        let e = Error::ZeroProcesses;
        assert_eq!(e.kind(), "ZeroProcesses");
        let (what, fix) = e.what_and_fix();
        assert_eq!(what, "a pool needs at least one worker process");
        assert!(fix.unwrap().starts_with("use Pool::new(n)"));
    }
}
