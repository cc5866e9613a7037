//! [`KernelClient`]: starts a kernel from its spec, connects the shell, iopub and
//! control channels, and runs cells, interrupts and shutdowns for tests.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::Value;

use crate::connection::ConnectionInfo;
use crate::error::{Error, Result};
use crate::kernelspec::KernelSpec;
use crate::messages::{
    ErrorContent, ExecuteReply, ExecuteRequest, ExecutionState, KernelInfoReply, Message,
    MimeBundle, ReplyStatus, Shutdown, Status, StatusReply, Stream,
};
use crate::signing::Signer;
use crate::wire;

/// How long to wait for things; see [`KernelOptions::default`] for the values.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// From process start until the kernel answers `kernel_info` and iopub delivers.
    pub startup_timeout: Duration,
    /// Default time for one cell ([`KernelClient::execute`]).
    pub execute_timeout: Duration,
    /// For control replies (interrupt, shutdown) and other short requests.
    pub reply_timeout: Duration,
    /// How long to keep reading iopub after a cell's `execute_reply` and `status: idle`,
    /// for stderr that evcxr sends late. evcxr reads the runtime's stderr on a thread of
    /// its own and forwards it regardless of the cell state, so stderr written just
    /// before the cell returned can be published after `idle` (evcxr issue #353);
    /// stdout cannot. This grace drain puts such stderr into the cell that produced it.
    pub stderr_grace: Duration,
    /// Working directory of the kernel (Jupyter uses the notebook's folder); `None` keeps ours.
    pub working_dir: Option<PathBuf>,
    /// Extra environment variables for the kernel, applied after the spec's `env`.
    pub extra_env: Vec<(String, String)>,
}

impl Default for KernelOptions {
    /// Startup 120 s, cell 60 s, replies 30 s, stderr grace 300 ms.
    fn default() -> Self {
        KernelOptions {
            startup_timeout: Duration::from_secs(120),
            execute_timeout: Duration::from_secs(60),
            reply_timeout: Duration::from_secs(30),
            stderr_grace: Duration::from_millis(300),
            working_dir: None,
            extra_env: Vec::new(),
        }
    }
}

/// One output of a cell, in the order it arrived on iopub.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// `stream` text; `name` is "stdout" or "stderr".
    Stream {
        /// "stdout" or "stderr".
        name: String,
        /// The text.
        text: String,
    },
    /// `execute_result` or `display_data`: MIME type -> data.
    Data {
        /// "execute_result" or "display_data".
        kind: String,
        /// MIME type -> data.
        data: BTreeMap<String, Value>,
    },
    /// `error`.
    Error(ErrorContent),
}

/// Everything one cell produced.
#[derive(Debug, Clone)]
pub struct ExecuteOutcome {
    /// The `msg_id` of the `execute_request`.
    pub msg_id: String,
    /// `status` of the `execute_reply`.
    pub status: ReplyStatus,
    /// The whole `execute_reply` content.
    pub reply: ExecuteReply,
    /// All `stdout` stream text, concatenated.
    pub stdout: String,
    /// All `stderr` stream text, concatenated (including [`ExecuteOutcome::late_stderr`]).
    pub stderr: String,
    /// The part of `stderr` that arrived after `status: idle`, during the grace drain.
    pub late_stderr: String,
    /// `execute_result`/`display_data` data, MIME type -> data (the last one per type wins).
    pub results: BTreeMap<String, Value>,
    /// iopub `error` messages.
    pub errors: Vec<ErrorContent>,
    /// All outputs in arrival order (for comparing with a notebook).
    pub outputs: Vec<Output>,
    /// From sending the request to `execute_reply` + `idle` (grace drain not included).
    pub elapsed: Duration,
    /// Every iopub message of the cell but `status` and `execute_input` (update_display_data
    /// included), with when it arrived after the request was sent: for checking that output
    /// comes while the cell runs.
    pub timeline: Vec<TimedMessage>,
    /// The `input_request`s of the cell and their answers (only with
    /// [`KernelClient::execute_with_input`]; other cells do not allow stdin).
    pub inputs: Vec<InputExchange>,
    /// `display_id` of each `display_data` that had one -> its index in `outputs`, so that an
    /// `update_display_data` replaces that output's data, as a front end redraws it in place
    /// (the live progress display of a pool: a notebook saves its last state, not its first).
    pub displays: BTreeMap<String, usize>,
}

/// An `input_request` the kernel sent on stdin while a cell ran, and the answer given.
#[derive(Debug, Clone, PartialEq)]
pub struct InputExchange {
    /// The prompt the cell showed.
    pub prompt: String,
    /// True for a password (the front end hides what is typed).
    pub password: bool,
    /// The value sent back in `input_reply`.
    pub answer: String,
}

/// One iopub message of a cell and when it arrived.
#[derive(Debug, Clone)]
pub struct TimedMessage {
    /// Time since the `execute_request` was sent.
    pub at: Duration,
    /// `stream`, `display_data`, `update_display_data`, `error`, ...
    pub msg_type: String,
    /// The message's content.
    pub content: Value,
}

impl ExecuteOutcome {
    /// The outcome of request `msg_id` before anything arrived.
    fn awaiting(msg_id: &str) -> ExecuteOutcome {
        ExecuteOutcome {
            msg_id: msg_id.to_string(),
            status: ReplyStatus::Other,
            reply: ExecuteReply {
                status: ReplyStatus::Other,
                execution_count: None,
                ename: None,
                evalue: None,
                traceback: None,
            },
            stdout: String::new(),
            stderr: String::new(),
            late_stderr: String::new(),
            results: BTreeMap::new(),
            errors: Vec::new(),
            outputs: Vec::new(),
            elapsed: Duration::ZERO,
            timeline: Vec::new(),
            inputs: Vec::new(),
            displays: BTreeMap::new(),
        }
    }

    /// True if the reply status is not ok or an `error` message arrived.
    pub fn is_error(&self) -> bool {
        self.status != ReplyStatus::Ok || !self.errors.is_empty()
    }

    /// The data of MIME type `mime` as text, if it is a string (or list of strings).
    pub fn result_text(&self, mime: &str) -> Option<String> {
        json_text(self.results.get(mime)?)
    }

    /// All error text of the cell: reply fields and iopub `error` messages
    /// (name, value and traceback lines, ANSI codes kept).
    pub fn error_text(&self) -> String {
        let mut text = String::new();
        for part in [&self.reply.ename, &self.reply.evalue]
            .into_iter()
            .flatten()
        {
            text.push_str(part);
            text.push('\n');
        }
        for line in self.reply.traceback.iter().flatten() {
            text.push_str(line);
            text.push('\n');
        }
        for error in &self.errors {
            text.push_str(&error.ename);
            text.push('\n');
            text.push_str(&error.evalue);
            text.push('\n');
            for line in &error.traceback {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

/// The text of a MIME bundle value: a string, or a list of strings joined.
pub fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|part| part.as_str())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.concat()),
        _ => None,
    }
}

/// What [`KernelClient::shutdown`] observed.
#[derive(Debug, Clone)]
pub struct ShutdownOutcome {
    /// The kernel sent `shutdown_reply`.
    pub replied: bool,
    /// The kernel process ended by itself (not killed by the client).
    pub exited_by_itself: bool,
    /// How the kernel process ended.
    pub exit_status: ExitStatus,
    /// From sending the request to the process being reaped.
    pub elapsed: Duration,
}

/// The channels a message can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Requests and replies.
    Shell,
    /// Broadcast output and status.
    Iopub,
    /// Interrupt and shutdown.
    Control,
    /// The kernel's requests for input (`input_request`) and their replies.
    Stdin,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Shell => "shell",
            Channel::Iopub => "iopub",
            Channel::Control => "control",
            Channel::Stdin => "stdin",
        }
    }
}

/// Lines of the kernel log shown in errors.
const LOG_TAIL_LINES: usize = 40;
/// Kept messages that belong to no awaited request.
const MAX_STRAY_MESSAGES: usize = 10_000;
/// Numbers the work directories of kernels started by this process.
static KERNEL_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running kernel and the client's connection to it. The kernel is shut
/// down, then killed with its whole process group, when this is dropped; it is
/// also killed if the thread that started it ends first.
pub struct KernelClient {
    // Sockets before the context, so they close first.
    shell: zmq::Socket,
    iopub: zmq::Socket,
    control: zmq::Socket,
    stdin: zmq::Socket,
    _context: zmq::Context,
    signer: Signer,
    session: String,
    child: Option<Child>,
    pid: u32,
    exit_status: Option<ExitStatus>,
    work_dir: PathBuf,
    log_path: PathBuf,
    connection: ConnectionInfo,
    kernel_info: KernelInfoReply,
    stray: VecDeque<(Channel, Message)>,
    /// Requests sent with `send_execute` and not yet awaited, and the messages (status
    /// included) that arrived for them while another one was awaited.
    outstanding: std::collections::HashSet<String>,
    held: VecDeque<(Channel, Message)>,
    options: KernelOptions,
    spec_name: String,
    startup_time: Duration,
    /// Not `Send`: the kernel dies with the thread that started it (see `die_with_this_thread`).
    _not_send: std::marker::PhantomData<*const ()>,
}

impl std::fmt::Debug for KernelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelClient")
            .field("kernel", &self.spec_name)
            .field("pid", &self.pid)
            .field("work_dir", &self.work_dir)
            .finish_non_exhaustive()
    }
}

impl KernelClient {
    /// Finds kernel spec `name` in `kernel_dirs` and starts it (see [`KernelClient::start`]).
    pub fn start_by_name(
        name: &str,
        kernel_dirs: &[PathBuf],
        options: KernelOptions,
    ) -> Result<KernelClient> {
        let spec = KernelSpec::find(name, kernel_dirs)?;
        KernelClient::start(&spec, options)
    }

    /// Starts the kernel of `spec` as Jupyter does and waits until it is ready.
    ///
    /// Writes a connection file with free ports and a random key into a fresh
    /// temporary directory, runs `argv` with `{connection_file}`/`{resource_dir}`
    /// substituted and the spec's `env` applied (plus `JPY_PARENT_PID`), in a process
    /// group of its own (Jupyter starts a new session, which also makes one; the group
    /// lets [`Drop`] kill everything the kernel left). Kernel stdout/stderr go to
    /// `kernel.log` in that directory. Then repeats `kernel_info_request` until a reply
    /// and some iopub message have both arrived (the slow-joiner problem of SUB sockets).
    pub fn start(spec: &KernelSpec, options: KernelOptions) -> Result<KernelClient> {
        let started = Instant::now();
        let spec_name = spec.name();
        let work_dir = std::env::temp_dir().join(format!(
            "kernel-client-{}-{}",
            std::process::id(),
            KERNEL_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&work_dir)
            .map_err(Error::io(format!("create {}", work_dir.display())))?;
        let connection = ConnectionInfo::with_free_ports(&spec_name)?;
        let connection_file = work_dir.join("connection.json");
        connection.write(&connection_file)?;
        let log_path = work_dir.join("kernel.log");
        let log =
            File::create(&log_path).map_err(Error::io(format!("create {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(Error::io("duplicate kernel log handle"))?;

        let argv: Vec<String> = spec
            .argv
            .iter()
            .map(|arg| spec.substitute(arg, &connection_file))
            .collect();
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env("JPY_PARENT_PID", std::process::id().to_string());
        for (key, value) in &spec.env {
            command.env(key, spec.substitute(value, &connection_file));
        }
        for (key, value) in &options.extra_env {
            command.env(key, value);
        }
        if let Some(dir) = &options.working_dir {
            command.current_dir(dir);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        die_with_this_thread(&mut command);
        let child = command
            .spawn()
            .map_err(Error::io(format!("start kernel {argv:?}")))?;
        let pid = child.id();

        let context = zmq::Context::new();
        // The kernel sends input_request to the stdin peer with the identity of the shell peer
        // that sent the execute_request (messaging spec: "stdin ... ROUTER/DEALER"), so the
        // two DEALERs share one identity.
        let identity = uuid::Uuid::new_v4().to_string();
        let socket = |kind: zmq::SocketType, port: u16, what: &str| -> Result<zmq::Socket> {
            let socket = context
                .socket(kind)
                .map_err(Error::zmq(format!("create {what} socket")))?;
            socket
                .set_linger(0)
                .map_err(Error::zmq(format!("set linger on {what}")))?;
            if kind == zmq::DEALER && what != "control" {
                socket
                    .set_identity(identity.as_bytes())
                    .map_err(Error::zmq(format!("set identity on {what}")))?;
            }
            socket
                .connect(&connection.endpoint(port))
                .map_err(Error::zmq(format!("connect {what}")))?;
            Ok(socket)
        };
        let shell = socket(zmq::DEALER, connection.shell_port, "shell")?;
        let iopub = socket(zmq::SUB, connection.iopub_port, "iopub")?;
        iopub
            .set_subscribe(b"")
            .map_err(Error::zmq("subscribe iopub"))?;
        let control = socket(zmq::DEALER, connection.control_port, "control")?;
        let stdin = socket(zmq::DEALER, connection.stdin_port, "stdin")?;

        let mut client = KernelClient {
            shell,
            iopub,
            control,
            stdin,
            _context: context,
            signer: Signer::new(connection.key.as_bytes()),
            session: uuid::Uuid::new_v4().to_string(),
            child: Some(child),
            pid,
            exit_status: None,
            work_dir,
            log_path,
            connection,
            kernel_info: KernelInfoReply::default(),
            stray: VecDeque::new(),
            outstanding: std::collections::HashSet::new(),
            held: VecDeque::new(),
            options,
            spec_name,
            startup_time: Duration::ZERO,
            _not_send: std::marker::PhantomData,
        };
        client.wait_ready(started + client.options.startup_timeout)?;
        client.startup_time = started.elapsed();
        Ok(client)
    }

    /// Repeats `kernel_info_request` until a reply to one of them and any iopub
    /// message have both arrived.
    fn wait_ready(&mut self, deadline: Instant) -> Result<()> {
        let mut request_ids: Vec<String> = Vec::new();
        let mut reply: Option<KernelInfoReply> = None;
        let mut iopub_seen = false;
        let awaited = "kernel_info_reply and a first iopub message (kernel startup)";
        while reply.is_none() || !iopub_seen {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    awaited: format!(
                        "{awaited}; reply {}, iopub {}; end of kernel log:\n{}",
                        if reply.is_some() {
                            "arrived"
                        } else {
                            "missing"
                        },
                        if iopub_seen { "arrived" } else { "missing" },
                        self.log_tail()
                    ),
                    after: self.options.startup_timeout,
                });
            }
            let request =
                Message::new(&self.session, "kernel_info_request", &serde_json::json!({}))?;
            request_ids.push(request.header.msg_id.clone());
            self.send(Channel::Shell, &request)?;
            let round_end = deadline.min(Instant::now() + Duration::from_secs(1));
            while let Some((channel, message)) =
                self.receive(&[Channel::Shell, Channel::Iopub], round_end, awaited)?
            {
                match channel {
                    Channel::Iopub => iopub_seen = true,
                    _ if message.msg_type() == "kernel_info_reply"
                        && message
                            .parent_msg_id()
                            .is_some_and(|id| request_ids.iter().any(|r| r == id)) =>
                    {
                        reply = Some(message.content_as()?);
                    }
                    _ => {}
                }
                if reply.is_some() && iopub_seen {
                    break;
                }
            }
        }
        self.kernel_info = reply.unwrap_or_default();
        // Replies to the other kernel_info_requests may still come; they are
        // ignored as they match no awaited msg_id.
        Ok(())
    }

    /// The kernel's `kernel_info_reply`.
    pub fn kernel_info(&self) -> &KernelInfoReply {
        &self.kernel_info
    }

    /// Pid of the kernel process (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How long [`KernelClient::start`] took until the kernel was ready.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The options the kernel was started with.
    pub fn options(&self) -> &KernelOptions {
        &self.options
    }

    /// The connection info written for the kernel.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// Path of the file receiving the kernel process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of the kernel log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Messages that arrived while waiting for something else and belonged to no
    /// awaited request (e.g. output of an earlier cell), oldest first; `status`,
    /// `execute_input` and `kernel_info_reply` messages are not kept. Empties the list.
    pub fn take_stray(&mut self) -> Vec<(Channel, Message)> {
        self.stray.drain(..).collect()
    }

    /// Runs `code` and waits up to [`KernelOptions::execute_timeout`].
    pub fn execute(&mut self, code: &str) -> Result<ExecuteOutcome> {
        let timeout = self.options.execute_timeout;
        self.execute_with_timeout(code, timeout)
    }

    /// Runs `code` and waits up to `timeout` for it.
    pub fn execute_with_timeout(
        &mut self,
        code: &str,
        timeout: Duration,
    ) -> Result<ExecuteOutcome> {
        let msg_id = self.send_execute(code)?;
        self.wait_execute(&msg_id, timeout)
    }

    /// Sends an `execute_request` without waiting; returns its `msg_id` for
    /// [`KernelClient::wait_execute`].
    pub fn send_execute(&mut self, code: &str) -> Result<String> {
        self.send_execute_request(&ExecuteRequest::new(code))
    }

    fn send_execute_request(&mut self, content: &ExecuteRequest) -> Result<String> {
        let request = Message::new(&self.session, "execute_request", content)?;
        self.send(Channel::Shell, &request)?;
        self.outstanding.insert(request.header.msg_id.clone());
        Ok(request.header.msg_id)
    }

    /// Runs `code` with `allow_stdin` true, as JupyterLab does, and answers each
    /// `input_request` the kernel sends on stdin with the next of `answers` (an empty line
    /// once they are used up); the exchanges are in [`ExecuteOutcome::inputs`]. Waits up to
    /// [`KernelOptions::execute_timeout`].
    pub fn execute_with_input(&mut self, code: &str, answers: &[&str]) -> Result<ExecuteOutcome> {
        let mut request = ExecuteRequest::new(code);
        request.allow_stdin = true;
        let msg_id = self.send_execute_request(&request)?;
        let mut answers: VecDeque<String> = answers.iter().map(|a| a.to_string()).collect();
        let timeout = self.options.execute_timeout;
        self.wait_execute_answering(&msg_id, timeout, &mut answers)
    }

    /// Waits for the `execute_reply` and the iopub `status: idle` of request
    /// `msg_id`, collecting its outputs, then drains iopub for
    /// [`KernelOptions::stderr_grace`] to catch stderr that evcxr publishes after idle.
    pub fn wait_execute(&mut self, msg_id: &str, timeout: Duration) -> Result<ExecuteOutcome> {
        self.wait_execute_answering(msg_id, timeout, &mut VecDeque::new())
    }

    /// [`KernelClient::wait_execute`], answering input requests from `answers`.
    fn wait_execute_answering(
        &mut self,
        msg_id: &str,
        timeout: Duration,
        answers: &mut VecDeque<String>,
    ) -> Result<ExecuteOutcome> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut outcome = ExecuteOutcome::awaiting(msg_id);
        let mut replied = false;
        let mut idle = false;
        let awaited = format!("execute_reply and iopub status idle for execute_request {msg_id}");
        self.outstanding.remove(msg_id);
        while !(replied && idle) {
            let held = self
                .held
                .iter()
                .position(|(_, m)| m.parent_msg_id() == Some(msg_id));
            let received = match held {
                Some(at) => self.held.remove(at),
                None => self.receive(
                    &[Channel::Shell, Channel::Iopub, Channel::Stdin],
                    deadline,
                    &awaited,
                )?,
            };
            let Some((channel, message)) = received else {
                return Err(Error::Timeout {
                    awaited: format!(
                        "{awaited} (execute_reply {}, idle {}; stdout so far: {:?}; stderr so far: {:?})",
                        if replied { "arrived" } else { "missing" },
                        if idle { "arrived" } else { "missing" },
                        tail(&outcome.stdout, 500),
                        tail(&outcome.stderr, 500),
                    ),
                    after: timeout,
                });
            };
            if message.parent_msg_id() != Some(msg_id) {
                if message
                    .parent_msg_id()
                    .is_some_and(|parent| self.outstanding.contains(parent))
                {
                    self.held.push_back((channel, message));
                } else {
                    self.keep_stray(channel, message);
                }
                continue;
            }
            match (channel, message.msg_type()) {
                (Channel::Shell, "execute_reply") => {
                    let reply: ExecuteReply = message.content_as()?;
                    outcome.status = reply.status;
                    outcome.reply = reply;
                    replied = true;
                }
                (Channel::Stdin, "input_request") => {
                    let answer = answers.pop_front().unwrap_or_default();
                    let mut reply = Message::new(
                        &self.session,
                        "input_reply",
                        &serde_json::json!({"value": answer}),
                    )?;
                    reply.parent_header = Some(message.header.clone());
                    self.send(Channel::Stdin, &reply)?;
                    outcome.inputs.push(InputExchange {
                        prompt: message.content["prompt"].as_str().unwrap_or("").to_string(),
                        password: message.content["password"].as_bool().unwrap_or(false),
                        answer,
                    });
                }
                (Channel::Iopub, "status") => {
                    let status: Status = message.content_as()?;
                    if status.execution_state == ExecutionState::Idle {
                        idle = true;
                    }
                }
                (Channel::Iopub, msg_type) => {
                    if msg_type != "execute_input" {
                        outcome.timeline.push(TimedMessage {
                            at: started.elapsed(),
                            msg_type: msg_type.to_string(),
                            content: message.content.clone(),
                        });
                    }
                    collect_output(&mut outcome, &message, false)?
                }
                _ => self.keep_stray(channel, message),
            }
        }
        outcome.elapsed = started.elapsed();

        let grace_end = Instant::now() + self.options.stderr_grace;
        while let Some((channel, message)) = self.receive(&[Channel::Iopub], grace_end, &awaited)? {
            if message.parent_msg_id() == Some(msg_id) {
                if message.msg_type() != "status" {
                    outcome.timeline.push(TimedMessage {
                        at: started.elapsed(),
                        msg_type: message.msg_type().to_string(),
                        content: message.content.clone(),
                    });
                }
                collect_output(&mut outcome, &message, true)?;
            } else if message
                .parent_msg_id()
                .is_some_and(|parent| self.outstanding.contains(parent))
            {
                self.held.push_back((channel, message));
            } else {
                self.keep_stray(channel, message);
            }
        }
        Ok(outcome)
    }

    /// Connects a second iopub subscriber, as a front end that joins a running kernel does,
    /// and returns it with the first message it receives within `timeout` (`None` if none
    /// came): with JEP 65 that is the kernel's `iopub_welcome`. Read the subscriber further
    /// with [`KernelClient::receive_on`].
    pub fn subscribe_iopub(&self, timeout: Duration) -> Result<(zmq::Socket, Option<Message>)> {
        let subscriber = self
            ._context
            .socket(zmq::SUB)
            .map_err(Error::zmq("create second iopub socket"))?;
        subscriber
            .set_linger(0)
            .map_err(Error::zmq("set linger on second iopub"))?;
        subscriber
            .connect(&self.connection.endpoint(self.connection.iopub_port))
            .map_err(Error::zmq("connect second iopub"))?;
        subscriber
            .set_subscribe(b"")
            .map_err(Error::zmq("subscribe second iopub"))?;
        let first = self.receive_on(&subscriber, timeout)?;
        Ok((subscriber, first))
    }

    /// The next message on `socket` (a socket of [`KernelClient::subscribe_iopub`]) within
    /// `timeout`, checked with this kernel's key.
    pub fn receive_on(&self, socket: &zmq::Socket, timeout: Duration) -> Result<Option<Message>> {
        let ready = socket
            .poll(zmq::POLLIN, timeout.as_millis().max(1) as i64)
            .map_err(Error::zmq("poll second iopub"))?;
        if ready == 0 {
            return Ok(None);
        }
        let frames = socket
            .recv_multipart(0)
            .map_err(Error::zmq("receive on second iopub"))?;
        wire::decode(frames, &self.signer, "iopub").map(Some)
    }

    /// Sends `interrupt_request` on control and waits for `interrupt_reply`.
    /// With evcxr this kills the code-running subprocess; the interrupted cell
    /// then ends with an error and must still be awaited with
    /// [`KernelClient::wait_execute`].
    pub fn interrupt(&mut self) -> Result<StatusReply> {
        let reply = self.request(
            Channel::Control,
            "interrupt_request",
            &serde_json::json!({}),
        )?;
        reply.content_as()
    }

    /// Sends a request on `channel` and waits up to [`KernelOptions::reply_timeout`] for
    /// the reply whose parent it is. Other messages are kept for [`KernelClient::take_stray`]
    /// (on control) or left queued (shell, iopub).
    pub fn request<C: Serialize>(
        &mut self,
        channel: Channel,
        msg_type: &str,
        content: &C,
    ) -> Result<Message> {
        let request_id = self.send_message(channel, msg_type, content)?;
        let timeout = self.options.reply_timeout;
        let deadline = Instant::now() + timeout;
        let reply_type = msg_type.replace("_request", "_reply");
        let awaited = format!("{reply_type} on {}", channel.name());
        loop {
            match self.receive(&[channel], deadline, &awaited)? {
                None => {
                    return Err(Error::Timeout {
                        awaited,
                        after: timeout,
                    })
                }
                Some((_, message)) if message.parent_msg_id() == Some(&request_id) => {
                    return Ok(message)
                }
                Some((from, message)) => self.keep_stray(from, message),
            }
        }
    }

    /// Sends a message on `channel` without waiting for anything (e.g. `comm_msg`, which has
    /// no reply); returns its `msg_id`.
    pub fn send_message<C: Serialize>(
        &mut self,
        channel: Channel,
        msg_type: &str,
        content: &C,
    ) -> Result<String> {
        let message = Message::new(&self.session, msg_type, content)?;
        self.send(channel, &message)?;
        Ok(message.header.msg_id)
    }

    /// Asks the kernel to shut down on control, waits for the reply and for the process
    /// to end (each up to [`KernelOptions::reply_timeout`]), killing the kernel
    /// process if it does not end. Processes the kernel left behind are *not*
    /// touched here (tests look for them); [`Drop`] kills them.
    pub fn shutdown(&mut self) -> Result<ShutdownOutcome> {
        let started = Instant::now();
        let timeout = self.options.reply_timeout;
        let replied = match self.request(
            Channel::Control,
            "shutdown_request",
            &Shutdown { restart: false },
        ) {
            Ok(_) => true,
            Err(Error::KernelExited { .. }) | Err(Error::Timeout { .. }) => false,
            Err(other) => return Err(other),
        };
        let exited_by_itself = self.wait_exit(Instant::now() + timeout)?.is_some();
        if !exited_by_itself {
            self.kill_kernel_process();
        }
        let exit_status =
            self.wait_exit(Instant::now() + timeout)?
                .ok_or_else(|| Error::Timeout {
                    awaited: format!("kernel process {} to end after SIGKILL", self.pid),
                    after: timeout,
                })?;
        Ok(ShutdownOutcome {
            replied,
            exited_by_itself,
            exit_status,
            elapsed: started.elapsed(),
        })
    }

    /// True while the kernel process has not ended.
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// Reaps the kernel process if it has ended.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.exit_status = Some(status);
                }
            }
        }
        self.exit_status
    }

    /// Waits until the kernel process ends or `deadline` passes.
    fn wait_exit(&mut self, deadline: Instant) -> Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the kernel process only.
    fn kill_kernel_process(&mut self) {
        if self.poll_exit().is_none() {
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
            }
        }
    }

    fn socket(&self, channel: Channel) -> &zmq::Socket {
        match channel {
            Channel::Shell => &self.shell,
            Channel::Iopub => &self.iopub,
            Channel::Control => &self.control,
            Channel::Stdin => &self.stdin,
        }
    }

    fn send(&self, channel: Channel, message: &Message) -> Result<()> {
        let frames = wire::encode(message, &self.signer)?;
        self.socket(channel)
            .send_multipart(frames, 0)
            .map_err(Error::zmq(format!(
                "send {} on {}",
                message.msg_type(),
                channel.name()
            )))
    }

    /// Waits until a message arrives on one of `channels` (returned) or `deadline`
    /// passes (`None`). Fails with [`Error::KernelExited`] if the kernel process ends.
    fn receive(
        &mut self,
        channels: &[Channel],
        deadline: Instant,
        awaited: &str,
    ) -> Result<Option<(Channel, Message)>> {
        loop {
            // Take what is already queued before looking at the clock.
            for &channel in channels {
                match self.socket(channel).recv_multipart(zmq::DONTWAIT) {
                    Ok(frames) => {
                        let message = wire::decode(frames, &self.signer, channel.name())?;
                        return Ok(Some((channel, message)));
                    }
                    Err(zmq::Error::EAGAIN) => {}
                    Err(error) => {
                        return Err(Error::Zmq {
                            op: format!("receive on {}", channel.name()),
                            source: error,
                        })
                    }
                }
            }
            if let Some(status) = self.poll_exit() {
                return Err(Error::KernelExited {
                    status: status.to_string(),
                    awaited: awaited.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(Duration::from_millis(200));
            let mut items: Vec<zmq::PollItem> = channels
                .iter()
                .map(|&channel| self.socket(channel).as_poll_item(zmq::POLLIN))
                .collect();
            zmq::poll(&mut items, wait.as_millis().max(1) as i64).map_err(Error::zmq("poll"))?;
        }
    }

    fn keep_stray(&mut self, channel: Channel, message: Message) {
        // Status changes, the answers to the extra kernel_info_requests of startup and
        // the welcomes of new iopub subscribers say nothing about outputs: not kept.
        if matches!(
            message.msg_type(),
            "status" | "execute_input" | "kernel_info_reply" | "iopub_welcome"
        ) {
            return;
        }
        if self.stray.len() >= MAX_STRAY_MESSAGES {
            self.stray.pop_front();
        }
        self.stray.push_back((channel, message));
    }
}

/// Makes the kernel process get SIGKILL when the thread that starts it ends, so a
/// test process that is killed (e.g. by a CI time-out) leaves no kernel behind; the
/// kernel's own children then follow (the launcher's evcxr has a parent-death signal,
/// evcxr's runtime ends when its stdin closes, the crate's children have one too).
/// Linux sends the signal when the *thread* that forked exits: a client must be
/// used and dropped on the thread that started it, so [`KernelClient`] is not `Send`.
fn die_with_this_thread(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid) and `_exit`; it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The parent may have died before the call took effect.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Adds one iopub message of a cell to its outcome.
fn collect_output(outcome: &mut ExecuteOutcome, message: &Message, after_idle: bool) -> Result<()> {
    match message.msg_type() {
        "stream" => {
            let stream: Stream = message.content_as()?;
            match stream.name.as_str() {
                "stdout" => outcome.stdout.push_str(&stream.text),
                _ => {
                    outcome.stderr.push_str(&stream.text);
                    if after_idle {
                        outcome.late_stderr.push_str(&stream.text);
                    }
                }
            }
            outcome.outputs.push(Output::Stream {
                name: stream.name,
                text: stream.text,
            });
        }
        kind @ ("execute_result" | "display_data") => {
            let bundle: MimeBundle = message.content_as()?;
            outcome.results.extend(bundle.data.clone());
            if let Some(id) = display_id(message) {
                outcome.displays.insert(id, outcome.outputs.len());
            }
            outcome.outputs.push(Output::Data {
                kind: kind.to_string(),
                data: bundle.data,
            });
        }
        "update_display_data" => {
            let bundle: MimeBundle = message.content_as()?;
            let shown = display_id(message).and_then(|id| outcome.displays.get(&id).copied());
            if let Some(Output::Data { data, .. }) = shown.and_then(|i| outcome.outputs.get_mut(i))
            {
                outcome.results.extend(bundle.data.clone());
                *data = bundle.data;
            }
        }
        "error" => {
            let error: ErrorContent = message.content_as()?;
            outcome.errors.push(error.clone());
            outcome.outputs.push(Output::Error(error));
        }
        // execute_input, status, clear_output, ...: nothing to keep.
        _ => {}
    }
    Ok(())
}

/// The `transient.display_id` of a `display_data` / `update_display_data` message.
fn display_id(message: &Message) -> Option<String> {
    let content: Value = message.content_as().ok()?;
    content["transient"]["display_id"]
        .as_str()
        .map(str::to_string)
}

/// The last `max` characters of `text`.
fn tail(text: &str, max: usize) -> &str {
    let count = text.chars().count();
    if count <= max {
        return text;
    }
    let (start, _) = text.char_indices().nth(count - max).unwrap_or((0, ' '));
    &text[start..]
}

impl Drop for KernelClient {
    /// Shuts the kernel down if it still runs (short timeouts), kills it if that
    /// fails, then kills whatever is left in its process group and removes the
    /// work directory. Never leaves a kernel behind.
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            self.options.reply_timeout = Duration::from_secs(3);
            if self.shutdown().is_err() {
                self.kill_kernel_process();
            }
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
        }
        // Everything the kernel started and that did not change group (orphans too).
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_process_dies_with_the_thread_that_started_it() {
        let child = std::thread::spawn(|| {
            let mut command = Command::new("sleep");
            command.arg("60");
            die_with_this_thread(&mut command);
            command.spawn().unwrap()
        })
        .join()
        .unwrap();
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.and_then(|s| s.signal()), Some(9), "{status:?}");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("äöüß", 2), "üß");
    }

    #[test]
    fn json_text_joins_lists() {
        assert_eq!(json_text(&serde_json::json!("a")), Some("a".to_string()));
        assert_eq!(
            json_text(&serde_json::json!(["a\n", "b"])),
            Some("a\nb".to_string())
        );
        assert_eq!(json_text(&serde_json::json!({"x": 1})), None);
    }

    fn iopub(msg_type: &str, content: Value) -> Message {
        let mut message = Message::new("s", msg_type, &content).unwrap();
        message.parent_header = Some(crate::messages::Header::new("c", "execute_request"));
        message
    }

    #[test]
    fn collects_outputs_in_order() {
        let mut outcome = ExecuteOutcome::awaiting("m");
        let messages = [
            iopub("stream", serde_json::json!({"name":"stdout","text":"a\n"})),
            iopub(
                "execute_result",
                serde_json::json!({"data":{"text/plain":"2"},"metadata":{},"execution_count":2}),
            ),
            iopub(
                "error",
                serde_json::json!({"ename":"E","evalue":"bad","traceback":["t"]}),
            ),
        ];
        for message in &messages {
            collect_output(&mut outcome, message, false).unwrap();
        }
        collect_output(
            &mut outcome,
            &iopub(
                "stream",
                serde_json::json!({"name":"stderr","text":"late\n"}),
            ),
            true,
        )
        .unwrap();
        assert_eq!(outcome.stdout, "a\n");
        assert_eq!(outcome.stderr, "late\n");
        assert_eq!(outcome.late_stderr, "late\n");
        assert_eq!(outcome.result_text("text/plain").as_deref(), Some("2"));
        assert!(outcome.is_error());
        assert_eq!(outcome.outputs.len(), 4);
        assert!(outcome.error_text().contains("bad"));
    }

    #[test]
    fn an_update_replaces_the_display_it_names() {
        let mut outcome = ExecuteOutcome::awaiting("m");
        let shown = |text: &str| serde_json::json!({"data":{"text/plain":text},"metadata":{},"transient":{"display_id":"p1"}});
        let messages = [
            iopub("display_data", shown("0/10 tasks")),
            iopub("stream", serde_json::json!({"name":"stdout","text":"a\n"})),
            iopub("update_display_data", shown("5/10 tasks")),
            iopub(
                "update_display_data",
                serde_json::json!({"data":{"text/plain":"other"},"metadata":{},"transient":{"display_id":"p2"}}),
            ),
            iopub("update_display_data", shown("map: 10 tasks in 1 s")),
        ];
        for message in &messages {
            collect_output(&mut outcome, message, false).unwrap();
        }
        // The display keeps its place (before the stream) and shows its last state; an update
        // of a display this cell did not show changes nothing.
        assert_eq!(outcome.outputs.len(), 2);
        match &outcome.outputs[0] {
            Output::Data { kind, data } => {
                assert_eq!(kind, "display_data");
                assert_eq!(data["text/plain"], "map: 10 tasks in 1 s");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            outcome.result_text("text/plain").as_deref(),
            Some("map: 10 tasks in 1 s")
        );
    }
}
