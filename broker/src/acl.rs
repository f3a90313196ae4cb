//! Per-connection topic rules, enforced inside the MQTT codec.
//!
//! rumqttd clones the server's [`Protocol`] for every accepted connection, so the clone can
//! remember who connected. [`DeviceAcl`] decodes with rumqttd's own v4 codec, records the
//! client id from CONNECT, and refuses (by returning a codec error, which closes the
//! connection) any packet that reaches outside the device's own topics:
//!
//! | packet      | allowed topic                                   |
//! |-------------|-------------------------------------------------|
//! | PUBLISH     | `sunledger/v1/devices/{own}/{telemetry,ack,status}` |
//! | SUBSCRIBE   | `sunledger/v1/devices/{own}/cmd` only (no wildcards) |
//! | last will   | `sunledger/v1/devices/{own}/status`             |
//!
//! Refusals are counted in `sunledger_broker_acl_refused_total{packet=...}`. Authentication of
//! the CONNECT itself happens afterwards in rumqttd's auth hook (see [`crate::auth`]).

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{Error, Packet, Protocol};
use sunledger_proto::topic::{DeviceTopic, TopicKind};

/// rumqttd codec wrapper holding one connection to its own device topics.
#[derive(Clone, Debug)]
pub struct DeviceAcl {
    inner: V4,
    /// The client id from CONNECT; `None` until CONNECT has been read.
    client_id: Option<String>,
}

impl DeviceAcl {
    /// A codec for a fresh connection.
    pub fn new() -> DeviceAcl {
        DeviceAcl {
            inner: V4,
            client_id: None,
        }
    }

    /// Whether `topic` is one of `client_id`'s own topics of an allowed kind.
    fn owns(client_id: &str, topic: &str, allowed: &[TopicKind]) -> bool {
        DeviceTopic::parse(topic)
            .is_ok_and(|parsed| parsed.serial == client_id && allowed.contains(&parsed.kind))
    }

    /// Applies the rules to a decoded packet; `Err` names the refused packet kind.
    fn check(&mut self, packet: &Packet) -> Result<(), &'static str> {
        const PUBLISHABLE: &[TopicKind] =
            &[TopicKind::Telemetry, TopicKind::Ack, TopicKind::Status];
        match packet {
            Packet::Connect(connect, _, will, _, _) => {
                if let Some(will) = will {
                    let topic = std::str::from_utf8(&will.topic).unwrap_or("");
                    if !Self::owns(&connect.client_id, topic, &[TopicKind::Status]) {
                        return Err("last_will");
                    }
                }
                self.client_id = Some(connect.client_id.clone());
                Ok(())
            }
            Packet::Publish(publish, _) => {
                let topic = std::str::from_utf8(&publish.topic).unwrap_or("");
                match &self.client_id {
                    Some(id) if Self::owns(id, topic, PUBLISHABLE) => Ok(()),
                    _ => Err("publish"),
                }
            }
            Packet::Subscribe(subscribe, _) => {
                let own = |path: &str| matches!(&self.client_id, Some(id) if Self::owns(id, path, &[TopicKind::Cmd]));
                if subscribe.filters.iter().all(|filter| own(&filter.path)) {
                    Ok(())
                } else {
                    Err("subscribe")
                }
            }
            _ => Ok(()),
        }
    }
}

/// The packet with the parts the router keeps (a publish's topic and payload, a last will)
/// copied out of the connection's read buffer. The codec hands out slices of that buffer, and
/// one slice kept in the router's log pins the whole buffer: a log of small readings then
/// held a read buffer per reading, far more memory than its size limit says.
fn detached(packet: Packet) -> Packet {
    let copy = |bytes: &Bytes| Bytes::copy_from_slice(bytes);
    match packet {
        Packet::Publish(mut publish, properties) => {
            publish.topic = copy(&publish.topic);
            publish.payload = copy(&publish.payload);
            Packet::Publish(publish, properties)
        }
        Packet::Connect(connect, properties, Some(mut will), will_properties, login) => {
            will.topic = copy(&will.topic);
            will.message = copy(&will.message);
            Packet::Connect(connect, properties, Some(will), will_properties, login)
        }
        other => other,
    }
}

impl Default for DeviceAcl {
    fn default() -> Self {
        DeviceAcl::new()
    }
}

impl Protocol for DeviceAcl {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        let packet = self.inner.read_mut(stream, max_size)?;
        match self.check(&packet) {
            Ok(()) => Ok(detached(packet)),
            Err(kind) => {
                metrics::counter!("sunledger_broker_acl_refused_total", "packet" => kind)
                    .increment(1);
                tracing::warn!(client_id = ?self.client_id, kind, "device packet outside its own topics refused; closing connection");
                Err(Error::IncorrectPacketFormat)
            }
        }
    }

    fn write(&self, packet: Packet, write: &mut BytesMut) -> Result<usize, Error> {
        self.inner.write(packet, write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{
        Connect, Filter, LastWill, Publish, QoS, RetainForwardRule, Subscribe,
    };

    fn connect(client_id: &str, will_topic: Option<&str>) -> Packet {
        let connect = Connect {
            keep_alive: 30,
            client_id: client_id.to_owned(),
            clean_session: true,
        };
        let will = will_topic.map(|topic| LastWill {
            topic: topic.to_owned().into(),
            message: "offline".into(),
            qos: QoS::AtLeastOnce,
            retain: true,
        });
        Packet::Connect(connect, None, will, None, None)
    }

    fn publish(topic: &str) -> Packet {
        Packet::Publish(Publish::new(topic.to_owned(), "x".to_owned(), false), None)
    }

    fn subscribe(path: &str) -> Packet {
        let filter = Filter {
            path: path.to_owned(),
            qos: QoS::AtLeastOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::OnEverySubscribe,
        };
        Packet::Subscribe(
            Subscribe {
                pkid: 1,
                filters: vec![filter],
            },
            None,
        )
    }

    #[test]
    fn a_device_may_use_only_its_own_topics() {
        let mut acl = DeviceAcl::new();
        assert_eq!(
            acl.check(&publish("sunledger/v1/devices/A/telemetry")),
            Err("publish"),
            "before CONNECT"
        );
        assert_eq!(
            acl.check(&connect("A", Some("sunledger/v1/devices/A/status"))),
            Ok(())
        );
        let cases = [
            (publish("sunledger/v1/devices/A/telemetry"), Ok(())),
            (publish("sunledger/v1/devices/A/ack"), Ok(())),
            (publish("sunledger/v1/devices/A/status"), Ok(())),
            (publish("sunledger/v1/devices/A/cmd"), Err("publish")),
            (publish("sunledger/v1/devices/B/telemetry"), Err("publish")),
            (publish("other/topic"), Err("publish")),
            (subscribe("sunledger/v1/devices/A/cmd"), Ok(())),
            (subscribe("sunledger/v1/devices/B/cmd"), Err("subscribe")),
            (subscribe("sunledger/v1/devices/+/cmd"), Err("subscribe")),
            (subscribe("#"), Err("subscribe")),
            (
                subscribe("sunledger/v1/devices/A/telemetry"),
                Err("subscribe"),
            ),
        ];
        for (packet, expected) in cases {
            assert_eq!(acl.check(&packet), expected, "{packet:?}");
        }
    }

    #[test]
    fn accepted_packets_do_not_point_into_the_read_buffer() {
        let mut stream = BytesMut::with_capacity(64 * 1024);
        let codec = V4;
        codec
            .write(
                connect("A", Some("sunledger/v1/devices/A/status")),
                &mut stream,
            )
            .unwrap();
        codec
            .write(publish("sunledger/v1/devices/A/telemetry"), &mut stream)
            .unwrap();
        let start = stream.as_ptr() as usize;
        let buffer = start..start + stream.capacity();
        let outside = |bytes: &Bytes| !buffer.contains(&(bytes.as_ptr() as usize));

        let mut acl = DeviceAcl::new();
        let Packet::Connect(_, _, Some(will), _, _) = acl.read_mut(&mut stream, 1024).unwrap()
        else {
            panic!("expected a CONNECT with a will");
        };
        assert!(outside(&will.topic) && outside(&will.message));
        assert_eq!(&will.topic[..], b"sunledger/v1/devices/A/status");
        let Packet::Publish(publish, _) = acl.read_mut(&mut stream, 1024).unwrap() else {
            panic!("expected a PUBLISH");
        };
        assert!(outside(&publish.topic) && outside(&publish.payload));
        assert_eq!(&publish.payload[..], b"x");
    }

    #[test]
    fn a_last_will_on_another_devices_topic_is_refused() {
        let mut acl = DeviceAcl::new();
        assert_eq!(
            acl.check(&connect("A", Some("sunledger/v1/devices/B/status"))),
            Err("last_will")
        );
        assert_eq!(
            acl.check(&connect("A", Some("sunledger/v1/devices/A/telemetry"))),
            Err("last_will")
        );
        assert_eq!(acl.check(&connect("A", None)), Ok(()));
    }
}
