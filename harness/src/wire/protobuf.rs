//! Byte-level edits of protobuf messages that keep every other byte as it was, unknown fields
//! included, instead of decoding and re-encoding the whole message.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes that are not a well-formed protobuf message.
#[derive(Debug, thiserror::Error)]
#[error("malformed protobuf message at byte {at}: {what}")]
pub struct WireFormatError {
    /// Offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub what: &'static str,
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, WireFormatError> {
    let start = *at;
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or(WireFormatError {
            at: start,
            what: "truncated varint",
        })?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireFormatError {
        at: start,
        what: "varint longer than 10 bytes",
    })
}

/// One top-level field of a message: its number, where it starts (its key) and where its value
/// lies.
struct Field {
    number: u64,
    start: usize,
    value: std::ops::Range<usize>,
}

/// The top-level fields of `message` in order, without decoding any value.
fn fields(message: &[u8]) -> impl Iterator<Item = Result<Field, WireFormatError>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= message.len() {
            return None;
        }
        let start = at;
        let field = (|| {
            let key = varint(message, &mut at)?;
            let len = match key & 7 {
                0 => varint(message, &mut at).map(|_| 0)?,
                1 => 8,
                2 => varint(message, &mut at)? as usize,
                5 => 4,
                _ => {
                    return Err(WireFormatError {
                        at: start,
                        what: "unsupported wire type (groups?)",
                    });
                }
            };
            let value = if key & 7 == 2 { at } else { start };
            let end = at
                .checked_add(len)
                .filter(|e| *e <= message.len())
                .ok_or(WireFormatError {
                    at: start,
                    what: "field runs past the end",
                })?;
            at = end;
            Ok(Field {
                number: key >> 3,
                start,
                value: value..end,
            })
        })();
        if field.is_err() {
            // Nothing after a malformed field can be trusted.
            at = message.len();
        }
        Some(field)
    })
}

/// `message` without the occurrences of the repeated top-level field `field` whose position
/// (0-based, among that field's occurrences) `drop` selects.
pub fn drop_repeated(message: &[u8], field: u32, drop: impl Fn(usize) -> bool) -> Result<Bytes, WireFormatError> {
    let mut out = BytesMut::with_capacity(message.len());
    let mut seen = 0;
    for f in fields(message) {
        let f = f?;
        if f.number == u64::from(field) {
            seen += 1;
            if drop(seen - 1) {
                continue;
            }
        }
        out.put_slice(&message[f.start..f.value.end]);
    }
    Ok(out.freeze())
}

/// The bytes of the first occurrence of the length-delimited top-level field `field` (an
/// embedded message, a string or bytes), without decoding anything else.
pub fn first_field(message: &[u8], field: u32) -> Result<Option<&[u8]>, WireFormatError> {
    for f in fields(message) {
        let f = f?;
        if f.number == u64::from(field) {
            return Ok(Some(&message[f.value]));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use temporalio_common::protos::temporal::api::workflowservice::v1::{
        PollActivityTaskQueueResponse, RespondWorkflowTaskCompletedResponse,
    };

    fn task(id: &str) -> PollActivityTaskQueueResponse {
        PollActivityTaskQueueResponse {
            task_token: id.as_bytes().to_vec(),
            activity_id: id.into(),
            attempt: 300,
            ..Default::default()
        }
    }

    #[test]
    fn drops_only_the_chosen_occurrences_and_keeps_unknown_fields() {
        let response = RespondWorkflowTaskCompletedResponse {
            workflow_task: Some(Default::default()),
            activity_tasks: vec![task("a"), task("b"), task("c")],
            reset_history_event_id: 77,
        };
        let mut bytes = response.encode_to_vec();
        // An unknown field 99 (varint 5), which a decode and re-encode would lose.
        bytes.extend_from_slice(&[0x98, 0x06, 0x05]);
        let edited = drop_repeated(&bytes, 2, |i| i == 1).unwrap();
        assert!(edited.ends_with(&[0x98, 0x06, 0x05]), "unknown field kept");
        let decoded = RespondWorkflowTaskCompletedResponse::decode(edited).unwrap();
        assert_eq!(decoded.activity_tasks, vec![task("a"), task("c")]);
        assert_eq!(decoded.reset_history_event_id, 77);
        assert!(decoded.workflow_task.is_some());
        assert_eq!(&drop_repeated(&bytes, 2, |_| false).unwrap()[..], &bytes[..]);
    }

    #[test]
    fn malformed_messages_are_errors() {
        let bytes = RespondWorkflowTaskCompletedResponse {
            activity_tasks: vec![task("a")],
            ..Default::default()
        }
        .encode_to_vec();
        let err = drop_repeated(&bytes[..bytes.len() - 1], 2, |_| true).unwrap_err();
        assert_eq!(err.what, "field runs past the end");
        assert!(drop_repeated(&[0x80], 2, |_| true).is_err());
        assert!(first_field(&bytes[..bytes.len() - 1], 2).is_err());
    }

    #[test]
    fn finds_the_first_occurrence_of_a_field() {
        let response = RespondWorkflowTaskCompletedResponse {
            workflow_task: None,
            activity_tasks: vec![task("a"), task("b")],
            reset_history_event_id: 77,
        };
        let bytes = response.encode_to_vec();
        let first = first_field(&bytes, 2).unwrap().unwrap();
        assert_eq!(PollActivityTaskQueueResponse::decode(first).unwrap(), task("a"));
        assert_eq!(first_field(&bytes, 1).unwrap(), None);
    }
}
