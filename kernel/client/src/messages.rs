//! Jupyter messages: the header, the whole message, and serde types for the
//! contents this client sends and reads (protocol 5.3, "Messaging in Jupyter").

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Protocol version this client speaks.
pub const PROTOCOL_VERSION: &str = "5.3";

/// The header of a message (also used as a parent header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Unique id of this message.
    pub msg_id: String,
    /// Session id of the sender.
    pub session: String,
    /// User name of the sender.
    #[serde(default)]
    pub username: String,
    /// ISO 8601 creation time.
    #[serde(default)]
    pub date: String,
    /// Message type, e.g. `execute_request`.
    pub msg_type: String,
    /// Protocol version.
    #[serde(default)]
    pub version: String,
}

impl Header {
    /// A new header with a fresh `msg_id` and the current time.
    pub fn new(session: &str, msg_type: &str) -> Header {
        Header {
            msg_id: uuid::Uuid::new_v4().to_string(),
            session: session.to_string(),
            username: "kernel-client".to_string(),
            date: iso8601_now(),
            msg_type: msg_type.to_string(),
            version: PROTOCOL_VERSION.to_string(),
        }
    }
}

/// One message of any channel, with the content still as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The zmq routing identities in front of the delimiter (empty on DEALER/SUB sockets,
    /// except iopub topics).
    pub identities: Vec<Vec<u8>>,
    /// This message's header.
    pub header: Header,
    /// The header of the request this message answers; `None` when sent as `{}`.
    pub parent_header: Option<Header>,
    /// Metadata dictionary.
    pub metadata: Map<String, Value>,
    /// Content dictionary; use [`Message::content_as`] for a typed view.
    pub content: Value,
    /// Extra binary buffers after the content.
    pub buffers: Vec<Vec<u8>>,
}

impl Message {
    /// A new request of `msg_type` in `session` with `content`.
    pub fn new<C: Serialize>(session: &str, msg_type: &str, content: &C) -> Result<Message> {
        Ok(Message {
            identities: Vec::new(),
            header: Header::new(session, msg_type),
            parent_header: None,
            metadata: Map::new(),
            content: serde_json::to_value(content)
                .map_err(Error::json(format!("{msg_type} content")))?,
            buffers: Vec::new(),
        })
    }

    /// The message type from the header.
    pub fn msg_type(&self) -> &str {
        &self.header.msg_type
    }

    /// The `msg_id` of the parent header, if there is one.
    pub fn parent_msg_id(&self) -> Option<&str> {
        self.parent_header.as_ref().map(|h| h.msg_id.as_str())
    }

    /// The content decoded as `T`.
    pub fn content_as<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.content)
            .map_err(Error::json(format!("content of {}", self.header.msg_type)))
    }
}

/// Status field of replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    /// The request succeeded.
    Ok,
    /// The request failed.
    Error,
    /// The request was not run (an earlier one failed).
    Aborted,
    /// Any other value.
    #[serde(other)]
    Other,
}

/// Content of `execute_request`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecuteRequest {
    /// Source of the cell.
    pub code: String,
    /// Run without broadcasting output or counting.
    pub silent: bool,
    /// Count the cell in the history.
    pub store_history: bool,
    /// Expressions to evaluate after the code.
    pub user_expressions: Map<String, Value>,
    /// Whether the kernel may ask for input on the stdin channel.
    pub allow_stdin: bool,
    /// Abort queued executions on error.
    pub stop_on_error: bool,
}

impl ExecuteRequest {
    /// A normal, non-silent request for `code`, without stdin.
    pub fn new(code: &str) -> ExecuteRequest {
        ExecuteRequest {
            code: code.to_string(),
            silent: false,
            store_history: true,
            user_expressions: Map::new(),
            allow_stdin: false,
            stop_on_error: true,
        }
    }
}

/// Content of `execute_reply`. On error, `ename`/`evalue`/`traceback` should be
/// present, but evcxr leaves them out, so they are optional here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecuteReply {
    /// ok, error or aborted.
    pub status: ReplyStatus,
    /// The execution counter.
    #[serde(default)]
    pub execution_count: Option<i64>,
    /// Error name, on error.
    #[serde(default)]
    pub ename: Option<String>,
    /// Error value, on error.
    #[serde(default)]
    pub evalue: Option<String>,
    /// Traceback lines, on error.
    #[serde(default)]
    pub traceback: Option<Vec<String>>,
}

/// `language_info` of `kernel_info_reply`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LanguageInfo {
    /// Language name, e.g. "rust".
    #[serde(default)]
    pub name: String,
    /// Language version.
    #[serde(default)]
    pub version: String,
    /// File extension including the dot.
    #[serde(default)]
    pub file_extension: String,
    /// MIME type of source files.
    #[serde(default)]
    pub mimetype: String,
}

/// Content of `kernel_info_reply`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KernelInfoReply {
    /// Protocol version the kernel speaks.
    #[serde(default)]
    pub protocol_version: String,
    /// Kernel implementation name.
    #[serde(default)]
    pub implementation: String,
    /// Kernel implementation version.
    #[serde(default)]
    pub implementation_version: String,
    /// The language.
    #[serde(default)]
    pub language_info: LanguageInfo,
    /// Banner text.
    #[serde(default)]
    pub banner: String,
}

/// Kernel execution state in `status` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionState {
    /// Working on a request.
    Busy,
    /// Done with a request.
    Idle,
    /// Starting up.
    Starting,
    /// Any other value.
    #[serde(other)]
    Other,
}

/// Content of iopub `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// busy, idle or starting.
    pub execution_state: ExecutionState,
}

/// Content of iopub `stream`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    /// "stdout" or "stderr".
    pub name: String,
    /// The text.
    pub text: String,
}

/// Content of iopub `execute_result` and `display_data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MimeBundle {
    /// MIME type -> data (usually a string).
    pub data: BTreeMap<String, Value>,
    /// Metadata per MIME type.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// Content of iopub `error` (and the error fields of replies).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorContent {
    /// Error name.
    #[serde(default)]
    pub ename: String,
    /// Error value.
    #[serde(default)]
    pub evalue: String,
    /// Traceback lines (may hold ANSI colour codes).
    #[serde(default)]
    pub traceback: Vec<String>,
}

/// Content of `shutdown_request` and `shutdown_reply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shutdown {
    /// Whether a restart follows.
    #[serde(default)]
    pub restart: bool,
}

/// Content of replies that only carry a status, such as `interrupt_reply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReply {
    /// ok or error.
    pub status: ReplyStatus,
}

/// The current UTC time as ISO 8601 with microseconds, e.g. `2024-01-02T03:04:05.123456Z`.
pub fn iso8601_now() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    iso8601(since_epoch.as_secs() as i64, since_epoch.subsec_micros())
}

/// Formats seconds since the Unix epoch (UTC) and microseconds as ISO 8601.
fn iso8601(seconds: i64, micros: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(iso8601(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso8601(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            iso8601(1_709_251_199, 999_999),
            "2024-02-29T23:59:59.999999Z"
        );
        assert_eq!(iso8601(4_102_444_800, 0), "2100-01-01T00:00:00.000000Z");
        assert!(iso8601_now().ends_with('Z'));
    }

    #[test]
    fn headers_get_fresh_ids() {
        let a = Header::new("s", "kernel_info_request");
        let b = Header::new("s", "kernel_info_request");
        assert_ne!(a.msg_id, b.msg_id);
        assert_eq!(a.version, PROTOCOL_VERSION);
    }

    #[test]
    fn decodes_evcxr_style_error_reply_without_ename() {
        let reply: ExecuteReply =
            serde_json::from_str(r#"{"status":"error","execution_count":3}"#).unwrap();
        assert_eq!(reply.status, ReplyStatus::Error);
        assert_eq!(reply.ename, None);
        let odd: ExecuteReply = serde_json::from_str(r#"{"status":"weird"}"#).unwrap();
        assert_eq!(odd.status, ReplyStatus::Other);
    }

    #[test]
    fn execute_request_has_all_fields() {
        let value = serde_json::to_value(ExecuteRequest::new("1+1")).unwrap();
        for field in [
            "code",
            "silent",
            "store_history",
            "user_expressions",
            "allow_stdin",
            "stop_on_error",
        ] {
            assert!(value.get(field).is_some(), "{field}");
        }
    }
}
