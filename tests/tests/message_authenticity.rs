//! Telemetry and acks count only if they carry their unit's MAC: with real MQTT clients and a
//! running server, a reading sealed with another unit's key (or with none) is refused and
//! counted as `bad_mac`, whether it comes from a client holding the victim's sniffed password
//! or is injected into the broker the way any client of an ACL-less cluster could. A
//! development-mode unit is the one audited exception, and a rotated key keeps working only
//! for its grace period.

use std::time::Duration;

use prost::Message;
use rust_decimal::Decimal;
use sunledger_billing::units::DeviceKey;
use sunledger_proto::api::v1 as api;
use sunledger_proto::authenticity;
use sunledger_proto::device::Telemetry;
use sunledger_proto::topic::{TopicKind, device_topic};
use sunledger_tests::api::{Org, assert_invalid, imei};
use sunledger_tests::{Device, TestServer};
use tonic::Code;

const BAD_MAC: [(&str, &str); 1] = [("reason", "bad_mac")];

fn reading(seq: u64, load_wh: u64) -> Telemetry {
    Telemetry {
        seq,
        ts: 1_780_000_000 + seq as i64 * 600,
        load_wh,
        boot: 1,
        ..Telemetry::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_without_the_units_own_mac_are_refused_and_counted() {
    let server = TestServer::start().await;
    let key_a = server.register("SL-MAC-A");
    let key_b = server.register("SL-MAC-B");
    server.open_usage_account("SL-MAC-B", "org-mac", Decimal::ONE);
    let mut victim = Device::connect(server.mqtt, "SL-MAC-B", &key_b, None);
    victim.expect_connected().await;
    victim.report(1, 100).await;
    server
        .wait_for_state("SL-MAC-B", |state| state.meter.is_some())
        .await;
    let before = server
        .metric("sunledger_ingest_rejected_total", &BAD_MAC)
        .await;

    // A client holding B's MQTT password (sniffed, or pulled from B's flash without the key
    // store) but only A's key: every reading it sends on B's topic is refused.
    let mut impostor = Device::connect(server.mqtt, "SL-MAC-B", &key_b, None);
    impostor.expect_connected().await;
    let forged = [
        authenticity::seal(key_a.bytes(), "SL-MAC-B", reading(2, 90_000)),
        authenticity::seal(key_a.bytes(), "SL-MAC-A", reading(3, 90_000)),
        reading(4, 90_000),
    ];
    for forgery in &forged {
        impostor
            .publish(TopicKind::Telemetry, forgery.encode_to_vec())
            .await;
    }
    server
        .wait_for_metric("sunledger_ingest_rejected_total", &BAD_MAC, before + 3.0)
        .await;

    // Behind a cluster without per-topic ACLs, A's own credentials reach B's topic: emulated
    // by publishing straight into the broker's router, past the embedded broker's ACL.
    let mut cluster_client = server.server.broker().link("acl-less-client").unwrap();
    let sealed_by_a = authenticity::seal(key_a.bytes(), "SL-MAC-B", reading(5, 90_000));
    cluster_client
        .tx
        .publish(
            device_topic("SL-MAC-B", TopicKind::Telemetry),
            sealed_by_a.encode_to_vec(),
        )
        .unwrap();
    server
        .wait_for_metric("sunledger_ingest_rejected_total", &BAD_MAC, before + 4.0)
        .await;

    // B's own next reading is charged from its own baseline: nothing forged was counted.
    impostor.client.disconnect().await.unwrap();
    impostor.expect_closed().await;
    let mut victim = Device::connect(server.mqtt, "SL-MAC-B", &key_b, None);
    victim.expect_connected().await;
    victim.report(2, 130).await;
    let state = server
        .wait_for_state("SL-MAC-B", |state| {
            state.meter.is_some_and(|meter| meter.seq == 2)
        })
        .await;
    assert_eq!(state.consumed_wh, 30);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_development_mode_unit_needs_an_admin_is_shown_audited_and_counted() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Bench Rig Co").await;
    let request = api::RegisterUnitRequest {
        serial: "SL-DEV-MODE".into(),
        imei: imei(41),
        development_mode: true,
        ..Default::default()
    };
    let refused = org.technician.units().register_unit(request.clone()).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    let registered = org
        .admin
        .units()
        .register_unit(request)
        .await
        .expect("an Admin may")
        .into_inner();
    assert!(registered.unit.expect("unit").development_mode);
    let audit = org.admin.audit_events().await;
    assert!(
        audit.iter().any(|event| event.action == "unit.registered"
            && event.description.contains("development mode")),
        "{audit:?}"
    );

    // Hand-typed JSON without a MAC, as with mosquitto_pub, is accepted and counted.
    let key = DeviceKey::from_hex(&registered.device_key).expect("32 hex digits");
    let mut device = Device::connect(server.mqtt, "SL-DEV-MODE", &key, None);
    device.expect_connected().await;
    let before = server
        .metric("sunledger_ingest_unauthenticated_total", &[])
        .await;
    device
        .publish(
            TopicKind::Telemetry,
            r#"{"seq":1,"ts":1780000000,"load_wh":10,"usb_wh":0,"boot":1}"#,
        )
        .await;
    server
        .wait_for_state("SL-DEV-MODE", |state| state.meter.is_some())
        .await;
    server
        .wait_for_metric("sunledger_ingest_unauthenticated_total", &[], before + 1.0)
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_keeps_working_only_for_its_grace() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Rotation Co").await;
    let old = sunledger_tests::api::register_unit(&org.technician, "SL-ROT-1", 51).await;
    let rotate = |serial: &str, grace_seconds: i64| api::RotateDeviceKeyRequest {
        serial: serial.into(),
        grace_seconds,
    };
    let denied = org
        .technician
        .units()
        .rotate_device_key(rotate("SL-ROT-1", 2))
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    assert_invalid(
        org.admin
            .units()
            .rotate_device_key(rotate("SL-ROT-1", 91 * 24 * 3600))
            .await,
        "grace_seconds",
    );
    let missing = org
        .admin
        .units()
        .rotate_device_key(rotate("SL-NOPE", 2))
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);

    let rotated = org
        .admin
        .units()
        .rotate_device_key(rotate("SL-ROT-1", 2))
        .await
        .expect("an Admin may")
        .into_inner();
    let new = DeviceKey::from_hex(&rotated.device_key).expect("32 hex digits");
    assert_ne!(new, old);
    assert_eq!(rotated.device_secret, new.mqtt_password());
    assert!(rotated.previous_key_valid_until.is_some());
    let audit = org.admin.audit_events().await;
    assert_eq!(audit[0].action, "unit.device_key_rotated");
    assert_eq!(audit[0].target_id, "SL-ROT-1");

    // During the grace both keys connect and MAC.
    let mut with_old = Device::connect(server.mqtt, "SL-ROT-1", &old, None);
    with_old.expect_connected().await;
    with_old.report(1, 0).await;
    server
        .wait_for_state("SL-ROT-1", |state| {
            state.meter.is_some_and(|meter| meter.seq == 1)
        })
        .await;
    with_old.client.disconnect().await.unwrap();
    let mut with_new = Device::connect(server.mqtt, "SL-ROT-1", &new, None);
    with_new.expect_connected().await;
    with_new.report(2, 10).await;
    server
        .wait_for_state("SL-ROT-1", |state| {
            state.meter.is_some_and(|meter| meter.seq == 2)
        })
        .await;

    // After it, the old key neither connects nor MACs.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let before = server
        .metric("sunledger_ingest_rejected_total", &BAD_MAC)
        .await;
    let stale = authenticity::seal(old.bytes(), "SL-ROT-1", reading(3, 20));
    with_new
        .publish(TopicKind::Telemetry, stale.encode_to_vec())
        .await;
    server
        .wait_for_metric("sunledger_ingest_rejected_total", &BAD_MAC, before + 1.0)
        .await;
    let mut late = Device::connect(server.mqtt, "SL-ROT-1", &old, None);
    late.expect_closed().await;

    // A grace of 0 retires the key at once (a leaked key).
    let leaked = org
        .admin
        .units()
        .rotate_device_key(rotate("SL-ROT-1", 0))
        .await
        .expect("rotated")
        .into_inner();
    assert_eq!(leaked.previous_key_valid_until, None);
    let mut retired = Device::connect(server.mqtt, "SL-ROT-1", &new, None);
    retired.expect_closed().await;
    let fresh = DeviceKey::from_hex(&leaked.device_key).expect("32 hex digits");
    let mut current = Device::connect(server.mqtt, "SL-ROT-1", &fresh, None);
    current.expect_connected().await;
    server.stop().await;
}
