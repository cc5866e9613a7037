//! The wire format: turning a [`Message`] into zmq frames and back.
//!
//! `[identities..., "<IDS|MSG>", signature, header, parent_header, metadata, content, buffers...]`,
//! where the signature is the hex HMAC of the four JSON frames (see [`crate::signing`]).

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::messages::{Header, Message};
use crate::signing::Signer;

/// The frame that separates routing identities from the message.
pub const DELIMITER: &[u8] = b"<IDS|MSG>";

/// Serializes and signs `message` into the frames to send.
pub fn encode(message: &Message, signer: &Signer) -> Result<Vec<Vec<u8>>> {
    let header = serde_json::to_vec(&message.header).map_err(Error::json("header"))?;
    let parent_header = match &message.parent_header {
        Some(parent) => serde_json::to_vec(parent).map_err(Error::json("parent_header"))?,
        None => b"{}".to_vec(),
    };
    let metadata = serde_json::to_vec(&message.metadata).map_err(Error::json("metadata"))?;
    let content = serde_json::to_vec(&message.content).map_err(Error::json("content"))?;
    let signature = signer.sign([&header, &parent_header, &metadata, &content]);

    let mut frames = message.identities.clone();
    frames.push(DELIMITER.to_vec());
    frames.push(signature.into_bytes());
    frames.extend([header, parent_header, metadata, content]);
    frames.extend(message.buffers.iter().cloned());
    Ok(frames)
}

/// Checks the signature of received `frames` and decodes them. `channel` only
/// names the source in errors.
pub fn decode(frames: Vec<Vec<u8>>, signer: &Signer, channel: &str) -> Result<Message> {
    let delimiter = frames
        .iter()
        .position(|frame| frame == DELIMITER)
        .ok_or_else(|| {
            Error::Framing(format!(
                "no <IDS|MSG> delimiter in {} frames on {channel}",
                frames.len()
            ))
        })?;
    if frames.len() < delimiter + 6 {
        return Err(Error::Framing(format!(
            "{} frames after the delimiter on {channel}, need at least 5",
            frames.len() - delimiter - 1
        )));
    }
    let mut frames = frames;
    let buffers = frames.split_off(delimiter + 6);
    let content = frames.pop().unwrap_or_default();
    let metadata = frames.pop().unwrap_or_default();
    let parent_header = frames.pop().unwrap_or_default();
    let header = frames.pop().unwrap_or_default();
    let signature = frames.pop().unwrap_or_default();
    frames.pop(); // the delimiter
    let identities = frames;

    if !signer.verify(&signature, [&header, &parent_header, &metadata, &content]) {
        return Err(Error::BadSignature {
            channel: channel.to_string(),
        });
    }

    let header: Header =
        serde_json::from_slice(&header).map_err(Error::json(format!("header on {channel}")))?;
    let parent_header: Value = serde_json::from_slice(&parent_header)
        .map_err(Error::json(format!("parent_header of {}", header.msg_type)))?;
    let parent_header = match parent_header {
        Value::Object(map) if map.is_empty() => None,
        Value::Null => None,
        other => Some(
            serde_json::from_value(other)
                .map_err(Error::json(format!("parent_header of {}", header.msg_type)))?,
        ),
    };
    let metadata: Map<String, Value> = if metadata.is_empty() {
        Map::new()
    } else {
        serde_json::from_slice(&metadata)
            .map_err(Error::json(format!("metadata of {}", header.msg_type)))?
    };
    let content: Value = serde_json::from_slice(&content)
        .map_err(Error::json(format!("content of {}", header.msg_type)))?;
    Ok(Message {
        identities,
        header,
        parent_header,
        metadata,
        content,
        buffers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ExecuteRequest;

    fn request() -> Message {
        Message::new(
            "session-1",
            "execute_request",
            &ExecuteRequest::new("1 + 1"),
        )
        .unwrap()
    }

    #[test]
    fn round_trips_a_signed_message() {
        let signer = Signer::new(b"key");
        let mut message = request();
        message.identities = vec![b"client-a".to_vec()];
        message.buffers = vec![vec![0, 1, 2]];
        message.parent_header = Some(Header::new("other", "kernel_info_request"));
        let frames = encode(&message, &signer).unwrap();
        assert_eq!(frames.len(), 1 + 1 + 1 + 4 + 1);
        assert_eq!(frames[1], DELIMITER);
        assert_eq!(frames[2].len(), 64);
        let decoded = decode(frames, &signer, "shell").unwrap();
        assert_eq!(decoded, message);
    }

    #[test]
    fn empty_parent_header_is_none() {
        let signer = Signer::new(b"key");
        let frames = encode(&request(), &signer).unwrap();
        assert_eq!(frames[4], b"{}");
        let decoded = decode(frames, &signer, "shell").unwrap();
        assert_eq!(decoded.parent_header, None);
        assert_eq!(decoded.parent_msg_id(), None);
    }

    #[test]
    fn rejects_a_tampered_message() {
        let signer = Signer::new(b"key");
        let mut frames = encode(&request(), &signer).unwrap();
        frames[5] = b"{}".to_vec(); // metadata changed after signing
        let error = decode(frames, &signer, "iopub").unwrap_err();
        assert!(matches!(error, Error::BadSignature { ref channel } if channel == "iopub"));
    }

    #[test]
    fn rejects_a_message_signed_with_another_key() {
        let frames = encode(&request(), &Signer::new(b"key")).unwrap();
        assert!(matches!(
            decode(frames, &Signer::new(b"other"), "shell"),
            Err(Error::BadSignature { .. })
        ));
    }

    #[test]
    fn rejects_missing_delimiter_and_short_messages() {
        let signer = Signer::new(b"");
        let error = decode(vec![b"a".to_vec(), b"b".to_vec()], &signer, "shell").unwrap_err();
        assert!(error.to_string().contains("delimiter"), "{error}");
        let short = vec![DELIMITER.to_vec(), b"".to_vec(), b"{}".to_vec()];
        let error = decode(short, &signer, "shell").unwrap_err();
        assert!(error.to_string().contains("at least 5"), "{error}");
    }

    #[test]
    fn reports_bad_json_with_its_place() {
        let signer = Signer::new(b"");
        let frames = vec![
            DELIMITER.to_vec(),
            Vec::new(),
            b"not json".to_vec(),
            b"{}".to_vec(),
            b"{}".to_vec(),
            b"{}".to_vec(),
        ];
        let error = decode(frames, &signer, "control").unwrap_err();
        assert!(error.to_string().contains("header on control"), "{error}");
    }

    #[test]
    fn decodes_a_message_from_another_implementation() {
        // Frames as a Python kernel would send them, signed with key "abc".
        let header = br#"{"msg_id":"m1","session":"s","username":"u","date":"2024-01-01T00:00:00Z","msg_type":"stream","version":"5.3"}"#;
        let parent = br#"{"msg_id":"p1","session":"c","username":"u","date":"2024-01-01T00:00:00Z","msg_type":"execute_request","version":"5.3"}"#;
        let content = br#"{"name":"stdout","text":"hi\n"}"#;
        let signer = Signer::new(b"abc");
        let signature = signer.sign([header, parent, b"{}", content]);
        let frames = vec![
            b"stream.stdout".to_vec(),
            DELIMITER.to_vec(),
            signature.into_bytes(),
            header.to_vec(),
            parent.to_vec(),
            b"{}".to_vec(),
            content.to_vec(),
        ];
        let message = decode(frames, &signer, "iopub").unwrap();
        assert_eq!(message.identities, vec![b"stream.stdout".to_vec()]);
        assert_eq!(message.msg_type(), "stream");
        assert_eq!(message.parent_msg_id(), Some("p1"));
        let stream: crate::messages::Stream = message.content_as().unwrap();
        assert_eq!(stream.text, "hi\n");
    }
}
