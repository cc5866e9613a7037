//! Re-running `.ipynb` notebooks through a kernel and comparing the fresh outputs
//! with the saved ones, nbval style; and checking the notebooks as sources: their
//! cells formatted by `rustfmt`, their tags known, every code cell run and saved.
//!
//! Per code cell, by tag (cell metadata `tags`, [`KNOWN_TAGS`]):
//! - `nbval-skip`: not run.
//! - `nbval-ignore-output`: run, outputs not compared (an error still fails).
//! - `raises-exception`: the cell shows an error on purpose. It must fail, and fail the
//!   way its saved outputs show (see [`judge`]); unlike nbval, a tagged cell that
//!   succeeds fails the test.
//! - `unordered-output` (ours): stdout and stderr are compared as sorted multisets
//!   of lines, for cells where several processes print in any order.
//!
//! Not compared: the crate's live pool progress display (a `display_data` whose text is the
//! progress bar or its one-line summary, see [`is_progress_display`]): it appears only when a pool
//! call runs for more than about a second, so whether a cell has one depends on the machine's load.
//!
//! Compared: all stdout text, all stderr text (evcxr's late stderr included, see
//! [`crate::KernelOptions::stderr_grace`]), `execute_result`/`display_data` data per
//! MIME type except binary images (a display updated in place, such as a pool's progress,
//! in its last state, as a front end shows it), and errors as `ename: evalue` (tracebacks
//! are not compared, as in nbval). Every text goes through the [`Sanitizer`] first. A saved
//! cell with no `execution_count` and no outputs has never been run: it is run but
//! not compared.
//!
//! "Error" means what the protocol says: an error `execute_reply` or an iopub `error`
//! (compile errors, a killed runtime). Stock evcxr 0.22 reports a `?` error and a panic
//! in a cell only as stderr text with status "ok"; a kernel that reports them as errors
//! (status "error" with `ename`/`evalue`/`traceback`) is handled too: see [`judge`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{json, Value};

use crate::client::{json_text, KernelClient, Output};
use crate::error::{Error, Result};
use crate::messages::ErrorContent;

/// Tag: do not run the cell.
pub const TAG_SKIP: &str = "nbval-skip";
/// Tag: run the cell, do not compare its outputs.
pub const TAG_IGNORE_OUTPUT: &str = "nbval-ignore-output";
/// Tag: the cell shows an error on purpose: it must fail, the way its saved outputs show.
/// (JupyterLab sends such a cell with `stop_on_error: false`, so Run All goes on after it.)
pub const TAG_RAISES: &str = "raises-exception";
/// Tag (ours): compare stdout/stderr lines as sorted multisets.
pub const TAG_UNORDERED: &str = "unordered-output";
/// Every tag a notebook cell may carry; another one is a typo (see [`check_structure`]).
pub const KNOWN_TAGS: &[&str] = &[TAG_SKIP, TAG_IGNORE_OUTPUT, TAG_RAISES, TAG_UNORDERED];

/// MIME types whose data is not compared (base64 images differ by encoder details).
const UNCOMPARED_MIME_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif"];

/// One cell of a notebook.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Position in the notebook, from 0.
    pub index: usize,
    /// "code", "markdown" or "raw".
    pub cell_type: String,
    /// The source text.
    pub source: String,
    /// Cell tags.
    pub tags: Vec<String>,
    /// Saved execution count (`None` if never run).
    pub execution_count: Option<i64>,
    /// Saved outputs.
    pub outputs: Vec<Output>,
}

impl Cell {
    /// True if the cell has `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// True if the saved cell was never executed (nothing to compare with).
    pub fn never_run(&self) -> bool {
        self.execution_count.is_none() && self.outputs.is_empty()
    }
}

/// A notebook file.
#[derive(Debug, Clone)]
pub struct Notebook {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its cells.
    pub cells: Vec<Cell>,
    /// The kernel spec name in its metadata, if any.
    pub kernel_name: Option<String>,
}

impl Notebook {
    /// Reads an nbformat 4 notebook.
    pub fn load(path: &Path) -> Result<Notebook> {
        let text =
            std::fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
        let json: Value =
            serde_json::from_str(&text).map_err(Error::json(path.display().to_string()))?;
        Notebook::from_json(path, &json)
    }

    /// Builds a notebook from its JSON.
    pub fn from_json(path: &Path, json: &Value) -> Result<Notebook> {
        let bad = |reason: &str| Error::Protocol(format!("{}: {reason}", path.display()));
        let cells = json
            .get("cells")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no cells array"))?;
        let cells = cells
            .iter()
            .enumerate()
            .map(|(index, cell)| Cell {
                index,
                cell_type: cell["cell_type"].as_str().unwrap_or_default().to_string(),
                source: json_text(&cell["source"]).unwrap_or_default(),
                tags: cell["metadata"]["tags"]
                    .as_array()
                    .map(|tags| {
                        tags.iter()
                            .filter_map(|t| t.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                execution_count: cell["execution_count"].as_i64(),
                outputs: cell["outputs"]
                    .as_array()
                    .map(|outputs| outputs.iter().filter_map(output_from_json).collect())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Notebook {
            path: path.to_path_buf(),
            cells,
            kernel_name: json["metadata"]["kernelspec"]["name"]
                .as_str()
                .map(str::to_string),
        })
    }
}

/// One saved output (nbformat) as an [`Output`]; unknown types give `None`.
pub fn output_from_json(output: &Value) -> Option<Output> {
    match output["output_type"].as_str()? {
        "stream" => Some(Output::Stream {
            name: output["name"].as_str()?.to_string(),
            text: json_text(&output["text"])?,
        }),
        kind @ ("execute_result" | "display_data") => Some(Output::Data {
            kind: kind.to_string(),
            data: output["data"]
                .as_object()?
                .iter()
                .map(|(mime, data)| (mime.clone(), data.clone()))
                .collect(),
        }),
        "error" => Some(Output::Error(ErrorContent {
            ename: output["ename"].as_str().unwrap_or_default().to_string(),
            evalue: output["evalue"].as_str().unwrap_or_default().to_string(),
            traceback: output["traceback"]
                .as_array()
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })),
        _ => None,
    }
}

/// An [`Output`] as nbformat JSON (for writing notebooks).
pub fn output_to_json(output: &Output, execution_count: Option<i64>) -> Value {
    match output {
        Output::Stream { name, text } => {
            json!({"output_type": "stream", "name": name, "text": text})
        }
        Output::Data { kind, data } if kind == "execute_result" => json!({
            "output_type": "execute_result", "data": data, "metadata": {},
            "execution_count": execution_count,
        }),
        Output::Data { data, .. } => {
            json!({"output_type": "display_data", "data": data, "metadata": {}})
        }
        Output::Error(error) => json!({
            "output_type": "error", "ename": error.ename, "evalue": error.evalue,
            "traceback": error.traceback,
        }),
    }
}

/// Regex replacements applied to every compared text, read from a file in nbval's
/// `--nbval-sanitize-with` format:
///
/// ```text
/// [pids]
/// regex: pid \d+
/// replace: pid PID
/// ```
#[derive(Debug, Clone, Default)]
pub struct Sanitizer {
    rules: Vec<(Regex, String)>,
}

impl Sanitizer {
    /// Parses the file format above (`#` and `;` start comments; sections are names only).
    pub fn parse(text: &str) -> std::result::Result<Sanitizer, String> {
        let mut rules = Vec::new();
        let mut pending: Option<(usize, Regex)> = None;
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') && line.ends_with(']') {
                if let Some((at, _)) = pending {
                    return Err(format!("line {at}: regex without replace"));
                }
                continue;
            }
            if let Some(pattern) = line.strip_prefix("regex:") {
                if let Some((at, _)) = pending {
                    return Err(format!("line {at}: regex without replace"));
                }
                let regex = Regex::new(pattern.trim())
                    .map_err(|error| format!("line {number}: {error}"))?;
                pending = Some((number, regex));
            } else if let Some(replacement) = line.strip_prefix("replace:") {
                let (_, regex) = pending
                    .take()
                    .ok_or_else(|| format!("line {number}: replace without regex"))?;
                rules.push((regex, replacement.trim().to_string()));
            } else {
                return Err(format!("line {number}: expected `regex:` or `replace:`"));
            }
        }
        if let Some((at, _)) = pending {
            return Err(format!("line {at}: regex without replace"));
        }
        Ok(Sanitizer { rules })
    }

    /// Reads and parses a sanitizer file.
    pub fn load(path: &Path) -> Result<Sanitizer> {
        let text =
            std::fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
        Sanitizer::parse(&text)
            .map_err(|reason| Error::Protocol(format!("{}: {reason}", path.display())))
    }

    /// Applies every rule in order.
    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (regex, replacement) in &self.rules {
            text = regex.replace_all(&text, replacement.as_str()).into_owned();
        }
        text
    }
}

/// The parts of a cell's outputs that are compared, sanitized.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparable {
    /// stdout text (lines sorted for `unordered-output`).
    pub stdout: String,
    /// stderr text (lines sorted for `unordered-output`).
    pub stderr: String,
    /// MIME type -> text of rich results.
    pub data: BTreeMap<String, String>,
    /// `ename: evalue` of each error.
    pub errors: Vec<String>,
}

impl Comparable {
    /// Extracts and sanitizes what is compared from `outputs`.
    pub fn new(outputs: &[Output], sanitizer: &Sanitizer, unordered: bool) -> Comparable {
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut comparable = Comparable::default();
        for output in outputs {
            match output {
                Output::Stream { name, text } if name == "stdout" => stdout.push_str(text),
                Output::Stream { text, .. } => stderr.push_str(text),
                Output::Data { data, .. } if is_progress_display(data) => {}
                Output::Data { data, .. } => {
                    for (mime, value) in data {
                        if UNCOMPARED_MIME_TYPES.contains(&mime.as_str()) {
                            continue;
                        }
                        let text = json_text(value).unwrap_or_else(|| value.to_string());
                        comparable.data.insert(mime.clone(), sanitizer.apply(&text));
                    }
                }
                Output::Error(error) => comparable
                    .errors
                    .push(sanitizer.apply(&format!("{}: {}", error.ename, error.evalue))),
            }
        }
        let arrange = |text: &str| {
            let text = sanitizer.apply(text);
            if unordered {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.sort_unstable();
                lines.iter().map(|line| format!("{line}\n")).collect()
            } else {
                text
            }
        };
        comparable.stdout = arrange(&stdout);
        comparable.stderr = arrange(&stderr);
        comparable
    }

    /// A description of each difference between `saved` and `fresh` (empty if equal).
    pub fn differences(saved: &Comparable, fresh: &Comparable) -> Vec<String> {
        let mut differences = Vec::new();
        let mut compare = |what: &str, saved: &str, fresh: &str| {
            if saved != fresh {
                differences.push(format!(
                    "{what} differs:\n--- saved\n{}\n--- fresh\n{}",
                    indent(saved),
                    indent(fresh)
                ));
            }
        };
        compare("stdout", &saved.stdout, &fresh.stdout);
        compare("stderr", &saved.stderr, &fresh.stderr);
        let mimes: std::collections::BTreeSet<&String> =
            saved.data.keys().chain(fresh.data.keys()).collect();
        for mime in mimes {
            compare(
                mime,
                saved.data.get(mime).map_or("<none>", String::as_str),
                fresh.data.get(mime).map_or("<none>", String::as_str),
            );
        }
        compare("errors", &saved.errors.join("\n"), &fresh.errors.join("\n"));
        differences
    }
}

/// Whether a rich output is the crate's pool progress display (`src/pool/watch.rs`): its plain
/// text is the bar (`[#####...............]  25% map: 2/8 tasks, ...`; without a bar when the
/// number of tasks is not known yet) or, once the call ended, the
/// summary (`map: 8 tasks in 2.1 s (3.8/s)`, `map: failed after 1.0 s at 2/8 tasks: ...`).
pub fn is_progress_display(data: &BTreeMap<String, Value>) -> bool {
    static PATTERN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        Regex::new(
            r"^((\[[#.]{20}\] +\d+% )?\w+: \d+(/\d+)? tasks, .+ elapsed|\w+: \d+ tasks in .+/s\)$|\w+: failed after .+ at \d+/\d+ tasks: )",
        )
        .expect("a valid pattern")
    });
    data.get("text/plain")
        .and_then(json_text)
        .is_some_and(|text| pattern.is_match(text.trim_end()))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What happened to one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ran and matched (or was not compared, with the reason).
    Passed(&'static str),
    /// Not run (`nbval-skip`).
    Skipped,
    /// Failed, with the reason.
    Failed(String),
}

/// The result of one code cell.
#[derive(Debug, Clone)]
pub struct CellReport {
    /// Cell index in the notebook.
    pub index: usize,
    /// The verdict.
    pub verdict: Verdict,
    /// How long the cell ran.
    pub elapsed: Duration,
    /// The fresh outputs (empty if not run).
    pub outputs: Vec<Output>,
}

/// Runs every code cell of `notebook` in order on `kernel` and judges each.
/// A cell that cannot complete (time-out, dead kernel) fails and ends the run.
pub fn run_notebook(
    kernel: &mut KernelClient,
    notebook: &Notebook,
    sanitizer: &Sanitizer,
    cell_timeout: Duration,
) -> Vec<CellReport> {
    let mut reports = Vec::new();
    for cell in notebook.cells.iter().filter(|c| c.cell_type == "code") {
        if cell.has_tag(TAG_SKIP) {
            reports.push(CellReport {
                index: cell.index,
                verdict: Verdict::Skipped,
                elapsed: Duration::ZERO,
                outputs: Vec::new(),
            });
            continue;
        }
        let started = Instant::now();
        let outcome = match kernel.execute_with_timeout(&cell.source, cell_timeout) {
            Ok(outcome) => outcome,
            Err(error) => {
                reports.push(CellReport {
                    index: cell.index,
                    verdict: Verdict::Failed(format!("did not complete: {error}")),
                    elapsed: started.elapsed(),
                    outputs: Vec::new(),
                });
                break;
            }
        };
        let verdict = judge(cell, &outcome.outputs, outcome.is_error(), sanitizer);
        reports.push(CellReport {
            index: cell.index,
            verdict,
            elapsed: started.elapsed(),
            outputs: outcome.outputs,
        });
    }
    reports
}

/// Judges one cell's fresh outputs against its saved ones and tags.
///
/// A cell tagged [`TAG_RAISES`] must fail: an error reply or an iopub `error` (a kernel
/// that reports cell errors), or, from stock evcxr which answers "ok" to a `?` error or
/// a panic, text on stderr. Then its outputs are compared as usual when the saved run
/// failed the same way (both with an `error` output, or both without); when the saved
/// outputs come from the other kind of kernel, its stdout and rich data are still
/// compared, and each line of the saved failure (stderr, `ename: evalue`, traceback)
/// must be among the fresh failure's lines.
pub fn judge(cell: &Cell, fresh: &[Output], errored: bool, sanitizer: &Sanitizer) -> Verdict {
    let expects_error = cell.has_tag(TAG_RAISES);
    if errored && !expects_error {
        let text: Vec<String> = fresh
            .iter()
            .filter_map(|output| match output {
                Output::Error(error) => Some(format!("{}: {}", error.ename, error.evalue)),
                Output::Stream { name, text } if name == "stderr" => Some(text.clone()),
                _ => None,
            })
            .collect();
        return Verdict::Failed(format!(
            "the cell failed (not tagged {TAG_RAISES}):\n{}",
            indent(&text.join("\n"))
        ));
    }
    if expects_error && !errored && !writes_stderr(fresh) {
        return Verdict::Failed(format!(
            "tagged {TAG_RAISES}, but the cell did not fail: no error reply, no error output, \
             nothing on stderr"
        ));
    }
    if cell.has_tag(TAG_IGNORE_OUTPUT) {
        // Stock evcxr reports a `?` error or a panic in a cell only as stderr text with status
        // "ok", so an ignored cell that is silent on stderr in the saved run must stay silent now.
        if !expects_error
            && !writes_stderr(&cell.outputs)
            && writes_stderr(fresh)
            && !cell.never_run()
        {
            let text: Vec<&str> = fresh
                .iter()
                .filter_map(|output| match output {
                    Output::Stream { name, text } if name == "stderr" => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            return Verdict::Failed(format!(
                "wrote to stderr, which the saved run did not (an error or a panic?):\n{}",
                indent(&text.join(""))
            ));
        }
        return Verdict::Passed("outputs ignored (nbval-ignore-output)");
    }
    if cell.never_run() {
        return Verdict::Passed("no saved outputs (never run)");
    }
    let unordered = cell.has_tag(TAG_UNORDERED);
    let saved_kind_error = has_error_output(&cell.outputs);
    let fresh_kind_error = has_error_output(fresh);
    let saved = Comparable::new(&cell.outputs, sanitizer, unordered);
    let fresh_comparable = Comparable::new(fresh, sanitizer, unordered);
    if expects_error && saved_kind_error != fresh_kind_error {
        // The saved failure was reported by the other kind of kernel (stderr text with status
        // "ok" against an error reply): compare what does not depend on that, and the lines.
        let mut differences = Comparable::differences(
            &Comparable {
                stderr: String::new(),
                errors: Vec::new(),
                ..saved
            },
            &Comparable {
                stderr: String::new(),
                errors: Vec::new(),
                ..fresh_comparable
            },
        );
        let fresh_lines = failure_lines(fresh, sanitizer);
        let missing: Vec<String> = failure_lines(&cell.outputs, sanitizer)
            .into_iter()
            .filter(|line| !fresh_lines.contains(line))
            .collect();
        if !missing.is_empty() {
            differences.push(format!(
                "the failure differs (saved by a kernel that reports cell errors {}, run now on \
                 one that reports them {}; re-save the outputs if only the form changed):\n\
                 --- saved lines missing now\n{}\n--- fresh failure\n{}",
                if saved_kind_error {
                    "as error replies"
                } else {
                    "as stderr text"
                },
                if fresh_kind_error {
                    "as error replies"
                } else {
                    "as stderr text"
                },
                indent(&missing.join("\n")),
                indent(&fresh_lines.join("\n"))
            ));
        }
        return if differences.is_empty() {
            Verdict::Passed("failed as tagged; outputs match (failure compared by lines)")
        } else {
            Verdict::Failed(differences.join("\n"))
        };
    }
    let differences = Comparable::differences(&saved, &fresh_comparable);
    if differences.is_empty() {
        Verdict::Passed(if expects_error {
            "failed as tagged; outputs match"
        } else {
            "outputs match"
        })
    } else {
        Verdict::Failed(differences.join("\n"))
    }
}

fn writes_stderr(outputs: &[Output]) -> bool {
    outputs
        .iter()
        .any(|output| matches!(output, Output::Stream { name, .. } if name == "stderr"))
}

fn has_error_output(outputs: &[Output]) -> bool {
    outputs
        .iter()
        .any(|output| matches!(output, Output::Error(_)))
}

/// The non-empty lines that tell how a cell failed: its stderr, and each error's
/// `ename: evalue`, evalue and traceback, without terminal colours, sanitized and trimmed.
fn failure_lines(outputs: &[Output], sanitizer: &Sanitizer) -> Vec<String> {
    let mut text = String::new();
    for output in outputs {
        match output {
            Output::Stream { name, text: t } if name == "stderr" => text.push_str(t),
            Output::Error(error) => {
                text.push_str(&format!(
                    "{}: {}\n{}\n",
                    error.ename, error.evalue, error.evalue
                ));
                for line in &error.traceback {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            _ => {}
        }
    }
    let text = sanitizer.apply(&strip_ansi(&text));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// `text` without ANSI escape sequences (terminal colours in tracebacks).
fn strip_ansi(text: &str) -> String {
    static ANSI: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    ANSI.get_or_init(|| Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]").expect("valid regex"))
        .replace_all(text, "")
        .into_owned()
}

/// Writes the fresh outputs of `reports` into the notebook file at `path` (cells that
/// ran get their outputs and an execution count; everything else is kept), formatted as
/// nbformat writes it (one-space indent, sorted keys, trailing newline).
pub fn save_outputs(path: &Path, reports: &[CellReport]) -> Result<()> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
    let mut json: Value =
        serde_json::from_str(&text).map_err(Error::json(path.display().to_string()))?;
    let Some(cells) = json.get_mut("cells").and_then(Value::as_array_mut) else {
        return Err(Error::Protocol(format!(
            "{}: no cells array",
            path.display()
        )));
    };
    for (count, report) in reports
        .iter()
        .filter(|r| r.verdict != Verdict::Skipped)
        .enumerate()
    {
        let Some(cell) = cells.get_mut(report.index) else {
            continue;
        };
        let execution_count = Some(count as i64 + 1);
        cell["execution_count"] = json!(execution_count);
        cell["outputs"] = Value::Array(
            report
                .outputs
                .iter()
                .map(|output| output_to_json(output, execution_count))
                .collect(),
        );
    }
    write_notebook_json(path, json)
}

/// Writes notebook JSON the way nbformat (and so JupyterLab) writes it: multi-line texts
/// as lists of lines, one-space indent, sorted keys, non-ASCII as is, a final newline. So
/// a notebook saved here and one saved by JupyterLab differ only where their content does.
pub fn write_notebook_json(path: &Path, mut json: Value) -> Result<()> {
    split_lines(&mut json);
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(&json, &mut serializer).map_err(Error::json("notebook"))?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).map_err(Error::io(format!("write {}", path.display())))
}

/// nbformat's `split_lines`: cell sources, stream texts and the `text/*`, SVG and
/// JavaScript data of rich outputs become lists of lines (Python's `splitlines(True)`).
fn split_lines(json: &mut Value) {
    let split = |value: &mut Value| {
        if let Value::String(text) = value {
            *value = Value::Array(
                python_splitlines(text)
                    .into_iter()
                    .map(|line| Value::String(line.to_string()))
                    .collect(),
            );
        }
    };
    let Some(cells) = json.get_mut("cells").and_then(Value::as_array_mut) else {
        return;
    };
    for cell in cells {
        if let Some(source) = cell.get_mut("source") {
            split(source);
        }
        let Some(outputs) = cell.get_mut("outputs").and_then(Value::as_array_mut) else {
            continue;
        };
        for output in outputs {
            if let Some(text) = output.get_mut("text") {
                split(text);
            }
            if let Some(data) = output.get_mut("data").and_then(Value::as_object_mut) {
                for (mime, value) in data.iter_mut() {
                    if mime.starts_with("text/")
                        || mime == "image/svg+xml"
                        || mime == "application/javascript"
                    {
                        split(value);
                    }
                }
            }
        }
    }
}

/// Python's `str.splitlines(keepends=True)`.
fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let end = match c {
            '\r' if chars.peek().is_some_and(|&(_, next)| next == '\n') => {
                chars.next();
                at + 2
            }
            '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => at + c.len_utf8(),
            _ => continue,
        };
        lines.push(&text[start..end]);
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// How the Rust in code cells is formatted: `rustfmt` (the `RUSTFMT` environment variable,
/// else the one on `PATH`, as `cargo fmt` finds it) on each cell wrapped in a function, so
/// that a cell's statements, items and final expression are formatted as in the crate.
/// Leading evcxr commands (`:dep ...`) are kept as they are, and so is a final `};` (see
/// [`CellFormatter::format`]).
#[derive(Debug, Clone)]
pub struct CellFormatter {
    rustfmt: PathBuf,
    edition: String,
}

impl Default for CellFormatter {
    fn default() -> Self {
        CellFormatter {
            rustfmt: std::env::var_os("RUSTFMT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("rustfmt")),
            edition: "2021".to_string(),
        }
    }
}

/// A code cell whose source is not formatted as `rustfmt` would write it.
#[derive(Debug, Clone)]
pub struct Unformatted {
    /// Cell index in the notebook.
    pub index: usize,
    /// The source as `rustfmt` writes it.
    pub formatted: String,
    /// The lines that differ, as `-` (now) and `+` (formatted) lines.
    pub diff: String,
}

/// The wrapper a cell is formatted in. The cell's lines are indented by four spaces inside
/// it and dedented after, so lines inside multi-line string literals come back unchanged;
/// the width limit is the crate's (100) plus that indent.
const WRAP_OPEN: &str = "fn __notebook_cell() {\n";
const WRAP_CLOSE: &str = "}\n";
const WRAP_INDENT: &str = "    ";

impl CellFormatter {
    /// The formatter with `rustfmt` at `rustfmt`.
    pub fn with_rustfmt(rustfmt: impl Into<PathBuf>) -> CellFormatter {
        CellFormatter {
            rustfmt: rustfmt.into(),
            ..CellFormatter::default()
        }
    }

    /// `source` (a code cell's text) formatted; an error when rustfmt cannot parse it or
    /// cannot be run. One departure from rustfmt: a cell ending in `};` keeps that `;`, which
    /// keeps evcxr from showing the `()` of a final `for` loop or `match` as the cell's result.
    pub fn format(&self, source: &str) -> std::result::Result<String, String> {
        let mut commands = String::new();
        let mut rest = source;
        while rest.starts_with(':') {
            let end = rest.find('\n').map_or(rest.len(), |at| at + 1);
            commands.push_str(&rest[..end]);
            rest = &rest[end..];
        }
        if rest.trim().is_empty() {
            return Ok(source.to_string());
        }
        let mut wrapped = String::from(WRAP_OPEN);
        for line in rest.lines() {
            if !line.is_empty() {
                wrapped.push_str(WRAP_INDENT);
            }
            wrapped.push_str(line);
            wrapped.push('\n');
        }
        wrapped.push_str(WRAP_CLOSE);
        let formatted = self.rustfmt(&wrapped)?;
        let body = formatted
            .strip_prefix(WRAP_OPEN)
            .and_then(|body| body.strip_suffix(WRAP_CLOSE))
            .ok_or_else(|| format!("rustfmt changed the wrapper around the cell:\n{formatted}"))?;
        let mut out = commands;
        for line in body.lines() {
            out.push_str(line.strip_prefix(WRAP_INDENT).unwrap_or(line));
            out.push('\n');
        }
        // A cell has no final newline (as JupyterLab saves it).
        let mut out = out.trim_end_matches('\n').to_string();
        // evcxr shows the value of a cell's final expression, the `()` of a final loop or
        // `match` included, so such a cell ends in `};`; rustfmt drops that `;`: keep it.
        if source.trim_end().ends_with("};") && out.ends_with('}') {
            out.push(';');
        }
        Ok(out)
    }

    fn rustfmt(&self, code: &str) -> std::result::Result<String, String> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(&self.rustfmt)
            .args(["--edition", &self.edition, "--emit", "stdout", "--quiet"])
            .args(["--config", "max_width=104"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot run {}: {error}", self.rustfmt.display()))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = code.to_string();
        // Written from a thread: rustfmt may fill its stdout pipe before it has read all input.
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child
            .wait_with_output()
            .map_err(|error| format!("{}: {error}", self.rustfmt.display()))?;
        let _ = writer.join();
        if !output.status.success() {
            return Err(format!(
                "rustfmt failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ));
        }
        String::from_utf8(output.stdout).map_err(|error| format!("rustfmt output: {error}"))
    }

    /// The code cells of `notebook` that rustfmt would change; an error names the first
    /// cell rustfmt cannot format.
    pub fn unformatted(
        &self,
        notebook: &Notebook,
    ) -> std::result::Result<Vec<Unformatted>, String> {
        let mut found = Vec::new();
        for cell in notebook.cells.iter().filter(|c| c.cell_type == "code") {
            let formatted = self
                .format(&cell.source)
                .map_err(|error| format!("cell {}: {error}", cell.index))?;
            if formatted != cell.source {
                found.push(Unformatted {
                    index: cell.index,
                    diff: line_diff(&cell.source, &formatted),
                    formatted,
                });
            }
        }
        Ok(found)
    }
}

/// The differing middle of two texts, line by line (the common first and last lines cut).
fn line_diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let head = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let tail = old[head..]
        .iter()
        .rev()
        .zip(new[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let mut diff = format!("@@ line {} @@\n", head + 1);
    for line in &old[head..old.len() - tail] {
        diff.push_str(&format!("-{line}\n"));
    }
    for line in &new[head..new.len() - tail] {
        diff.push_str(&format!("+{line}\n"));
    }
    diff
}

/// Replaces the sources of the given cells (index, new source) in the notebook file.
pub fn set_sources(path: &Path, sources: &[(usize, String)]) -> Result<()> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
    let mut json: Value =
        serde_json::from_str(&text).map_err(Error::json(path.display().to_string()))?;
    let Some(cells) = json.get_mut("cells").and_then(Value::as_array_mut) else {
        return Err(Error::Protocol(format!(
            "{}: no cells array",
            path.display()
        )));
    };
    for (index, source) in sources {
        if let Some(cell) = cells.get_mut(*index) {
            cell["source"] = Value::String(source.clone());
        }
    }
    write_notebook_json(path, json)
}

/// What is wrong with a notebook file as a source of this project (empty if nothing):
/// the kernel it names, unknown cell tags (typos), missing or repeated cell ids, and code
/// cells never run (their outputs could not be compared).
pub fn check_structure(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
    let json: Value =
        serde_json::from_str(&text).map_err(Error::json(path.display().to_string()))?;
    let notebook = Notebook::from_json(path, &json)?;
    let mut problems = Vec::new();
    if notebook.kernel_name.as_deref() != Some("rust-multiprocessing") {
        problems.push(format!(
            "metadata.kernelspec.name is {:?}, not \"rust-multiprocessing\" (choose the kernel \
             \"Rust (multiprocessing)\")",
            notebook.kernel_name
        ));
    }
    let mut ids = std::collections::BTreeSet::new();
    for (cell, raw) in notebook
        .cells
        .iter()
        .zip(json["cells"].as_array().into_iter().flatten())
    {
        match raw["id"].as_str() {
            None => problems.push(format!(
                "cell {}: no id (nbformat 4.5 wants one)",
                cell.index
            )),
            Some(id) if !ids.insert(id.to_string()) => {
                problems.push(format!("cell {}: id {id:?} is used twice", cell.index))
            }
            Some(_) => {}
        }
        for tag in &cell.tags {
            if !KNOWN_TAGS.contains(&tag.as_str()) {
                problems.push(format!(
                    "cell {}: unknown tag {tag:?} (known: {})",
                    cell.index,
                    KNOWN_TAGS.join(", ")
                ));
            }
        }
        if cell.cell_type == "code" && !cell.has_tag(TAG_SKIP) && cell.never_run() {
            problems.push(format!(
                "cell {}: never run, no saved outputs (run the notebook and save its outputs)",
                cell.index
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str, text: &str) -> Output {
        Output::Stream {
            name: name.into(),
            text: text.into(),
        }
    }

    fn cell(tags: &[&str], outputs: Vec<Output>) -> Cell {
        Cell {
            index: 0,
            cell_type: "code".into(),
            source: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            execution_count: Some(2),
            outputs,
        }
    }

    fn sanitizer() -> Sanitizer {
        Sanitizer::parse(
            "# pids\n[pids]\nregex: pid \\d+\nreplace: pid PID\n\n[timings]\nregex: \\d+(\\.\\d+)? ?ms\nreplace: T ms\n",
        )
        .unwrap()
    }

    #[test]
    fn sanitizer_parses_nbval_format_and_applies_in_order() {
        let s = sanitizer();
        assert_eq!(
            s.apply("worker pid 123 took 4.5 ms"),
            "worker pid PID took T ms"
        );
        assert!(Sanitizer::parse("regex: a")
            .unwrap_err()
            .contains("without replace"));
        assert!(Sanitizer::parse("replace: a")
            .unwrap_err()
            .contains("without regex"));
        assert!(Sanitizer::parse("regex: (\nreplace: x")
            .unwrap_err()
            .contains("line 1"));
        assert!(Sanitizer::parse("junk").unwrap_err().contains("expected"));
    }

    #[test]
    fn the_project_sanitizer_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sanitize.cfg");
        let s = Sanitizer::load(&path).unwrap();
        assert_eq!(s.apply("pid 4242"), s.apply("pid 17"));
    }

    #[test]
    fn reads_saved_outputs_of_every_kind() {
        let json = json!({
            "metadata": {"kernelspec": {"name": "rust-multiprocessing"}},
            "cells": [
                {"cell_type": "markdown", "source": ["# t"], "metadata": {}},
                {"cell_type": "code", "source": ["let a = 1;\n", "a"], "execution_count": 3,
                 "metadata": {"tags": ["unordered-output"]},
                 "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n"]},
                    {"output_type": "execute_result", "data": {"text/plain": ["1"]},
                     "metadata": {}, "execution_count": 3},
                    {"output_type": "error", "ename": "Error", "evalue": "bad", "traceback": []}
                 ]},
                {"cell_type": "code", "source": "x", "execution_count": null, "metadata": {},
                 "outputs": []}
            ]
        });
        let notebook = Notebook::from_json(Path::new("t.ipynb"), &json).unwrap();
        assert_eq!(
            notebook.kernel_name.as_deref(),
            Some("rust-multiprocessing")
        );
        let code = &notebook.cells[1];
        assert_eq!(code.source, "let a = 1;\na");
        assert!(code.has_tag(TAG_UNORDERED));
        assert_eq!(code.outputs.len(), 3);
        assert_eq!(code.outputs[0], stream("stdout", "a\nb\n"));
        assert!(notebook.cells[2].never_run());
        // Writing back gives the same outputs.
        for output in &code.outputs {
            assert_eq!(
                output_from_json(&output_to_json(output, Some(3))).as_ref(),
                Some(output)
            );
        }
    }

    #[test]
    fn compares_streams_data_and_errors() {
        let s = sanitizer();
        let saved = cell(
            &[],
            vec![stream("stdout", "pid 1\n"), stream("stdout", "done\n")],
        );
        assert_eq!(
            judge(&saved, &[stream("stdout", "pid 99\ndone\n")], false, &s),
            Verdict::Passed("outputs match")
        );
        let Verdict::Failed(why) = judge(&saved, &[stream("stdout", "done\npid 2\n")], false, &s)
        else {
            panic!("order matters without the tag");
        };
        assert!(why.contains("stdout differs"), "{why}");
        let Verdict::Failed(why) = judge(
            &saved,
            &[
                stream("stdout", "pid 1\ndone\n"),
                Output::Data {
                    kind: "execute_result".into(),
                    data: [("text/plain".to_string(), json!("3"))].into(),
                },
            ],
            false,
            &s,
        ) else {
            panic!("an extra result is a difference");
        };
        assert!(why.contains("text/plain differs"), "{why}");
    }

    #[test]
    fn progress_displays_are_not_compared() {
        let data = |text: &str| BTreeMap::from([("text/plain".to_string(), json!(text))]);
        for progress in [
            "[#################...]  84% map: 27/32 tasks, 26.9 tasks/s, 1.0 s elapsed, ~0.2 s left",
            "[....................]   0% imap: 0/8 tasks, 0 tasks/s, 1.0 s elapsed",
            "imap_unordered: 12 tasks, 11.9/s, 1.0 s elapsed",
            "map: 32 tasks in 1.2 s (26.7/s)",
            "starmap: failed after 1.0 s at 2/8 tasks: task 3 panicked in ForkPoolWorker-1: boom",
        ] {
            assert!(is_progress_display(&data(progress)), "{progress}");
        }
        for other in ["[1, 8, 27]", "map: done", "<Pool processes=2 state=RUN>"] {
            assert!(!is_progress_display(&data(other)), "{other}");
        }
        let with_progress = vec![
            stream("stdout", "[1, 4]\n"),
            Output::Data {
                kind: "display_data".into(),
                data: data("map: 2 tasks in 1.1 s (1.8/s)"),
            },
        ];
        assert_eq!(
            Comparable::new(&with_progress, &sanitizer(), false),
            Comparable::new(&with_progress[..1], &sanitizer(), false)
        );
    }

    #[test]
    fn unordered_output_compares_sorted_lines() {
        let s = sanitizer();
        let saved = cell(&[TAG_UNORDERED], vec![stream("stdout", "a\nb\nb\n")]);
        assert_eq!(
            judge(&saved, &[stream("stdout", "b\na\nb\n")], false, &s),
            Verdict::Passed("outputs match")
        );
        assert!(matches!(
            judge(&saved, &[stream("stdout", "b\na\n")], false, &s),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn errors_fail_unless_tagged() {
        let s = sanitizer();
        let error = Output::Error(ErrorContent {
            ename: "Error".into(),
            evalue: "boom".into(),
            traceback: vec![],
        });
        let plain = cell(&[TAG_IGNORE_OUTPUT], vec![]);
        let Verdict::Failed(why) = judge(&plain, std::slice::from_ref(&error), true, &s) else {
            panic!("an error fails even with ignored outputs");
        };
        assert!(why.contains("boom"), "{why}");
        let raises = cell(&[TAG_RAISES], vec![error.clone()]);
        assert_eq!(
            judge(&raises, std::slice::from_ref(&error), true, &s),
            Verdict::Passed("failed as tagged; outputs match")
        );
        // Unlike nbval, the tag requires a failure.
        assert!(
            matches!(judge(&raises, &[], false, &s), Verdict::Failed(why) if why.contains("did not fail"))
        );
    }

    fn error(ename: &str, evalue: &str, traceback: &[&str]) -> Output {
        Output::Error(ErrorContent {
            ename: ename.into(),
            evalue: evalue.into(),
            traceback: traceback.iter().map(|l| l.to_string()).collect(),
        })
    }

    #[test]
    fn raises_exception_with_a_kernel_that_answers_ok_to_errors() {
        // Stock evcxr: a `?` error is stderr text and status "ok".
        let s = sanitizer();
        let saved = cell(
            &[TAG_RAISES],
            vec![
                stream("stdout", "before\n"),
                stream("stderr", "nothing arrived\n"),
            ],
        );
        let same = [
            stream("stdout", "before\n"),
            stream("stderr", "nothing arrived\n"),
        ];
        assert_eq!(
            judge(&saved, &same, false, &s),
            Verdict::Passed("failed as tagged; outputs match")
        );
        let other = [
            stream("stdout", "before\n"),
            stream("stderr", "another error\n"),
        ];
        assert!(
            matches!(judge(&saved, &other, false, &s), Verdict::Failed(why) if why.contains("stderr differs"))
        );
        let silent = [stream("stdout", "before\n")];
        assert!(
            matches!(judge(&saved, &silent, false, &s), Verdict::Failed(why) if why.contains("did not fail"))
        );
    }

    #[test]
    fn raises_exception_with_a_kernel_that_replies_error() {
        let s = sanitizer();
        // Saved and run on a kernel with error replies: compared as any other cell.
        let saved = cell(&[TAG_RAISES], vec![error("Error", "took 5 ms", &[])]);
        assert_eq!(
            judge(&saved, &[error("Error", "took 7 ms", &[])], true, &s),
            Verdict::Passed("failed as tagged; outputs match")
        );
        assert!(matches!(
            judge(&saved, &[error("Error", "other", &[])], true, &s),
            Verdict::Failed(_)
        ));
        // Saved on stock evcxr (stderr), run on a kernel with error replies: each saved line
        // must be among the fresh failure's lines (traceback colours stripped).
        let saved = cell(
            &[TAG_RAISES],
            vec![
                stream("stdout", "x\n"),
                stream("stderr", "nothing arrived in 1 ms\n"),
            ],
        );
        let fresh = [
            stream("stdout", "x\n"),
            error(
                "multiprocessing::Error",
                "Empty",
                &["\x1b[31mnothing arrived in 3 ms\x1b[0m"],
            ),
        ];
        assert_eq!(
            judge(&saved, &fresh, true, &s),
            Verdict::Passed("failed as tagged; outputs match (failure compared by lines)")
        );
        let fresh = [
            stream("stdout", "x\n"),
            error("Error", "something else", &[]),
        ];
        assert!(
            matches!(judge(&saved, &fresh, true, &s), Verdict::Failed(why) if why.contains("the failure differs"))
        );
        // ... and the other way round.
        let saved = cell(&[TAG_RAISES], vec![error("Error", "boom", &["boom"])]);
        assert!(matches!(
            judge(&saved, &[stream("stderr", "Error: boom\n")], false, &s),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            judge(
                &saved,
                &[stream("stderr", "Error: boom\nboom\n")],
                false,
                &s
            ),
            Verdict::Passed(_)
        ));
        // An error in an untagged cell fails, whatever its outputs.
        let plain = cell(&[], vec![]);
        assert!(matches!(
            judge(&plain, &[error("Error", "boom", &[])], true, &s),
            Verdict::Failed(why) if why.contains("not tagged")
        ));
    }

    #[test]
    fn cells_are_formatted_by_rustfmt_in_a_function() {
        let f = CellFormatter::default();
        assert_eq!(f.format("let x=1;").unwrap(), "let x = 1;");
        // A final expression stays one; items and statements mix.
        assert_eq!(
            f.format("fn two()->u32{2}\ntwo( )").unwrap(),
            "fn two() -> u32 {\n    2\n}\ntwo()"
        );
        // evcxr commands are kept; a command-only cell is left alone.
        assert_eq!(
            f.format(":dep plotters = \"0.3\"\nlet  y = 2;").unwrap(),
            ":dep plotters = \"0.3\"\nlet y = 2;"
        );
        assert_eq!(f.format(":dep a = \"1\"").unwrap(), ":dep a = \"1\"");
        // The lines of a multi-line string are not re-indented.
        let raw = "const PY: &str = r#\"\ndef f():\n    return 1\n\"#;";
        assert_eq!(f.format(raw).unwrap(), raw);
        // A final `};` is kept (evcxr would show the loop's `()`), inner ones go.
        assert_eq!(
            f.format("for i in 0..2 { println!(\"{i}\"); };").unwrap(),
            "for i in 0..2 {\n    println!(\"{i}\");\n};"
        );
        assert_eq!(
            f.format("for i in 0..2 {};\nlet z = 1;").unwrap(),
            "for i in 0..2 {}\nlet z = 1;"
        );
        // Formatting is stable.
        let once = f
            .format("let v=vec![1,2,3];for x in &v{println!(\"{x}\");};")
            .unwrap();
        assert_eq!(f.format(&once).unwrap(), once);
        // What rustfmt cannot parse is an error that says so.
        assert!(f.format("let = ;").unwrap_err().contains("rustfmt failed"));
        let missing = CellFormatter::with_rustfmt("/nonexistent/rustfmt");
        assert!(missing
            .format("let x = 1;")
            .unwrap_err()
            .contains("cannot run"));
    }

    #[test]
    fn splits_lines_as_python_does() {
        assert_eq!(
            python_splitlines("a\nb\r\nc\rd"),
            ["a\n", "b\r\n", "c\r", "d"]
        );
        assert_eq!(python_splitlines("a\n"), ["a\n"]);
        assert!(python_splitlines("").is_empty());
        let mut json = json!({"cells": [{"cell_type": "code", "source": "x\ny", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "1\n2\n"},
            {"output_type": "execute_result", "data": {"text/plain": "a\nb", "image/png": "AA\nBB"}}
        ]}]});
        split_lines(&mut json);
        assert_eq!(json["cells"][0]["source"], json!(["x\n", "y"]));
        assert_eq!(
            json["cells"][0]["outputs"][0]["text"],
            json!(["1\n", "2\n"])
        );
        assert_eq!(
            json["cells"][0]["outputs"][1]["data"]["text/plain"],
            json!(["a\n", "b"])
        );
        assert_eq!(
            json["cells"][0]["outputs"][1]["data"]["image/png"],
            json!("AA\nBB")
        );
    }

    #[test]
    fn ignored_cell_that_starts_writing_stderr_fails() {
        let s = Sanitizer::default();
        let ignored = cell(&[TAG_IGNORE_OUTPUT], vec![stream("stdout", "x\n")]);
        let fresh = vec![stream("stdout", "y\n"), stream("stderr", "boom\n")];
        assert!(matches!(
            judge(&ignored, &fresh, false, &s),
            Verdict::Failed(_)
        ));
        let noisy = cell(&[TAG_IGNORE_OUTPUT], vec![stream("stderr", "a\n")]);
        assert!(matches!(
            judge(&noisy, &fresh, false, &s),
            Verdict::Passed(_)
        ));
    }

    #[test]
    fn ignored_and_never_run_cells_are_not_compared() {
        let s = sanitizer();
        let ignored = cell(&[TAG_IGNORE_OUTPUT], vec![stream("stdout", "x\n")]);
        assert!(matches!(
            judge(&ignored, &[], false, &s),
            Verdict::Passed(_)
        ));
        let mut never = cell(&[], vec![]);
        never.execution_count = None;
        assert_eq!(
            judge(&never, &[stream("stdout", "y\n")], false, &s),
            Verdict::Passed("no saved outputs (never run)")
        );
    }
}
