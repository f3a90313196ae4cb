//! One kind of device message from topic and payload to an admitted event, counted: shared by
//! the reader threads and the tap.

use std::sync::Arc;

use sunledger_billing::event::DeviceEvent;
use sunledger_billing::units::{Admission, Admitted, UnitDirectory};
use sunledger_proto::payload::Encoding;
use sunledger_proto::topic::DeviceTopic;

use crate::decode::{Rejection, decode, decode_on};

/// Decodes, admits and counts the messages of one topic kind.
pub(crate) struct Intake {
    kind: &'static str,
    /// Accepted messages by encoding, resolved once rather than per message.
    accepted_protobuf: metrics::Counter,
    accepted_json: metrics::Counter,
    /// Messages let in without a valid MAC because their unit is in development mode.
    unauthenticated: metrics::Counter,
    /// Who may send what: every telemetry and ack MAC is checked here, on ingest's side, so
    /// the partitions spend their time on billing.
    directory: Arc<UnitDirectory>,
}

/// What an admitted message adds to the counters once it is queued for billing.
pub(crate) struct Tally<'a> {
    accepted: &'a metrics::Counter,
    unauthenticated: Option<&'a metrics::Counter>,
}

impl Tally<'_> {
    /// Counts the message as accepted.
    pub(crate) fn count(self) {
        self.accepted.increment(1);
        if let Some(unauthenticated) = self.unauthenticated {
            unauthenticated.increment(1);
        }
    }
}

impl Intake {
    /// The intake of messages on `kind` topics (`telemetry`, `ack`, `status`, `cmd`).
    pub(crate) fn new(kind: &'static str, directory: Arc<UnitDirectory>) -> Intake {
        let accepted = |encoding: &'static str| metrics::counter!("sunledger_ingest_messages_total", "kind" => kind, "encoding" => encoding);
        Intake {
            kind,
            accepted_protobuf: accepted("protobuf"),
            accepted_json: accepted("json"),
            unauthenticated: metrics::counter!("sunledger_ingest_unauthenticated_total"),
            directory,
        }
    }

    /// Decodes and admits one message; a refused one is counted by reason and dropped.
    pub(crate) fn admit(&self, topic: &[u8], payload: &[u8]) -> Option<Admitted> {
        self.admit_decoded(decode(topic, payload, now_ms()))
    }

    /// [`Intake::admit`] for a message whose topic is already parsed.
    pub(crate) fn admit_on(&self, topic: DeviceTopic<'_>, payload: &[u8]) -> Option<Admitted> {
        self.admit_decoded(decode_on(topic, payload, now_ms()))
    }

    fn admit_decoded(&self, decoded: Result<DeviceEvent, Rejection>) -> Option<Admitted> {
        let admitted = decoded
            .map_err(|rejection| rejection.as_str())
            .and_then(|event| {
                self.directory
                    .admit(event)
                    .map_err(|refusal| refusal.as_str())
            });
        match admitted {
            Ok(event) => Some(event),
            Err(reason) => {
                metrics::counter!("sunledger_ingest_rejected_total", "reason" => reason)
                    .increment(1);
                None
            }
        }
    }

    /// The counters `event`, admitted from `payload`, adds to once queued.
    pub(crate) fn tally(&self, event: &Admitted, payload: &[u8]) -> Tally<'_> {
        // Status payloads are plain words; only telemetry and acks come in two encodings.
        let json = self.kind != "status" && Encoding::of(payload) == Encoding::Json;
        Tally {
            accepted: if json {
                &self.accepted_json
            } else {
                &self.accepted_protobuf
            },
            unauthenticated: (event.admission() == Admission::Waived)
                .then_some(&self.unauthenticated),
        }
    }
}

/// The server time a message arrived, as decoded events carry it.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
