//! The notebooks (`notebooks/*.ipynb`) are the sources: edited as notebooks (JupyterLab),
//! their tags in the cells' metadata. Two tests keep them honest:
//!
//! - `notebooks_are_formatted_and_well_formed` (no kernel): every code cell is formatted
//!   as `rustfmt` writes it (wrapped in a function, see `kernel_client::notebook::CellFormatter`),
//!   every tag is a known one, every cell has an id, every code cell was run and saved.
//! - `notebooks_reproduce_their_saved_outputs`: re-runs every notebook through the
//!   installed kernel (so the compiler checks every cell), one fresh kernel per notebook
//!   started in the notebooks folder, and compares each code cell's fresh outputs with the
//!   saved ones (rules: `kernel_client::notebook`; sanitizer: `kernel/client/sanitize.cfg`).
//!   A cell that errors fails, unless tagged `raises-exception`; a cell so tagged must fail,
//!   the way its saved outputs show.
//!
//! Environment:
//! - `TEST_NOTEBOOKS=00_,05_`: only notebooks whose file name contains one of these.
//! - `NOTEBOOK_CELL_TIMEOUT=300`: seconds per cell (default 120).
//! - `UPDATE_NOTEBOOK_OUTPUTS=1`: write the fresh outputs into the notebooks (for their
//!   author, to save outputs the way this runner sees them); the test then only fails
//!   on errors.
//! - `FORMAT_NOTEBOOKS=1`: write rustfmt's formatting into the cells instead of failing.
//! - `RUSTFMT`: the rustfmt to use (default: the one on `PATH`).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kernel_client::notebook::{
    check_structure, run_notebook, save_outputs, set_sources, CellFormatter, Notebook, Sanitizer,
    Verdict,
};
use kernel_client::KernelOptions;

fn notebook_paths() -> Vec<PathBuf> {
    let dir = common::repo_root().join("notebooks");
    let filter: Vec<String> = std::env::var("TEST_NOTEBOOKS")
        .map(|v| {
            v.split(',')
                .map(str::to_string)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
                })
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

#[test]
fn notebooks_are_formatted_and_well_formed() {
    let paths = notebook_paths();
    assert!(!paths.is_empty(), "no notebooks/*.ipynb found");
    let formatter = CellFormatter::default();
    let write = std::env::var("FORMAT_NOTEBOOKS").is_ok_and(|v| v == "1");
    let mut problems = Vec::new();
    for path in &paths {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let structure = check_structure(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        problems.extend(structure.into_iter().map(|p| format!("{name}: {p}")));
        let notebook = Notebook::load(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let unformatted = match formatter.unformatted(&notebook) {
            Ok(found) => found,
            Err(error) => {
                problems.push(format!("{name}: {error}"));
                continue;
            }
        };
        if write && !unformatted.is_empty() {
            let sources: Vec<(usize, String)> = unformatted
                .iter()
                .map(|u| (u.index, u.formatted.clone()))
                .collect();
            set_sources(path, &sources).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("[{name}] formatted {} cell(s)", sources.len());
            continue;
        }
        for cell in unformatted {
            problems.push(format!(
                "{name} cell {} is not formatted as rustfmt writes it \
                 (FORMAT_NOTEBOOKS=1 cargo test -p kernel-client --test notebooks formatted \
                 writes it):\n{}",
                cell.index, cell.diff
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in the notebooks as sources:\n\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn notebooks_reproduce_their_saved_outputs() {
    let paths = notebook_paths();
    if paths.is_empty() {
        eprintln!("[notebooks] no notebooks/*.ipynb to run");
        return;
    }
    let sanitizer =
        Sanitizer::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sanitize.cfg"))
            .expect("sanitize.cfg");
    let cell_timeout = Duration::from_secs(
        std::env::var("NOTEBOOK_CELL_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let update = std::env::var("UPDATE_NOTEBOOK_OUTPUTS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in &paths {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let notebook = Notebook::load(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let started = Instant::now();
        let options = KernelOptions {
            working_dir: path.parent().map(|p| p.to_path_buf()),
            ..KernelOptions::default()
        };
        let mut kernel = common::start_kernel_with(&name, options);
        let reports = run_notebook(&mut kernel, &notebook, &sanitizer, cell_timeout);
        drop(kernel);
        for report in &reports {
            let verdict = match &report.verdict {
                Verdict::Passed(how) => format!("ok, {how}"),
                Verdict::Skipped => "skipped (nbval-skip)".to_string(),
                Verdict::Failed(_) => "FAILED".to_string(),
            };
            eprintln!(
                "[{name}] cell {:>3}: {verdict} ({:.2} s)",
                report.index,
                report.elapsed.as_secs_f64()
            );
            if let Verdict::Failed(why) = &report.verdict {
                let only_outputs = !why.starts_with("the cell failed")
                    && !why.starts_with("did not complete")
                    && !why.starts_with("tagged");
                if !(update && only_outputs) {
                    failures.push(format!("{name} cell {}: {why}", report.index));
                }
            }
        }
        eprintln!(
            "[{name}] {} code cells in {:.1} s (kernel start included)",
            reports.len(),
            started.elapsed().as_secs_f64()
        );
        if update {
            save_outputs(path, &reports).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("[{name}] saved fresh outputs");
        }
    }
    assert!(
        failures.is_empty(),
        "{} notebook cell(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
