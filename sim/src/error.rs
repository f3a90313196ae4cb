//! Typed errors of the simulator: configuration problems found before any device starts, and
//! device failures that carry the serial and seed so a failing run can be replayed.

use std::fmt;

/// Why the simulator could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A configuration field has a value the simulator cannot run with; found by
    /// [`SimConfig::validate`](crate::SimConfig::validate) before anything starts.
    #[error("invalid sim config field {field}: {reason}")]
    InvalidConfig {
        /// The configuration field, as spelled in TOML.
        field: &'static str,
        /// What is wrong with its value.
        reason: &'static str,
    },
    /// The configuration text is not valid TOML of [`SimConfig`](crate::SimConfig).
    #[error("sim config is not valid TOML: {0}")]
    ConfigToml(#[from] toml::de::Error),
    /// A serial cannot be used as a topic level and client id.
    #[error("device serial {serial:?} is not a valid serial: {source}")]
    InvalidSerial {
        /// The offending serial.
        serial: String,
        /// Why the wire contract refuses it.
        source: sunledger_proto::topic::TopicError,
    },
    /// Two devices share a serial; they would take over each other's MQTT session.
    #[error("device serial {serial:?} appears more than once in the fleet")]
    DuplicateSerial {
        /// The repeated serial.
        serial: String,
    },
    /// A line of a credentials file is not `serial,device_key[,command_key]`.
    #[error("credentials line {line}: {reason}")]
    CredentialsLine {
        /// One-based line number in the file.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A credentials file names no device at all.
    #[error("credentials file lists no devices")]
    NoCredentials,
    /// The operators' gRPC endpoint could not be reached, or the token is not usable as
    /// request metadata.
    #[error("operators' API at {endpoint}: {reason}")]
    ApiConnect {
        /// The endpoint as given.
        endpoint: String,
        /// Why connecting failed.
        reason: String,
    },
    /// A call to the operators' API failed; `call` names the RPC and what it was about.
    #[error("{call}: {} ({})", status.message(), status.code())]
    Api {
        /// The RPC and its subject, e.g. `RegisterUnit SIM-000001`.
        call: String,
        /// The status the server returned.
        #[source]
        status: Box<tonic::Status>,
    },
    /// Units already registered in the organisation are missing from the credentials file;
    /// their device keys were shown only once, when they were registered.
    #[error(
        "{} units already exist in the organisation but have no device key in the credentials \
         file (keys are shown only once): {}; pass the credentials file written when they \
         were registered, or use a fresh organisation",
        serials.len(),
        serials.join(", ")
    )]
    MissingDeviceKeys {
        /// The units without a device key.
        serials: Vec<String>,
    },
    /// `RegisterUnit` answered without a usable device key, so the unit could neither log in
    /// nor seal a reading; a server from before device keys answers so.
    /// (The value is not shown: were it a garbled real key, it would still be a secret.)
    #[error(
        "RegisterUnit {serial}: the answer's device_key is not 32 hex digits (a server \
         without device keys?)"
    )]
    InvalidDeviceKey {
        /// The unit just registered.
        serial: String,
    },
    /// The plan to reuse exists with other terms than asked for; plan terms never change.
    #[error(
        "plan {name:?} already exists at {existing}, not {wanted}; rename or retire it, or \
         pass its terms"
    )]
    PlanTermsDiffer {
        /// The plan's name.
        name: String,
        /// Its terms, e.g. `1.50 per kWh`.
        existing: String,
        /// The terms asked for.
        wanted: String,
    },
    /// An amount option is not a decimal number the API accepts.
    #[error("{field} {value:?} is not a decimal amount {must_be}")]
    InvalidAmount {
        /// The option, as spelled on the command line.
        field: &'static str,
        /// The value given.
        value: String,
        /// What the option allows, e.g. `at least zero`.
        must_be: &'static str,
    },
    /// One simulated device failed; the seed replays its faults and load curve.
    #[error("device {serial} (replay seed {seed}): {cause}")]
    Device {
        /// The device's serial.
        serial: String,
        /// The device's own seed, derived from the fleet seed and the serial.
        seed: u64,
        /// What went wrong.
        #[source]
        cause: DeviceError,
    },
}

impl SimError {
    /// A failed API call, named by `call`.
    pub(crate) fn api(call: impl Into<String>, status: tonic::Status) -> SimError {
        SimError::Api {
            call: call.into(),
            status: Box::new(status),
        }
    }
}

/// What went wrong with one device's MQTT session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The MQTT client refused a request, usually because its bounded request queue is full.
    #[error("mqtt client request failed: {0}")]
    Client(Box<rumqttc::ClientError>),
    /// The connection failed or the broker refused it (wrong credentials end up here).
    #[error("mqtt connection failed: {0}")]
    Connection(Box<rumqttc::ConnectionError>),
    /// The operation needs a live connection and the device has none.
    #[error("device is not connected")]
    NotConnected,
    /// A wait ran past its deadline.
    #[error("timed out after {after_ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: WaitedFor,
        /// How long the wait lasted.
        after_ms: u64,
    },
}

/// The thing a device was waiting for when it timed out, named for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitedFor {
    /// The broker's CONNACK and SUBACK.
    Connect,
    /// The broker's PUBACK of everything queued.
    Delivery,
    /// A command on the device's command topic.
    Command,
    /// The clean DISCONNECT to be written.
    Disconnect,
}

impl fmt::Display for WaitedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitedFor::Connect => "connect",
            WaitedFor::Delivery => "delivery",
            WaitedFor::Command => "command",
            WaitedFor::Disconnect => "disconnect",
        })
    }
}

impl DeviceError {
    /// Whether retrying later can help: a full queue or a dropped connection can clear, a
    /// refused login cannot without new credentials.
    pub fn is_transient(&self) -> bool {
        match self {
            DeviceError::Connection(error) => match **error {
                rumqttc::ConnectionError::ConnectionRefused(code) => !is_auth_refusal(code),
                _ => true,
            },
            DeviceError::Client(_) | DeviceError::NotConnected | DeviceError::Timeout { .. } => {
                true
            }
        }
    }
}

impl From<rumqttc::ClientError> for DeviceError {
    fn from(error: rumqttc::ClientError) -> Self {
        DeviceError::Client(Box::new(error))
    }
}

impl From<rumqttc::ConnectionError> for DeviceError {
    fn from(error: rumqttc::ConnectionError) -> Self {
        DeviceError::Connection(Box::new(error))
    }
}

/// Whether a failed CONNECT means the broker rejected the login: either a CONNACK with an
/// authorisation code, or, as rumqttd does on a failed auth hook, the broker closing the
/// connection after reading the CONNECT without any CONNACK.
pub(crate) fn is_login_refusal(error: &rumqttc::ConnectionError) -> bool {
    match error {
        rumqttc::ConnectionError::ConnectionRefused(code) => is_auth_refusal(*code),
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted) => true,
        _ => false,
    }
}

/// Whether a CONNACK return code means the broker rejected the credentials.
pub(crate) fn is_auth_refusal(code: rumqttc::ConnectReturnCode) -> bool {
    matches!(
        code,
        rumqttc::ConnectReturnCode::BadUserNamePassword | rumqttc::ConnectReturnCode::NotAuthorized
    )
}
