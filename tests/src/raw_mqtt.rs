//! MQTT 3.1.1 packets encoded by hand, for clients that must do what a library client would
//! not: send CONNECTs by the thousand without waiting (the reconnect-storm benchmark), or
//! hold a connection open and say nothing at all (a unit whose radio link died without TCP
//! ever closing), or read the broker's replies byte for byte (one PUBACK per publish).

use sunledger_proto::topic::{TopicKind, device_topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The last will every unit leaves on its `status` topic.
const STATUS_OFFLINE: &[u8] = b"offline";

/// The CONNACK of an accepted MQTT 3.1.1 CONNECT without a session.
pub const CONNACK_ACCEPTED: [u8; 4] = [0x20, 2, 0, 0];

/// A CONNECT as a unit sends it: clean session, client id = username = `serial`, `password`,
/// a retained QoS 1 last will `offline` on the unit's `status` topic, and `keep_alive_s`.
pub fn connect_packet(serial: &str, password: &str, keep_alive_s: u16) -> Vec<u8> {
    /// Username, password, will retain, will QoS 1, will flag, clean session.
    const FLAGS: u8 = 0b1110_1110;
    let will_topic = device_topic(serial, TopicKind::Status);
    let mut body = Vec::with_capacity(64 + 3 * serial.len() + password.len());
    put_field(&mut body, b"MQTT");
    body.push(4);
    body.push(FLAGS);
    body.extend_from_slice(&keep_alive_s.to_be_bytes());
    for field in [
        serial.as_bytes(),
        will_topic.as_bytes(),
        STATUS_OFFLINE,
        serial.as_bytes(),
        password.as_bytes(),
    ] {
        put_field(&mut body, field);
    }
    packet(0x10, &body)
}

/// A TCP connection to the broker at `mqtt` on which `serial` sent its CONNECT (see
/// `connect_packet`) and got an accepted CONNACK.
pub async fn connected_socket(
    mqtt: std::net::SocketAddr,
    serial: &str,
    password: &str,
    keep_alive_s: u16,
) -> TcpStream {
    let mut socket = TcpStream::connect(mqtt).await.expect("connecting");
    let connect = connect_packet(serial, password, keep_alive_s);
    socket.write_all(&connect).await.expect("sending CONNECT");
    let mut connack = [0; 4];
    socket
        .read_exact(&mut connack)
        .await
        .expect("reading CONNACK");
    assert_eq!(
        connack, CONNACK_ACCEPTED,
        "the CONNECT of {serial} accepted"
    );
    socket
}

/// A PINGREQ (section 3.12).
pub const PINGREQ: [u8; 2] = [0xc0, 0];

/// A PINGRESP (section 3.13).
pub const PINGRESP: [u8; 2] = [0xd0, 0];

/// A QoS 0 PUBLISH of `payload` on `topic`, not retained.
pub fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 + topic.len() + payload.len());
    put_field(&mut body, topic.as_bytes());
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// A QoS 1 PUBLISH of `payload` on `topic` with `packet_id`, not retained, first delivery.
pub fn publish_qos1_packet(topic: &str, packet_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + topic.len() + payload.len());
    put_field(&mut body, topic.as_bytes());
    body.extend_from_slice(&packet_id.to_be_bytes());
    body.extend_from_slice(payload);
    packet(0x32, &body)
}

/// The PUBACK of `packet_id` (section 3.4).
pub fn puback(packet_id: u16) -> [u8; 4] {
    let [high, low] = packet_id.to_be_bytes();
    [0x40, 2, high, low]
}

/// A fixed header (`first` byte and the remaining length, 7 bits a byte) before `body`.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first];
    let mut remaining = body.len();
    loop {
        let digit = (remaining % 128) as u8;
        remaining /= 128;
        packet.push(if remaining > 0 { digit | 0x80 } else { digit });
        if remaining == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
}

/// A length-prefixed MQTT string or binary field.
fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    let len = u16::try_from(field.len()).expect("MQTT fields are at most 65,535 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes worked out by hand from the MQTT 3.1.1 specification, section 3.1.
    #[test]
    fn a_connect_is_encoded_as_the_specification_says() {
        let topic = b"sunledger/v1/devices/S1/status";
        let mut expected = vec![0x10, 0];
        expected.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0xee, 0x01, 0x2c]);
        expected.extend_from_slice(&[0, 2, b'S', b'1']);
        expected.extend_from_slice(&[0, topic.len() as u8]);
        expected.extend_from_slice(topic);
        expected.extend_from_slice(&[0, 7]);
        expected.extend_from_slice(b"offline");
        expected.extend_from_slice(&[0, 2, b'S', b'1', 0, 2, b'p', b'w']);
        expected[1] = (expected.len() - 2) as u8;
        assert_eq!(connect_packet("S1", "pw", 300), expected);
    }

    #[test]
    fn a_long_connect_has_a_two_byte_remaining_length() {
        let serial = "S".repeat(64);
        let packet = connect_packet(&serial, &"p".repeat(32), 300);
        let remaining = usize::from(packet[1] & 0x7f) + 128 * usize::from(packet[2]);
        assert!(packet[1] & 0x80 != 0);
        assert_eq!(remaining, packet.len() - 3);
    }

    /// Section 3.3: fixed header 0x30 (QoS 0, no retain), topic as a string, then the payload.
    #[test]
    fn a_publish_is_encoded_as_the_specification_says() {
        assert_eq!(
            publish_packet("a/b", b"on"),
            [0x30, 7, 0, 3, b'a', b'/', b'b', b'o', b'n']
        );
    }

    /// Section 3.3: QoS 1 sets bit 1 of the fixed header; the packet id follows the topic.
    #[test]
    fn a_qos_1_publish_carries_its_packet_id_after_the_topic() {
        assert_eq!(
            publish_qos1_packet("a/b", 0x0102, b"on"),
            [0x32, 9, 0, 3, b'a', b'/', b'b', 1, 2, b'o', b'n']
        );
        assert_eq!(puback(0x0102), [0x40, 2, 1, 2]);
    }
}
