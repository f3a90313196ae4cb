//! Commands are signed, and the platform keeps every unit's `cmd` slot its own: a command it
//! did not sign, published on a unit's topic (as anyone could behind a cluster without
//! per-topic ACLs), is counted, flagged on the unit, and answered at once by re-publishing the
//! unit's current signed command; a replayed old command of the platform's is answered the
//! same way. Devices verify with the organisation's key that registration returned, and the
//! database file alone reveals neither a device key, its password, nor a signing key.

use ed25519_dalek::VerifyingKey;
use prost::Message;
use sunledger_billing::commands::{BrokerCommandSink, CommandSink};
use sunledger_billing::units::DeviceKey;
use sunledger_proto::api::v1 as api;
use sunledger_proto::authenticity::verify_command;
use sunledger_proto::device::{Command, CommandAck, LoadState, Reason};
use sunledger_tests::api::{Org, install, usage_plan};
use sunledger_tests::{Device, Seen, TestServer};

const SERIAL: &str = "SL-SIGNED-1";

fn verifying_key(hex_key: &str) -> VerifyingKey {
    let bytes: [u8; 32] = hex::decode(hex_key).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&bytes).unwrap()
}

async fn next_command(device: &mut Device) -> Command {
    let (_, payload, _) = device.next_message().await;
    Command::decode(payload.as_slice()).expect("a protobuf Command")
}

/// The next command, acknowledged as a device that applied it does (so the platform does not
/// publish it again).
async fn obey(device: &mut Device) -> Command {
    let command = next_command(device).await;
    let ack = CommandAck {
        cmd_id: command.cmd_id,
        load: command.load,
        ..CommandAck::default()
    };
    device.send_ack(ack).await;
    command
}

async fn foreign_commands(org: &Org) -> api::DeviceState {
    org.admin
        .units()
        .get_unit(api::GetUnitRequest {
            serial: SERIAL.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_commands_are_caught_and_the_slot_heals() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Signed Co").await;
    let registered = org
        .technician
        .units()
        .register_unit(api::RegisterUnitRequest {
            serial: SERIAL.into(),
            imei: sunledger_tests::api::imei(5),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let key = verifying_key(&registered.command_verify_key);
    let device_key = DeviceKey::from_hex(&registered.device_key).expect("32 hex digits");
    assert_eq!(registered.device_secret, device_key.mqtt_password());
    let other = Org::start(&server, "Other Co").await;
    let other_key = other
        .technician
        .units()
        .register_unit(api::RegisterUnitRequest {
            serial: "SL-SIGNED-2".into(),
            imei: sunledger_tests::api::imei(6),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .command_verify_key;
    assert_ne!(
        other_key, registered.command_verify_key,
        "a key per organisation"
    );

    let mut device = Device::connect(server.mqtt, SERIAL, &device_key, None);
    device.expect_connected().await;
    device.subscribe_commands_of(SERIAL).await;
    assert!(matches!(device.next().await, Seen::Subscribed));
    let plan = usage_plan(&org.admin, "1").await;
    install(&org.technician, SERIAL, &plan.id, "Amani").await;

    // The account's first command: signed by the organisation, not verifiable by another's.
    let first = next_command(&mut device).await;
    assert!(verify_command(&key, SERIAL, &first), "{first:?}");
    assert!(!verify_command(&verifying_key(&other_key), SERIAL, &first));
    let off = server.switch_load(SERIAL, LoadState::Off);
    let current = next_command(&mut device).await;
    assert_eq!(current.cmd_id, off.cmd_id);
    assert!(verify_command(&key, SERIAL, &current));

    // Someone with broker access publishes a retained ON in the unit's slot.
    let mut attacker = BrokerCommandSink::new(server.server.broker().link("attacker").unwrap());
    let forged = Command {
        cmd_id: current.cmd_id + 100,
        load: LoadState::On as i32,
        reason: Reason::CreditRestored as i32,
        ts: current.ts,
        sig: vec![7; 64],
    };
    attacker.publish(SERIAL, &forged);
    assert_eq!(next_command(&mut device).await, forged);
    // ... and the platform answers with the current signed command within a second.
    let healed = tokio::time::timeout(std::time::Duration::from_secs(1), next_command(&mut device))
        .await
        .expect("the platform re-publishes at once");
    assert_eq!(healed, current);
    let state = foreign_commands(&org).await;
    assert_eq!(state.foreign_commands, 1);
    assert!(state.last_foreign_command.is_some());

    // A replay of the platform's own old ON is not foreign, but the slot heals all the same.
    attacker.publish(SERIAL, &first);
    assert_eq!(next_command(&mut device).await, first);
    let healed = tokio::time::timeout(std::time::Duration::from_secs(1), next_command(&mut device))
        .await
        .expect("the platform re-publishes at once");
    assert_eq!(healed, current);
    assert_eq!(foreign_commands(&org).await.foreign_commands, 1);

    // A device connecting now finds the genuine current command retained.
    let mut late = Device::connect(server.mqtt, SERIAL, &device_key, None);
    late.expect_connected().await;
    late.subscribe_commands_of(SERIAL).await;
    assert!(matches!(late.next().await, Seen::Subscribed));
    assert_eq!(next_command(&mut late).await, current);

    // The file alone holds nothing usable on the wire: no device key or password, no signing
    // key.
    let org_id = org.founded.organisation.id.clone();
    let signing_key = server
        .server
        .store()
        .command_keys(&org_id)
        .unwrap()
        .signing_at(0)
        .to_bytes();
    let dir = server.stop().await;
    let file = std::fs::read(dir.path().join("sunledger.redb")).unwrap();
    let contains = |needle: &[u8]| file.windows(needle.len()).any(|window| window == needle);
    assert!(!contains(registered.device_secret.as_bytes()));
    assert!(!contains(registered.device_key.as_bytes()));
    assert!(!contains(device_key.bytes()));
    assert!(!contains(&signing_key));
    assert!(!contains(hex::encode(signing_key).as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_command_key_signs_only_after_its_grace_and_both_stay_genuine() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Rotating Co").await;
    let registered = org
        .technician
        .units()
        .register_unit(api::RegisterUnitRequest {
            serial: SERIAL.into(),
            imei: sunledger_tests::api::imei(7),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let old = verifying_key(&registered.command_verify_key);
    let device_key = DeviceKey::from_hex(&registered.device_key).expect("32 hex digits");
    let mut device = Device::connect(server.mqtt, SERIAL, &device_key, None);
    device.expect_connected().await;
    device.subscribe_commands_of(SERIAL).await;
    assert!(matches!(device.next().await, Seen::Subscribed));

    let rotate = |grace_seconds| api::RotateCommandKeyRequest { grace_seconds };
    let denied = org
        .technician
        .organisations()
        .rotate_command_key(rotate(2))
        .await;
    assert_eq!(denied.unwrap_err().code(), tonic::Code::PermissionDenied);
    sunledger_tests::api::assert_invalid(
        org.admin
            .organisations()
            .rotate_command_key(rotate(-1))
            .await,
        "grace_seconds",
    );
    let staged = org
        .admin
        .organisations()
        .rotate_command_key(rotate(2))
        .await
        .expect("an Admin may")
        .into_inner();
    assert_eq!(staged.command_verify_key, registered.command_verify_key);
    let new = verifying_key(&staged.next_command_verify_key);
    assert_ne!(new, old);
    assert!(staged.next_command_key_from.is_some());
    let audit = org.admin.audit_events().await;
    assert_eq!(audit[0].action, "organisation.command_key_rotated");

    // During the grace the old key still signs: units not yet given the new key obey.
    let during = server.switch_load(SERIAL, LoadState::Off);
    let seen = obey(&mut device).await;
    assert_eq!(seen.cmd_id, during.cmd_id);
    assert!(verify_command(&old, SERIAL, &seen));

    // After it the new key signs, and the old key's commands are still the platform's own.
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let after = server.switch_load(SERIAL, LoadState::On);
    let seen = obey(&mut device).await;
    assert_eq!(seen.cmd_id, after.cmd_id);
    assert!(verify_command(&new, SERIAL, &seen));
    assert!(!verify_command(&old, SERIAL, &seen));
    let shown = org
        .admin
        .organisations()
        .get_organisation(api::GetOrganisationRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verifying_key(&shown.command_verify_key), new);
    assert_eq!(shown.next_command_verify_key, "");

    // A grace of 0 switches at once.
    let leaked = org
        .admin
        .organisations()
        .rotate_command_key(rotate(0))
        .await
        .unwrap()
        .into_inner();
    let newest = verifying_key(&leaked.command_verify_key);
    assert_ne!(newest, new);
    server.switch_load(SERIAL, LoadState::Off);
    assert!(verify_command(&newest, SERIAL, &obey(&mut device).await));
    assert_eq!(foreign_commands(&org).await.foreign_commands, 0);
}
