//! Rich output shown in the middle of a cell and updated in place later: Jupyter's
//! `display_data` and `update_display_data`, as IPython's `display(..., display_id=True)` and
//! `handle.update(...)` give them to Python.
//!
//! ```
//! use multiprocessing::display::display;
//!
//! // Python: h = display(HTML("<b>0 of 3 done</b>"), display_id=True)
//! let progress = display(&[("text/html", "<b>0 of 3 done</b>"), ("text/plain", "0 of 3 done")])?;
//! for done in 1..=3 {
//!     // Python: h.update(HTML(f"<b>{done} of 3 done</b>"))
//!     progress.update(&[("text/plain", &format!("{done} of 3 done"))])?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! In the kernel each call sends its bundle (MIME type, content) to the notebook at once: the
//! output appears while the cell still runs, and `update` replaces it where it stands (also after
//! the cell has ended). It works from a `Process` child too (its output is relayed through the
//! parent). Outside the kernel (a test, a binary) there is no notebook: the `text/plain` entry,
//! else the first one, is printed as a line instead.
//!
//! How it reaches the notebook: one line on the runtime's stdout, `EVCXR_DISPLAY_DATA ` and a JSON
//! object (`display_id`, `update`, `data`, `metadata`; or `clear_output`), which the project's kernel (patched
//! evcxr, `kernel/patches`) turns into the Jupyter message. Plain evcxr shows that line as text.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The start of a display line on stdout; must match the kernel's `DISPLAY_MARK`.
const DISPLAY_MARK: &str = "EVCXR_DISPLAY_DATA ";

/// One output in the notebook that can be updated in place; made by [`display`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayHandle {
    id: String,
}

/// Shows `bundle` (pairs of MIME type and content, e.g. `("text/html", "<b>hi</b>")`) now, as
/// a new output of the running cell, and returns the handle that updates it.
///
/// Errors: writing to stdout failed (the kernel has gone).
pub fn display(bundle: &[(&str, &str)]) -> io::Result<DisplayHandle> {
    let handle = DisplayHandle {
        id: new_display_id(),
    };
    send(&handle.id, false, bundle)?;
    Ok(handle)
}

/// Clears the running cell's output: at once, or with `wait` when the next output arrives (no
/// flicker when redrawing). Python: `IPython.display.clear_output(wait=...)`. Outside the kernel it
/// does nothing.
///
/// Errors: writing to stdout failed (the kernel has gone).
pub fn clear_output(wait: bool) -> io::Result<()> {
    if !in_kernel() {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{DISPLAY_MARK}{{\"clear_output\":{{\"wait\":{wait}}}}}"
    )?;
    out.flush()
}

impl DisplayHandle {
    /// Replaces what this display shows with `bundle`, where it stands in the notebook.
    ///
    /// Errors: writing to stdout failed (the kernel has gone).
    pub fn update(&self, bundle: &[(&str, &str)]) -> io::Result<()> {
        send(&self.id, true, bundle)
    }

    /// The Jupyter `display_id` (unique in this kernel session).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Escapes text for HTML.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Prints `bundle` (pairs of MIME type and content) as the cell's rich result, as evcxr expects
/// from `evcxr_display`: one block per type, sent together as one `execute_result`. Every
/// caller gives a `text/plain` entry besides its rich one, as IPython always does: a console, a
/// test client or a notebook exported to text shows that one.
pub(crate) fn evcxr_bundle(bundle: &[(&str, &str)]) {
    let mut out = String::new();
    for (mime, content) in bundle {
        out.push_str(&format!(
            "EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT\n"
        ));
    }
    print!("{out}");
}

/// Whether this process runs cells for evcxr (or was forked from one that does).
pub(crate) fn in_kernel() -> bool {
    // Asked at every pool call: read the environment once per copy of the crate (its lock's word is
    // written even by a read, which after a fork costs a page copy).
    static IN_KERNEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_KERNEL.get_or_init(|| std::env::var_os("EVCXR_IS_RUNTIME").is_some())
}

/// Unique across cells and processes: pid, time and a counter (a `static` counter alone would
/// restart in every cell, since evcxr gives each cell its own copy of this crate).
fn new_display_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "rust-mp-{}-{}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn send(id: &str, update: bool, bundle: &[(&str, &str)]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if !in_kernel() {
        let text = bundle
            .iter()
            .find(|(mime, _)| *mime == "text/plain")
            .or(bundle.first())
            .map_or("", |(_, content)| *content);
        writeln!(out, "{text}")?;
        return out.flush();
    }
    let mut line =
        String::with_capacity(64 + bundle.iter().map(|(m, c)| m.len() + c.len()).sum::<usize>());
    line.push_str(DISPLAY_MARK);
    line.push_str("{\"display_id\":");
    push_json_string(&mut line, id);
    line.push_str(if update {
        ",\"update\":true"
    } else {
        ",\"update\":false"
    });
    line.push_str(",\"metadata\":{},\"data\":{");
    for (i, (mime, content)) in bundle.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_json_string(&mut line, mime);
        line.push(':');
        push_json_string(&mut line, content);
    }
    line.push_str("}}\n");
    // One write of one whole line: it cannot interleave with other output on the control channel.
    out.write_all(line.as_bytes())?;
    out.flush()
}

/// Appends `s` as a JSON string literal (escapes quotes, backslashes and control characters,
/// so the line never breaks).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_would_break_the_line() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\r\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\r\u0001é""#);
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(new_display_id(), new_display_id());
    }
}
