//! Histories in Temporal's standard JSON: proto3 JSON of `temporal.api.history.v1.History`
//! (camelCase fields, enum names, 64-bit integers as strings, bytes in base64), as
//! `temporal workflow show --output json` writes it and every SDK's replayer reads it (Python's
//! `WorkflowHistory.from_json`, TypeScript's `historyFromJSON`, Go's and Java's history loaders).
//!
//! The SDK's generated types have no such form (their serde output has snake_case keys and enum
//! numbers), so the conversion goes through a dynamic message on the descriptors of the vendored
//! Temporal protos (`harness/proto`, compiled by `build.rs`).

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use std::sync::LazyLock;
use temporalio_common::protos::temporal::api::history::v1::{History, HistoryEvent};

/// The descriptor of `temporal.api.history.v1.History`.
static HISTORY: LazyLock<MessageDescriptor> = LazyLock::new(|| {
    let descriptors: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/history_descriptors.bin"));
    DescriptorPool::decode(descriptors)
        .expect("the descriptor set build.rs compiled decodes")
        .get_message_by_name("temporal.api.history.v1.History")
        .expect("the descriptor set holds History")
});

/// A history that is not Temporal's JSON form of one.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or JSON that does not fit a history (a field of the wrong type, an unknown enum
    /// name).
    #[error("not a workflow history in Temporal's JSON form: {0}")]
    Json(#[from] serde_json::Error),
    /// The history does not encode as the SDK's types (it should always).
    #[error("the history does not convert to the SDK's types: {0}")]
    Convert(#[from] prost::DecodeError),
}

/// `events` as a history in Temporal's JSON, indented as the `temporal` CLI writes it.
pub fn to_json(events: &[HistoryEvent]) -> Result<Vec<u8>, JsonError> {
    let encoded = History {
        events: events.to_vec(),
    }
    .encode_to_vec();
    let history = DynamicMessage::decode(HISTORY.clone(), encoded.as_slice())?;
    let options = SerializeOptions::new()
        .stringify_64_bit_integers(true)
        .skip_default_fields(true);
    let mut out = Vec::new();
    let mut json =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"  "));
    history.serialize_with_options(&mut json, &options)?;
    Ok(out)
}

/// The events of a history in Temporal's JSON. Fields this harness's protos do not know (from a
/// newer server) are ignored.
pub fn from_json(bytes: &[u8]) -> Result<Vec<HistoryEvent>, JsonError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let history = DynamicMessage::deserialize_with_options(HISTORY.clone(), &mut json, &options)?;
    json.end()?;
    Ok(History::decode(history.encode_to_vec().as_slice())?.events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::{
        common::v1::{Payload, Payloads, WorkflowType},
        enums::v1::EventType,
        history::v1::{
            WorkflowExecutionCompletedEventAttributes, WorkflowExecutionStartedEventAttributes,
            history_event::Attributes,
        },
    };

    fn events() -> Vec<HistoryEvent> {
        let started = WorkflowExecutionStartedEventAttributes {
            workflow_type: Some(WorkflowType {
                name: "PaymentWorkflow".into(),
            }),
            original_execution_run_id: "run-1".into(),
            ..Default::default()
        };
        let result = Payload {
            metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
            data: br#"{"charged":40}"#.to_vec(),
            ..Default::default()
        };
        let completed = WorkflowExecutionCompletedEventAttributes {
            result: Some(Payloads { payloads: vec![result] }),
            ..Default::default()
        };
        vec![
            HistoryEvent {
                event_id: 1,
                event_type: EventType::WorkflowExecutionStarted as i32,
                event_time: Some(prost_wkt_types::Timestamp {
                    seconds: 1_764_655_200,
                    nanos: 123_000_000,
                }),
                attributes: Some(Attributes::WorkflowExecutionStartedEventAttributes(started)),
                ..Default::default()
            },
            HistoryEvent {
                event_id: 2,
                event_type: EventType::WorkflowExecutionCompleted as i32,
                attributes: Some(Attributes::WorkflowExecutionCompletedEventAttributes(completed)),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn histories_are_written_in_temporals_json_and_read_back() {
        let json = to_json(&events()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let first = &value["events"][0];
        assert_eq!(first["eventId"], "1", "64-bit integers as strings");
        assert_eq!(
            first["eventType"], "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "enum names"
        );
        assert_eq!(first["eventTime"], "2025-12-02T06:00:00.123Z");
        let started = &first["workflowExecutionStartedEventAttributes"];
        assert_eq!(
            started["workflowType"]["name"], "PaymentWorkflow",
            "camelCase, oneof by name"
        );
        let payload = &value["events"][1]["workflowExecutionCompletedEventAttributes"]["result"]["payloads"][0];
        assert_eq!(payload["metadata"]["encoding"], "anNvbi9wbGFpbg==", "bytes in base64");
        assert_eq!(from_json(&json).unwrap(), events());
    }

    #[test]
    fn what_is_not_a_history_says_so() {
        let err = from_json(br#"{"events": [{"eventId": "one"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("not a workflow history in Temporal's JSON form"),
            "{err}"
        );
        let sdk_form = br#"{"events": [{"event_id": 1, "event_type": 1}]}"#;
        // Proto3 JSON parsers accept the original field names and enum numbers too.
        assert_eq!(from_json(sdk_form).unwrap()[0].event_id, 1);
    }
}
