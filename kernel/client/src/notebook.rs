//! Re-running `.ipynb` notebooks through a kernel and comparing the fresh outputs
//! with the saved ones, nbval style.
//!
//! Per code cell, by tag (cell metadata `tags`):
//! - `nbval-skip`: not run.
//! - `nbval-ignore-output`: run, outputs not compared (an error still fails).
//! - `raises-exception`: the cell may end in an error (as in nbval: allowed, not
//!   required); outputs are compared.
//! - `unordered-output` (ours): stdout and stderr are compared as sorted multisets
//!   of lines, for cells where several processes print in any order.
//!
//! Compared: all stdout text, all stderr text (evcxr's late stderr included, see
//! [`crate::KernelOptions::stderr_grace`]), `execute_result`/`display_data` data per
//! MIME type except binary images, and errors as `ename: evalue` (tracebacks are not
//! compared, as in nbval). Every text goes through the [`Sanitizer`] first. A saved
//! cell with no `execution_count` and no outputs has never been run: it is run but
//! not compared.
//!
//! "Error" means what the protocol says: an error `execute_reply` or an iopub `error`
//! (compile errors, a killed runtime). evcxr reports a `?` error and a panic in a cell
//! only as stderr text with status ok, so those show up as stderr differences.

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
/// Tag: the cell may end in an error.
pub const TAG_RAISES: &str = "raises-exception";
/// Tag (ours): compare stdout/stderr lines as sorted multisets.
pub const TAG_UNORDERED: &str = "unordered-output";

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
    if cell.has_tag(TAG_IGNORE_OUTPUT) {
        // evcxr reports a `?` error or a panic in a cell only as stderr text with status "ok",
        // so an ignored cell that is silent on stderr in the saved run must stay silent now.
        let writes_stderr = |outputs: &[Output]| {
            outputs
                .iter()
                .any(|output| matches!(output, Output::Stream { name, .. } if name == "stderr"))
        };
        if !writes_stderr(&cell.outputs) && writes_stderr(fresh) && !cell.never_run() {
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
    let saved = Comparable::new(&cell.outputs, sanitizer, unordered);
    let fresh = Comparable::new(fresh, sanitizer, unordered);
    let differences = Comparable::differences(&saved, &fresh);
    if differences.is_empty() {
        Verdict::Passed("outputs match")
    } else {
        Verdict::Failed(differences.join("\n"))
    }
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
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(&json, &mut serializer).map_err(Error::json("notebook"))?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).map_err(Error::io(format!("write {}", path.display())))
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
            Verdict::Passed("outputs match")
        );
        // As in nbval, the tag allows an error but does not require one; the outputs
        // (here: the missing error) still differ.
        assert!(
            matches!(judge(&raises, &[], false, &s), Verdict::Failed(why) if why.contains("errors differ"))
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
