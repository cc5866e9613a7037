//! Watching a pool work: the live progress display of a waiting call, and the task stream (which
//! worker ran which chunk, when).
//!
//! ```
//! use multiprocessing::{Pool, Progress};
//!
//! fn slow_square(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(1)); x * x }
//!
//! // Python (tqdm): process_map(slow_square, range(200), max_workers=2)
//! let pool = Pool::new(2)?;
//! let out = pool.map(slow_square, 0..200)?; // in a notebook: a bar after ~1 s, then a summary
//! let quiet = pool.with_progress(Progress::Never).map(slow_square, 0..200)?; // this call: none
//! assert_eq!(out, quiet);
//! // Python (Dask): the task stream; one row per worker, one bar per chunk.
//! let stream = pool.task_stream();
//! assert!(stream.records().len() >= 2);
//! assert!(stream.svg().starts_with("<svg"));
//! # Ok::<(), multiprocessing::Error>(())
//! ```
//!
//! No thread: the display is drawn by the call that waits (the pool's [`Waiter`](crate::wait::Waiter)
//! asks [`Watch::slice`] how long it may sleep and calls [`Watch::due`] / [`Watch::update`] after
//! every wake-up), so it moves exactly while the notebook waits for the pool. Progress counts tasks,
//! not chunks: a worker stores the index of the task it starts in its shared progress words, so a
//! chunk of 100 000 tasks fills the bar smoothly instead of jumping.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::display::{self, DisplayHandle};
use crate::display::{escape, evcxr_bundle};
use crate::error::Error;

/// When a pool call shows its progress (Python has no such switch; tqdm's `disable=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// In a notebook, yes (after about a second); elsewhere (a test, a terminal program), no.
    #[default]
    Auto,
    /// Always: in a notebook as a display, elsewhere as a line redrawn with `\r` on stderr.
    Always,
    /// Never.
    Never,
}

/// A call shows nothing until it has run this long (short calls stay quiet).
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// At most this many redraws a second (4): often enough to look alive, rare enough to cost nothing.
const EVERY: Duration = Duration::from_millis(250);
/// The task stream keeps this many most recent chunks.
const STREAM_CAP: usize = 10_000;

/// One chunk as the task stream records it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// The worker's name (`ForkPoolWorker-3`).
    pub worker: String,
    /// The worker's pid.
    pub pid: i32,
    /// Which call of the pool it belonged to (numbered from 0 in the order they were made).
    pub call: u64,
    /// The index of the chunk's first task in its call's inputs.
    pub first: usize,
    /// How many tasks the chunk held.
    pub tasks: usize,
    /// When the worker started it (seconds since the pool was created, by the worker's clock).
    pub start: f64,
    /// When the worker finished it (seconds since the pool was created).
    pub end: f64,
    /// False if a task in it failed.
    pub ok: bool,
}

/// The pool's recent chunks, drawn as a timeline ([`Pool::task_stream`](super::Pool::task_stream)).
#[derive(Debug, Clone, Default)]
pub struct TaskStream {
    records: Vec<TaskRecord>,
}

/// What a worker is doing now, as the pool sees it.
pub(crate) struct WorkerNow<'a> {
    pub name: &'a str,
    /// `(job, chunk id, first task of the chunk)` of the chunk it runs, and the task it runs.
    pub running: Option<(u64, u64, usize, Option<usize>)>,
}

/// How a followed call ended.
pub(crate) enum Outcome<'a> {
    Done,
    Failed(&'a Error),
    /// Its handle was dropped before the end.
    Stopped,
}

/// One call whose progress is followed.
struct Track {
    what: &'static str,
    total: Option<usize>,
    chunksize: usize,
    show: bool,
    /// Whether its chunks go into the task stream.
    record: bool,
    began: Instant,
    done: usize,
    shown: Option<Sink>,
    last: Instant,
}

enum Sink {
    Notebook(DisplayHandle),
    Terminal,
}

/// What one call asks of the watcher, over the pool's settings ([`Chunked::progress`],
/// [`Chunked::record_tasks`](super::Chunked::record_tasks)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallWatch {
    pub progress: Option<Progress>,
    pub record: Option<bool>,
}

/// The pool's watcher: progress of its calls and its task stream.
pub(crate) struct Watch {
    origin: Instant,
    mode: Progress,
    record: bool,
    tracks: HashMap<u64, Track>,
    /// Per worker pid: tasks it finished.
    finished: HashMap<i32, usize>,
    stream: VecDeque<TaskRecord>,
    /// The soonest a shown display needs redrawing (or a hidden one showing).
    next_due: Option<Instant>,
}

impl Watch {
    pub(crate) fn new(mode: Progress) -> Self {
        Watch {
            origin: Instant::now(),
            mode,
            record: true,
            tracks: HashMap::new(),
            finished: HashMap::new(),
            stream: VecDeque::new(),
            next_due: None,
        }
    }

    /// The moment task stream times count from (workers get a copy when they are forked).
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    pub(crate) fn set_mode(&mut self, mode: Progress) {
        self.mode = mode;
    }

    pub(crate) fn set_record(&mut self, record: bool) {
        self.record = record;
    }

    /// A call submitted `job`: `total` tasks (if known) in chunks of `chunksize`, with the call's
    /// own settings over the pool's.
    pub(crate) fn plan(
        &mut self,
        job: u64,
        what: &'static str,
        total: Option<usize>,
        chunksize: usize,
        call: CallWatch,
    ) {
        let show = match call.progress.unwrap_or(self.mode) {
            Progress::Auto => display::in_kernel(),
            Progress::Always => true,
            Progress::Never => false,
        };
        let now = Instant::now();
        self.tracks.insert(
            job,
            Track {
                what,
                total,
                chunksize: chunksize.max(1),
                show,
                record: call.record.unwrap_or(self.record),
                began: now,
                done: 0,
                shown: None,
                last: now,
            },
        );
        if show {
            let at = now + SHOW_AFTER;
            self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
        }
    }

    /// How long the waiting call may sleep before the display needs it (`None`: as long as it likes).
    pub(crate) fn slice(&self) -> Option<Duration> {
        self.next_due
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// True if a display is due for a redraw: then call [`Watch::update`]. Costs one clock read, and
    /// nothing at all while no display is planned (progress off, or outside a notebook).
    pub(crate) fn due(&self) -> bool {
        self.next_due.is_some_and(|d| d <= Instant::now())
    }

    /// Redraws the due displays. `live(job)` tells whether the pool still has the job.
    pub(crate) fn update(&mut self, workers: &[WorkerNow<'_>], live: impl Fn(u64) -> bool) {
        let now = Instant::now();
        let gone: Vec<u64> = self.tracks.keys().copied().filter(|j| !live(*j)).collect();
        for job in gone {
            self.ended(job, Outcome::Done);
        }
        let mut next: Option<Instant> = None;
        for (job, t) in &mut self.tracks {
            if !t.show {
                continue;
            }
            let at = if t.shown.is_none() {
                t.began + SHOW_AFTER
            } else {
                t.last + EVERY
            };
            if at <= now {
                let running: usize = workers
                    .iter()
                    .filter_map(|w| w.running)
                    .filter(|r| r.0 == *job)
                    .map(|(_, _, first, item)| item.map_or(0, |i| i.saturating_sub(first)))
                    .sum();
                let done = t.done + running;
                let (plain, html) = render_live(t, done, workers, *job, now);
                t.shown = match t.shown.take() {
                    None => open(&plain, &html),
                    Some(sink) => {
                        redraw(&sink, &plain, &html);
                        Some(sink)
                    }
                };
                if t.shown.is_none() {
                    // Stdout is gone: stop trying.
                    t.show = false;
                    continue;
                }
                t.last = now;
            }
            let at = if t.shown.is_none() {
                t.began + SHOW_AFTER
            } else {
                t.last + EVERY
            };
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        self.next_due = next;
    }

    /// A chunk's result arrived from worker `name` (`pid`); it ran from `started` to `ended`
    /// (microseconds since [`Watch::origin`], as the worker measured them).
    pub(crate) fn chunk_done(
        &mut self,
        name: &str,
        pid: i32,
        job: u64,
        first: usize,
        (started, ended): (u64, u64),
        ok: bool,
    ) {
        let (tasks, record) = match self.tracks.get_mut(&job) {
            Some(t) => {
                let n = t.total.map_or(t.chunksize, |total| {
                    t.chunksize.min(total.saturating_sub(first))
                });
                t.done += n;
                (n, t.record)
            }
            // `apply`/`apply_async`: one task, the pool's setting.
            None => (1, self.record),
        };
        *self.finished.entry(pid).or_insert(0) += tasks;
        if !record {
            return;
        }
        if self.stream.len() == STREAM_CAP {
            self.stream.pop_front();
        }
        self.stream.push_back(TaskRecord {
            worker: name.to_owned(),
            pid,
            call: job,
            first,
            tasks,
            start: started as f64 * 1e-6,
            end: ended.max(started) as f64 * 1e-6,
            ok,
        });
    }

    /// The call of `job` ended: with `failure`, or done. A shown display becomes the one-line summary
    /// or the error.
    pub(crate) fn ended(&mut self, job: u64, outcome: Outcome<'_>) {
        let Some(t) = self.tracks.remove(&job) else {
            return;
        };
        let Some(sink) = &t.shown else {
            return;
        };
        let took = t.began.elapsed().as_secs_f64();
        let total = t.total.map_or(t.done, |n| n.max(t.done));
        let failure = match outcome {
            Outcome::Done => None,
            Outcome::Failed(e) => Some(e.to_string()),
            Outcome::Stopped => Some("stopped: the call's result was dropped".to_string()),
        };
        let (plain, html) = match failure {
            None => {
                let plain = format!(
                    "{}: {} tasks in {} ({}/s)",
                    t.what,
                    total,
                    secs(took),
                    rate(total as f64 / took.max(1e-9))
                );
                let html = format!(
                    "<div style=\"font-family:monospace\">{}{}</div>",
                    bar_html(1.0, "#4caf50"),
                    escape(&format!("✓ {plain}"))
                );
                (plain, html)
            }
            Some(e) => {
                let plain = format!(
                    "{}: failed after {} at {}/{} tasks: {e}",
                    t.what,
                    secs(took),
                    t.done,
                    total
                );
                let fraction = if total > 0 {
                    t.done as f64 / total as f64
                } else {
                    0.0
                };
                let html = format!(
                    "<div style=\"font-family:monospace\">{}<span style=\"color:#c62828\">{}</span></div>",
                    bar_html(fraction, "#e53935"),
                    escape(&format!("✗ {plain}"))
                );
                (plain, html)
            }
        };
        redraw(sink, &plain, &html);
        if let Sink::Terminal = sink {
            let _ = writeln!(std::io::stderr());
        }
    }

    /// Tasks worker `pid` finished.
    pub(crate) fn tasks_done(&self, pid: i32) -> usize {
        self.finished.get(&pid).copied().unwrap_or(0)
    }

    pub(crate) fn stream(&self) -> TaskStream {
        TaskStream {
            records: self.stream.iter().cloned().collect(),
        }
    }
}

fn open(plain: &str, html: &str) -> Option<Sink> {
    if display::in_kernel() {
        display::display(&[("text/html", html), ("text/plain", plain)])
            .ok()
            .map(Sink::Notebook)
    } else {
        let sink = Sink::Terminal;
        redraw(&sink, plain, html);
        Some(sink)
    }
}

fn redraw(sink: &Sink, plain: &str, html: &str) {
    match sink {
        Sink::Notebook(h) => {
            let _ = h.update(&[("text/html", html), ("text/plain", plain)]);
        }
        Sink::Terminal => {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{plain}\x1b[K");
            let _ = err.flush();
        }
    }
}

fn render_live(
    t: &Track,
    done: usize,
    workers: &[WorkerNow<'_>],
    job: u64,
    now: Instant,
) -> (String, String) {
    let elapsed = (now - t.began).as_secs_f64();
    let speed = done as f64 / elapsed.max(1e-9);
    let fraction = t.total.map(|n| {
        if n == 0 {
            1.0
        } else {
            (done as f64 / n as f64).min(1.0)
        }
    });
    let count = match t.total {
        Some(n) => format!("{done}/{n} tasks"),
        None => format!("{done} tasks"),
    };
    let left = match t.total {
        Some(n) if speed > 0.0 && done > 0 => {
            format!(", ~{} left", secs(n.saturating_sub(done) as f64 / speed))
        }
        _ => String::new(),
    };
    let line = format!(
        "{}: {count}, {}/s, {} elapsed{left}",
        t.what,
        rate(speed),
        secs(elapsed)
    );
    let doing: Vec<String> = workers
        .iter()
        .map(|w| match w.running {
            Some((j, _, _, Some(item))) if j == job => format!("{}: task {item}", w.name),
            Some((j, _, first, None)) if j == job => format!("{}: task {first}", w.name),
            Some(_) => format!("{}: other work", w.name),
            None => format!("{}: idle", w.name),
        })
        .collect();
    let plain = match fraction {
        Some(f) => {
            let filled = (f * 20.0).round() as usize;
            format!(
                "[{}{}] {:>3.0}% {line}",
                "#".repeat(filled),
                ".".repeat(20 - filled),
                f * 100.0
            )
        }
        None => line.clone(),
    };
    let mut html = String::from("<div style=\"font-family:monospace\">");
    if let Some(f) = fraction {
        html.push_str(&bar_html(f, "#2196f3"));
        let _ = write!(html, "{:.0}% ", f * 100.0);
    }
    html.push_str(&escape(&line));
    let _ = write!(
        html,
        "<div style=\"color:#666;font-size:90%\">{}</div></div>",
        escape(&doing.join(" · "))
    );
    (plain, html)
}

fn bar_html(fraction: f64, color: &str) -> String {
    format!(
        "<div style=\"width:320px;height:12px;background:#e0e0e0;border-radius:3px;margin:2px 0\">\
         <div style=\"width:{:.1}%;height:100%;background:{color};border-radius:3px\"></div></div>",
        fraction.clamp(0.0, 1.0) * 100.0
    )
}

fn secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M tasks", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k tasks", r / 1e3)
    } else {
        format!("{r:.1} tasks")
    }
}

/// A tick step for an axis `span` seconds long (1, 2 or 5 times a power of ten, 4 to 10 ticks), and
/// the unit its labels use: milliseconds under 2 s, seconds above.
fn ticks(span: f64) -> (f64, &'static str, f64) {
    let raw = span / 6.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| span / s <= 10.0)
        .unwrap_or(10.0 * power);
    if span < 2.0 {
        (step, "milliseconds", 1e3)
    } else {
        (step, "seconds", 1.0)
    }
}

/// A tick label without float noise: `300`, `0.5`.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A duration for the chart: `301 ms`, `2.41 s`.
fn secs_fine(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

impl super::Pool {
    /// Shows progress for this pool's calls: [`Progress::Auto`] (the default: in a notebook only),
    /// [`Progress::Always`] or [`Progress::Never`].
    ///
    /// ```
    /// use multiprocessing::{Pool, Progress};
    /// let pool = Pool::new(2)?;
    /// pool.set_progress(Progress::Never);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn set_progress(&self, mode: Progress) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.watch.set_mode(mode);
        }
    }

    /// Records (the default) or not each chunk this pool's calls run, for [`Pool::task_stream`](super::Pool::task_stream)
    /// (per call: [`Chunked::record_tasks`](super::Chunked::record_tasks)).
    ///
    /// ```
    /// use multiprocessing::Pool;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::new(2)?;
    /// pool.set_record_tasks(false);
    /// pool.map(double, 0..10)?;
    /// assert!(pool.task_stream().records().is_empty());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn set_record_tasks(&self, record: bool) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.watch.set_record(record);
        }
    }

    /// Progress for one call only: `pool.with_progress(Progress::Never).map(f, items)`; the same
    /// as `pool.chunked(n).progress(..)` with the default chunk size.
    ///
    /// ```
    /// use multiprocessing::{Pool, Progress};
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.with_progress(Progress::Always).map(double, [1, 2])?, [2, 4]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn with_progress(&self, mode: Progress) -> super::Chunked<'_> {
        self.options().progress(mode)
    }

    /// The pool's recent chunks (up to 10 000): which worker ran which tasks, when. In a notebook,
    /// a cell ending in `pool.task_stream()` shows it as a timeline chart, one row per worker
    /// (Python: Dask's task stream).
    ///
    /// ```
    /// use multiprocessing::Pool;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::new(2)?;
    /// pool.chunked(5).map(double, 0..20)?;
    /// let stream = pool.task_stream();
    /// assert_eq!(stream.records().iter().map(|r| r.tasks).sum::<usize>(), 20);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn task_stream(&self) -> TaskStream {
        self.inner
            .try_borrow()
            .map(|i| i.watch.stream())
            .unwrap_or_default()
    }

    /// evcxr calls this to show a `Pool` as a cell's result: a table of its workers (name, pid,
    /// state, tasks done, current task).
    pub fn evcxr_display(&self) {
        // Collect what has arrived first (as `ready()` does), so that the table is current.
        let Ok(mut inner) = super::borrow(&self.inner) else {
            evcxr_bundle(&[
                (
                    "text/html",
                    "<i>Pool (busy, or owned by another process)</i>",
                ),
                ("text/plain", "Pool (busy, or owned by another process)"),
            ]);
            return;
        };
        let _ = inner.drive(Some(Instant::now()), |_| false);
        let size = match inner.processes {
            1 => "1 process".to_string(),
            n => format!("{n} processes"),
        };
        let mut html = format!(
            "<div><b>Pool</b>: {size}, {}<table><tr><th>worker</th><th>pid</th><th>state</th><th>tasks done</th><th>current task</th></tr>",
            inner.state
        );
        let mut plain = format!(
            "Pool: {size}, {}\n{:<20} {:>8}  {:<8} {:>10}  current task",
            inner.state, "worker", "pid", "state", "tasks done"
        );
        for (name, pid, current, queued) in inner.worker_rows() {
            let state = match (current, queued) {
                (Some(_), _) => "running",
                (None, 0) => "idle",
                (None, _) => "busy",
            };
            let done = inner.watch.tasks_done(pid);
            let current = current.map_or("-".to_string(), |t| t.to_string());
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{pid}</td><td>{state}</td><td>{done}</td><td>{current}</td></tr>",
                escape(&name),
            );
            let _ = write!(
                plain,
                "\n{name:<20} {pid:>8}  {state:<8} {done:>10}  {current}"
            );
        }
        html.push_str("</table></div>");
        evcxr_bundle(&[("text/html", &html), ("text/plain", &plain)]);
    }
}

impl TaskStream {
    /// The recorded chunks, oldest first.
    pub fn records(&self) -> &[TaskRecord] {
        &self.records
    }

    /// Only the chunks of the most recent call (the pool's history otherwise spans every call, and
    /// the time between cells with it).
    ///
    /// ```
    /// use multiprocessing::Pool;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::new(2)?;
    /// pool.chunked(1).map(double, 0..3)?;
    /// pool.chunked(2).map(double, 0..4)?;
    /// assert_eq!(pool.task_stream().last_call().records().len(), 2);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn last_call(&self) -> TaskStream {
        let last = self.records.iter().map(|r| r.call).max();
        TaskStream {
            records: self
                .records
                .iter()
                .filter(|r| Some(r.call) == last)
                .cloned()
                .collect(),
        }
    }

    /// The timeline as an SVG image: one row per worker, one bar per chunk labelled with its tasks
    /// (a colour per call, red if a task in it failed), time since the first chunk started on the x
    /// axis; hovering a bar gives its worker, tasks and duration.
    pub fn svg(&self) -> String {
        let mut rows: Vec<&str> = Vec::new();
        for r in &self.records {
            if !rows.contains(&r.worker.as_str()) {
                rows.push(&r.worker);
            }
        }
        // ForkPoolWorker-2 before ForkPoolWorker-10.
        rows.sort_by_key(|name| {
            name.rsplit('-')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });
        let t0 = self
            .records
            .iter()
            .map(|r| r.start)
            .fold(f64::INFINITY, f64::min);
        let t1 = self
            .records
            .iter()
            .map(|r| r.end)
            .fold(f64::NEG_INFINITY, f64::max);
        let (t0, span) = if self.records.is_empty() {
            (0.0, 1.0)
        } else {
            (t0, (t1 - t0).max(1e-3))
        };
        let (step, unit, scale) = ticks(span);
        // The axis ends on a tick, past the last chunk.
        let axis_end = (span / step).ceil().max(1.0) * step;
        let (left, width, row_h, top) = (150.0, 580.0, 30.0, 40.0);
        let plot_h = row_h * rows.len().max(1) as f64;
        let height = top + plot_h + 50.0;
        let x = |t: f64| left + (t - t0) / axis_end * width;
        let tasks: usize = self.records.iter().map(|r| r.tasks).sum();
        let calls = {
            let mut c: Vec<u64> = self.records.iter().map(|r| r.call).collect();
            c.sort_unstable();
            c.dedup();
            c
        };
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
             <text x=\"{left}\" y=\"20\" font-size=\"15\">{}</text>",
            left + width + 30.0,
            escape(&format!(
                "Task stream: {tasks} tasks in {} chunks on {} workers, {} from first start to last end",
                self.records.len(),
                rows.len(),
                secs_fine(span)
            ))
        );
        // Row bands and worker names.
        for (i, name) in rows.iter().enumerate() {
            let y = top + row_h * i as f64;
            if i % 2 == 0 {
                let _ = write!(
                    svg,
                    "<rect x=\"{left}\" y=\"{y}\" width=\"{width}\" height=\"{row_h}\" fill=\"#f4f4f4\"/>"
                );
            }
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                left - 8.0,
                y + row_h * 0.6,
                escape(name)
            );
        }
        // Time grid and axis.
        let axis_y = top + plot_h;
        let mut k = 0.0;
        while k * step <= axis_end + step * 1e-6 {
            let t = t0 + k * step;
            let _ = write!(
                svg,
                "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#d0d0d0\"/>\
                 <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
                x(t),
                axis_y + 4.0,
                axis_y + 18.0,
                trim(k * step * scale)
            );
            k += 1.0;
        }
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"black\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{unit} since the first chunk started</text>",
            left + width,
            left + width / 2.0,
            axis_y + 36.0
        );
        // One bar per chunk.
        let palette = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf",
        ];
        for r in &self.records {
            let i = rows.iter().position(|n| *n == r.worker).unwrap_or(0);
            let y = top + row_h * i as f64 + 4.0;
            let (x0, x1) = (x(r.start), x(r.end));
            let w = (x1 - x0).max(1.0);
            let fill = if r.ok {
                let call = calls.iter().position(|c| *c == r.call).unwrap_or(0);
                palette[call % palette.len()]
            } else {
                "#e53935"
            };
            let label = if r.tasks == 1 {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.first + r.tasks.saturating_sub(1))
            };
            let _ = write!(
                svg,
                "<g><title>{}: {} {} ({})</title>\
                 <rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"white\" stroke-width=\"1\"/>",
                escape(&r.worker),
                if r.tasks == 1 { "task" } else { "tasks" },
                label,
                secs_fine(r.end - r.start),
                row_h - 8.0
            );
            // The tasks' numbers in the bar, when they fit (about 7 px a character at this size).
            if w >= 7.0 * label.len() as f64 + 6.0 {
                let _ = write!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"white\">{label}</text>",
                    x0 + w / 2.0,
                    y + (row_h - 8.0) * 0.5 + 4.0
                );
            }
            svg.push_str("</g>");
        }
        // Which colour is which call, when there are several.
        if calls.len() > 1 {
            let mut lx = left;
            let ly = height - 8.0;
            for (i, c) in calls.iter().enumerate().take(palette.len()) {
                let _ = write!(
                    svg,
                    "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{ly}\">call {c}</text>",
                    ly - 9.0,
                    palette[i],
                    lx + 14.0
                );
                lx += 70.0;
            }
        }
        svg.push_str("</svg>");
        svg
    }

    /// evcxr calls this to show a `TaskStream` as a cell's result: the chart.
    pub fn evcxr_display(&self) {
        evcxr_bundle(&[
            ("image/svg+xml", &self.svg()),
            ("text/plain", &self.to_string()),
        ]);
    }
}

impl std::fmt::Display for TaskStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} chunks", self.records.len())?;
        for r in &self.records {
            writeln!(
                f,
                "{:<18} tasks {:>8}..{:<8} {:>8.3}s -> {:>8.3}s{}",
                r.worker,
                r.first,
                r.first + r.tasks,
                r.start,
                r.end,
                if r.ok { "" } else { "  failed" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }

    #[test]
    fn chunk_tasks_count_from_the_plan() {
        let mut w = Watch::new(Progress::Never);
        w.plan(7, "map", Some(10), 4, CallWatch::default());
        w.chunk_done("W-1", 1, 7, 8, (10, 20), true);
        w.chunk_done("W-1", 1, 7, 0, (0, 10), true);
        assert_eq!(w.tracks[&7].done, 6);
        let s = w.stream();
        assert_eq!(s.records()[0].tasks, 2);
        assert!(s.svg().contains("W-1"));
    }
}
