//! The reader threads: broker links → decode → partition queues, for what the tap declines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sunledger_billing::units::UnitDirectory;
use sunledger_billing::worker::Engine;
use sunledger_broker::local::LinkError;
use sunledger_broker::{EmbeddedBroker, Link, Notification};
use sunledger_proto::topic::{ALL_CMDS, ALL_STATUS};

use crate::intake::Intake;
use crate::tap::DeviceTap;

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
    broker: EmbeddedBroker,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Ingest {
    /// Puts the device tap (telemetry and acks) in `broker`'s slot, subscribes to the other
    /// device topics (status, including the wills the router publishes, and commands), one
    /// in-process link and reader thread per filter, and starts feeding `engine` with the
    /// events `directory` admits.
    pub fn start(
        broker: &EmbeddedBroker,
        directory: Arc<UnitDirectory>,
        engine: Arc<Engine>,
    ) -> Result<Ingest, IngestError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (kind, filter) in [("status", ALL_STATUS), ("cmd", ALL_CMDS)] {
            let mut link = broker.link(&format!("{LINK_CLIENT_ID}-{kind}"))?;
            link.tx.subscribe(filter)?;
            let reader = Reader {
                link,
                kind,
                intake: Intake::new(kind, directory.clone()),
                skipped: metrics::counter!("sunledger_ingest_broker_skipped_total", "kind" => kind),
                queue_full_waits: metrics::counter!("sunledger_ingest_queue_full_waits_total"),
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
        broker
            .tap()
            .fill(Arc::new(DeviceTap::new(directory, engine)));
        Ok(Ingest {
            broker: broker.clone(),
            stop,
            threads,
        })
    }

    /// Stops taking and reading; events already queued are still applied by the engine's
    /// shutdown. Device publishes offered to the tap from now on wait on their connections.
    pub fn shutdown(self) {
        self.broker.tap().empty();
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
    intake: Intake,
    /// Messages the broker evicted before they were read; registered at start so that
    /// dashboards show 0 rather than no data.
    skipped: metrics::Counter,
    /// Waits for room in a full partition queue (back-pressure), likewise registered at start.
    queue_full_waits: metrics::Counter,
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
        let Some(mut event) = self.intake.admit(topic, payload) else {
            return;
        };
        let tally = self.intake.tally(&event, payload);
        let partition = self.engine.partition_for(&event.event().serial);
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
        tally.count();
    }
}
