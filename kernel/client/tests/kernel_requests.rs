//! The kernel's protocol, complete (messaging spec 5.3): every request type gets its reply, on
//! the channel it came from; comm messages (not requests) are handled without a reply and leave
//! the kernel working; a new iopub subscriber is welcomed (JEP 65) and misses nothing after the
//! welcome; a cell asks the user for input over stdin when the front end allows it, fails clearly
//! when it does not, and a `Process` child that asks gets an error saying it cannot.
//! Needs the project's patched evcxr (kernel/patches 0008-0010) and the crate's output relay.

mod common;

use std::time::{Duration, Instant};

use common::{run, run_ok, start_kernel, Checks};
use kernel_client::messages::{Message, ReplyStatus};
use kernel_client::{Channel, KernelClient};
use serde_json::{json, Value};

/// How long a message may take to arrive (the machine is shared and busy).
const WAIT: Duration = Duration::from_secs(30);

/// What a reply must say.
enum Expect {
    /// This status ("ok", or what is_complete says) and these content fields present.
    Status(&'static str, &'static [&'static str]),
    /// status "error" (a request this kernel does not do) with an evalue naming the request.
    Error,
}

/// One row: a request of the spec, where it is sent, its content, what its reply must say.
struct Row {
    channel: Channel,
    msg_type: &'static str,
    content: Value,
    expect: Expect,
}

fn row(channel: Channel, msg_type: &'static str, content: Value, expect: Expect) -> Row {
    Row {
        channel,
        msg_type,
        content,
        expect,
    }
}

/// The next message on `subscriber` that satisfies `wanted`, skipping others; panics after
/// [`WAIT`] naming what it waited for.
fn next_matching(
    kernel: &KernelClient,
    subscriber: &zmq::Socket,
    what: &str,
    wanted: impl Fn(&Message) -> bool,
) -> Message {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match kernel.receive_on(subscriber, left) {
            Ok(Some(message)) if wanted(&message) => return message,
            Ok(Some(_)) => {}
            Ok(None) => panic!("no {what} on the second iopub subscriber within {WAIT:?}"),
            Err(error) => panic!("waiting for {what}: {error}"),
        }
    }
}

fn is_status_of(message: &Message, parent: &str, state: &str) -> bool {
    message.msg_type() == "status"
        && message.parent_msg_id() == Some(parent)
        && message.content["execution_state"] == state
}

#[test]
fn every_request_is_answered_and_input_reaches_the_cell() {
    let mut kernel = start_kernel("requests");
    let mut checks = Checks::default();

    // A second subscriber, as a front end joining a running kernel: its first message is the
    // welcome, and nothing published after it is lost (busy/idle of every shell request below).
    let (subscriber, first) = kernel
        .subscribe_iopub(WAIT)
        .expect("second iopub subscriber");
    checks.check("a new iopub subscriber is welcomed (JEP 65)", || {
        let first = first.expect("no message on a new iopub subscriber");
        assert_eq!(first.msg_type(), "iopub_welcome", "{first:?}");
        assert_eq!(first.content, json!({"subscription": ""}), "{first:?}");
        assert_eq!(first.parent_header, None, "{first:?}");
    });

    checks.check(
        "every request of the spec gets its reply, of the right type",
        || {
            let rows = [
                row(
                    Channel::Shell,
                    "kernel_info_request",
                    json!({}),
                    Expect::Status("ok", &["protocol_version", "language_info"]),
                ),
                row(
                    Channel::Shell,
                    "execute_request",
                    json!({"code": "6 * 7", "silent": false, "store_history": true,
                           "user_expressions": {}, "allow_stdin": false, "stop_on_error": true}),
                    Expect::Status("ok", &["execution_count"]),
                ),
                row(
                    Channel::Shell,
                    "inspect_request",
                    json!({"code": "std::vec::Vec", "cursor_pos": 10, "detail_level": 0}),
                    Expect::Status("ok", &["found", "data"]),
                ),
                row(
                    Channel::Shell,
                    "complete_request",
                    json!({"code": "std::vec::Ve", "cursor_pos": 12}),
                    Expect::Status("ok", &["matches", "cursor_start", "cursor_end"]),
                ),
                row(
                    Channel::Shell,
                    "history_request",
                    json!({"hist_access_type": "tail", "n": 5, "output": false, "raw": true}),
                    Expect::Status("ok", &["history"]),
                ),
                row(
                    Channel::Shell,
                    "is_complete_request",
                    json!({"code": "fn f() {"}),
                    Expect::Status("incomplete", &["indent"]),
                ),
                row(
                    Channel::Shell,
                    "connect_request",
                    json!({}),
                    Expect::Status(
                        "ok",
                        &[
                            "shell_port",
                            "iopub_port",
                            "stdin_port",
                            "hb_port",
                            "control_port",
                        ],
                    ),
                ),
                row(
                    Channel::Shell,
                    "comm_info_request",
                    json!({}),
                    Expect::Status("ok", &["comms"]),
                ),
                row(
                    Channel::Shell,
                    "comm_info_request",
                    json!({"target_name": "jupyter.widget"}),
                    Expect::Status("ok", &["comms"]),
                ),
                row(
                    Channel::Control,
                    "kernel_info_request",
                    json!({}),
                    Expect::Status("ok", &["protocol_version"]),
                ),
                row(
                    Channel::Control,
                    "interrupt_request",
                    json!({}),
                    Expect::Status("ok", &[]),
                ),
                row(
                    Channel::Control,
                    "debug_request",
                    json!({"seq": 1, "type": "request", "command": "initialize", "arguments": {}}),
                    Expect::Error,
                ),
                row(Channel::Shell, "no_such_request", json!({}), Expect::Error),
                // shutdown_request (control) is the last request: see the end of this test.
            ];
            let mut failures = Vec::new();
            for row in rows {
                let reply_type = row.msg_type.replace("_request", "_reply");
                let reply = match kernel.request(row.channel, row.msg_type, &row.content) {
                    Ok(reply) => reply,
                    Err(error) => {
                        failures.push(format!("{}: {error}", row.msg_type));
                        continue;
                    }
                };
                let content = &reply.content;
                let mut wrong = Vec::new();
                if reply.msg_type() != reply_type {
                    wrong.push(format!("reply type {}", reply.msg_type()));
                }
                match row.expect {
                    Expect::Status(status, fields) => {
                        // kernel_info_reply has had a status since 5.1; evcxr leaves it out.
                        if content["status"] != status
                            && !(reply_type == "kernel_info_reply" && content["status"].is_null())
                        {
                            wrong.push(format!("status {}", content["status"]));
                        }
                        wrong.extend(
                            fields
                                .iter()
                                .filter(|field| content.get(**field).is_none())
                                .map(|field| format!("no {field}")),
                        );
                    }
                    Expect::Error => {
                        if content["status"] != "error" {
                            wrong.push(format!("status {}", content["status"]));
                        }
                        if !content["evalue"]
                            .as_str()
                            .unwrap_or("")
                            .contains(row.msg_type)
                        {
                            wrong.push(format!("evalue {}", content["evalue"]));
                        }
                    }
                }
                if row.channel == Channel::Shell {
                    // Busy and idle on iopub for each shell request, seen by the second subscriber.
                    let id = reply.parent_msg_id().unwrap_or_default().to_string();
                    next_matching(&kernel, &subscriber, "status busy", |m| {
                        is_status_of(m, &id, "busy")
                    });
                    next_matching(&kernel, &subscriber, "status idle", |m| {
                        is_status_of(m, &id, "idle")
                    });
                }
                eprintln!(
                    "  {:<8} {:<20} -> {:<20} status {}{}",
                    format!("{:?}", row.channel).to_lowercase(),
                    row.msg_type,
                    reply.msg_type(),
                    content["status"],
                    content
                        .get("ename")
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
                if !wrong.is_empty() {
                    failures.push(format!(
                        "{}: {} in {content}",
                        row.msg_type,
                        wrong.join(", ")
                    ));
                }
            }
            assert!(failures.is_empty(), "{}", failures.join("\n"));
            let connect = kernel
                .request(Channel::Shell, "connect_request", &json!({}))
                .unwrap()
                .content;
            assert_eq!(
                connect["iopub_port"],
                kernel.connection().iopub_port,
                "{connect}"
            );
        },
    );

    checks.check(
        "comm_open/msg/close: no reply, unknown target closed, kernel still answers",
        || {
            let comm_id = uuid::Uuid::new_v4().to_string();
            kernel
                .send_message(
                    Channel::Shell,
                    "comm_open",
                    &json!({"comm_id": comm_id, "target_name": "no.such.target", "data": {}}),
                )
                .unwrap();
            let closed = next_matching(&kernel, &subscriber, "comm_close", |m| {
                m.msg_type() == "comm_close"
            });
            assert_eq!(closed.content["comm_id"], comm_id.as_str(), "{closed:?}");
            for msg_type in ["comm_msg", "comm_close"] {
                kernel
                    .send_message(
                        Channel::Shell,
                        msg_type,
                        &json!({"comm_id": comm_id, "data": {}}),
                    )
                    .unwrap();
            }
            let reply = kernel
                .request(Channel::Shell, "kernel_info_request", &json!({}))
                .expect("kernel answers after comm messages");
            assert_eq!(reply.msg_type(), "kernel_info_reply");
            assert!(kernel.is_running());
        },
    );

    // evcxr_input is what evcxr offers a cell for reading a line (`get_string`, `get_password`).
    run_ok(&mut kernel, ":dep evcxr_input = \"1\"");

    checks.check(
        "input: input_request on stdin, the answer reaches the cell",
        || {
            let outcome = kernel
                .execute_with_input(
                    "let name = evcxr_input::get_string(\"name? \");\nprintln!(\"hello {name}\");",
                    &["Ada"],
                )
                .expect("cell with input");
            assert_eq!(outcome.status, ReplyStatus::Ok, "{}", outcome.error_text());
            assert_eq!(outcome.inputs.len(), 1, "{:?}", outcome.inputs);
            assert_eq!(outcome.inputs[0].prompt, "name? ");
            assert!(!outcome.inputs[0].password);
            assert_eq!(outcome.stdout, "hello Ada\n");
            let outcome = kernel
                .execute_with_input(
                    "let pin = evcxr_input::get_password(\"pin: \");\nprintln!(\"{}\", pin.len());",
                    &["1234"],
                )
                .expect("cell with a password");
            assert_eq!(outcome.inputs.len(), 1, "{:?}", outcome.inputs);
            assert!(outcome.inputs[0].password);
            assert_eq!(outcome.stdout, "4\n");
        },
    );

    checks.check(
        "input where the front end allows none: StdinNotAllowed",
        || {
            let outcome = run(
                &mut kernel,
                "let name = evcxr_input::get_string(\"name? \");",
            );
            assert_eq!(outcome.status, ReplyStatus::Error, "{outcome:?}");
            assert_eq!(outcome.reply.ename.as_deref(), Some("StdinNotAllowed"));
            let evalue = outcome.reply.evalue.clone().unwrap_or_default();
            assert!(evalue.contains("allow_stdin is false"), "{evalue}");
        },
    );

    checks.check(
        "a Process child that asks for input: an error saying it cannot, nobody is asked",
        || {
            let outcome = kernel
                .execute_with_input(
                    "let mut asker = Process::new(|| {\n\
                         let name = evcxr_input::get_string(\"child? \");\n\
                         println!(\"child got {name:?}\");\n\
                     });\n\
                     asker.start()?;\n\
                     asker.join()?;",
                    &["never used"],
                )
                .expect("cell with an asking child");
            assert_eq!(outcome.status, ReplyStatus::Ok, "{}", outcome.error_text());
            assert!(
                outcome.inputs.is_empty(),
                "the front end was asked: {:?}",
                outcome.inputs
            );
            assert!(
                outcome
                    .stderr
                    .contains("a child process asked for input (prompt \"child? \")")
                    && outcome.stderr.contains("/dev/null"),
                "{:?}",
                outcome.stderr
            );
            assert_eq!(outcome.stdout, "child got \"\"\n");
            // The session goes on (no stray answer on the runtime's stdin).
            assert_eq!(
                run_ok(&mut kernel, "println!(\"after\");").stdout,
                "after\n"
            );
        },
    );

    checks.finish();

    let shutdown = kernel.shutdown().expect("shutdown_request");
    eprintln!("  control  shutdown_request     -> shutdown_reply       {shutdown:?}");
    assert!(
        shutdown.replied && shutdown.exited_by_itself,
        "{shutdown:?}"
    );
}
