//! The reader threads: broker links → decode → partition queues.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sunledger_billing::units::{Admission, UnitDirectory};
use sunledger_billing::worker::Engine;
use sunledger_broker::local::LinkError;
use sunledger_broker::{EmbeddedBroker, Link, Notification};
use sunledger_proto::payload::Encoding;
use sunledger_proto::topic::{ALL_ACKS, ALL_CMDS, ALL_STATUS, ALL_TELEMETRY};

use crate::decode::decode;

/// Name of the ingest stage's in-process broker connection.
const LINK_CLIENT_ID: &str = "sunledger-ingest";
/// How often the reader looks at the stop flag while the broker is quiet.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Pause before retrying a push onto a full partition queue.
const FULL_QUEUE_WAIT: Duration = Duration::from_micros(200);

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The in-process broker link could not be opened or subscribed.
    #[error("broker link: {0}")]
    Link(Box<LinkError>),
    /// The reader thread could not be spawned.
    #[error("spawning the ingest thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl From<Box<LinkError>> for IngestError {
    fn from(error: Box<LinkError>) -> Self {
        IngestError::Link(error)
    }
}

impl From<LinkError> for IngestError {
    fn from(error: LinkError) -> Self {
        IngestError::Link(Box::new(error))
    }
}

/// The running ingest stage.
pub struct Ingest {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Ingest {
    /// Subscribes to every device topic, one in-process link and reader thread per filter, and
    /// starts feeding `engine` with the events `directory` admits.
    pub fn start(
        broker: &EmbeddedBroker,
        directory: Arc<UnitDirectory>,
        engine: Arc<Engine>,
    ) -> Result<Ingest, IngestError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (kind, filter) in [
            ("telemetry", ALL_TELEMETRY),
            ("ack", ALL_ACKS),
            ("status", ALL_STATUS),
            ("cmd", ALL_CMDS),
        ] {
            let mut link = broker.link(&format!("{LINK_CLIENT_ID}-{kind}"))?;
            link.tx.subscribe(filter)?;
            let accepted = |encoding: &'static str| metrics::counter!("sunledger_ingest_messages_total", "kind" => kind, "encoding" => encoding);
            let reader = Reader {
                link,
                kind,
                accepted_protobuf: accepted("protobuf"),
                accepted_json: accepted("json"),
                skipped: metrics::counter!("sunledger_ingest_broker_skipped_total", "kind" => kind),
                queue_full_waits: metrics::counter!("sunledger_ingest_queue_full_waits_total"),
                unauthenticated: metrics::counter!("sunledger_ingest_unauthenticated_total"),
                directory: directory.clone(),
                engine: engine.clone(),
                stop: stop.clone(),
                last_offset: None,
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ingest-{kind}"))
                    .spawn(move || reader.run())?,
            );
        }
        Ok(Ingest { stop, threads })
    }

    /// Stops reading; events already queued are still applied by the engine's shutdown.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("an ingest thread panicked");
            }
        }
    }
}

/// Reads one subscription filter. One filter per link keeps rumqttd's per-filter log offsets
/// consecutive in what this reader receives, so a gap means rumqttd evicted messages this
/// reader had not read yet (its bounded log overflowed while billing lagged): that loss is
/// counted in `sunledger_ingest_broker_skipped_total{kind}` instead of passing silently.
struct Reader {
    link: Link,
    kind: &'static str,
    /// Accepted messages by encoding, resolved once rather than per message.
    accepted_protobuf: metrics::Counter,
    accepted_json: metrics::Counter,
    /// Messages the broker evicted before they were read; registered at start so that
    /// dashboards show 0 rather than no data.
    skipped: metrics::Counter,
    /// Waits for room in a full partition queue (back-pressure), likewise registered at start.
    queue_full_waits: metrics::Counter,
    /// Messages let in without a valid MAC because their unit is in development mode.
    unauthenticated: metrics::Counter,
    /// Who may send what: every telemetry and ack MAC is checked here, on this thread, so the
    /// partitions spend their time on billing.
    directory: Arc<UnitDirectory>,
    engine: Arc<Engine>,
    stop: Arc<AtomicBool>,
    last_offset: Option<u64>,
}

impl Reader {
    fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            let deadline = Instant::now() + STOP_POLL;
            match self.link.rx.recv_deadline(deadline) {
                Ok(Some(Notification::Forward(forward))) => {
                    self.account_offset(forward.cursor);
                    self.forward(&forward.publish.topic, &forward.publish.payload);
                }
                Ok(Some(Notification::Unschedule)) => {
                    // The router paused this link (its buffer was full); ask for more.
                    if let Err(error) = self.link.rx.ready() {
                        tracing::error!(%error, "broker link closed");
                        return;
                    }
                }
                Ok(_) => {}
                Err(LinkError::RecvTimeout(_)) if Instant::now() >= deadline => {}
                Err(error) => {
                    tracing::error!(%error, "broker link closed; ingest stops");
                    return;
                }
            }
        }
    }

    /// Counts messages skipped between the previous forward and this one.
    fn account_offset(&mut self, cursor: Option<(u64, u64)>) {
        let Some((_, offset)) = cursor else { return };
        if let Some(last) = self.last_offset
            && offset > last + 1
        {
            let skipped = offset - last - 1;
            self.skipped.increment(skipped);
            tracing::warn!(
                kind = self.kind,
                skipped,
                "the broker evicted messages before ingest read them (billing lagged beyond the broker's log)"
            );
        }
        self.last_offset = Some(offset);
    }

    fn forward(&self, topic: &[u8], payload: &[u8]) {
        let decoded = decode(topic, payload, chrono::Utc::now().timestamp_millis())
            .map_err(|rejection| rejection.as_str())
            .and_then(|event| {
                self.directory
                    .admit(event)
                    .map_err(|refusal| refusal.as_str())
            });
        let event = match decoded {
            Ok(event) => {
                // Status payloads are plain words; only telemetry and acks come in two encodings.
                let json = self.kind != "status" && Encoding::of(payload) == Encoding::Json;
                let accepted = if json {
                    &self.accepted_json
                } else {
                    &self.accepted_protobuf
                };
                accepted.increment(1);
                if event.admission() == Admission::Waived {
                    self.unauthenticated.increment(1);
                }
                event
            }
            Err(reason) => {
                metrics::counter!("sunledger_ingest_rejected_total", "reason" => reason)
                    .increment(1);
                return;
            }
        };
        let partition = self.engine.partition_for(&event.event().serial);
        let mut event = event;
        loop {
            match partition.try_push(event) {
                Ok(()) => break,
                Err(back) => {
                    self.queue_full_waits.increment(1);
                    partition.wake();
                    std::thread::sleep(FULL_QUEUE_WAIT);
                    event = back;
                }
            }
        }
        partition.wake();
    }
}
