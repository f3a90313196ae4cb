//! The control units API against the running server, over the generated tonic client and
//! real MQTT devices, proving:
//!
//! - what each role may do with units, and that a refused call writes nothing;
//! - that a registered unit's secret, returned once, lets its device connect at once;
//! - that a serial is unique across organisations without revealing who holds it;
//! - that each invalid field is INVALID_ARGUMENT naming it, with nothing stored (not even in
//!   the billing store the broker checks);
//! - that another organisation's units are NOT_FOUND and never listed;
//! - that units are listed by current customer id, then serial (units nobody has last),
//!   filtered by serial prefix and enable status, every unit once across pages;
//! - that a unit shows its device state and every customer it was assigned to;
//! - that Offline Disable sends OFF with REASON_OFFLINE_DISABLE, which the device receives and
//!   which a payment does not undo, that enabling restores the load billing wants, and that
//!   both are recorded with who and when.

use sunledger_billing::units::DeviceKey;
use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::Role;
use sunledger_proto::device::{LoadState, Reason};
use sunledger_proto::topic::TopicKind;
use sunledger_tests::api::{
    Api, Org, acknowledge_command, all_pages, assert_invalid, imei, install, register_unit,
    usage_plan,
};
use sunledger_tests::{Device, Seen, TestServer};
use tonic::{Code, Status};

async fn get(api: &Api, serial: &str) -> Result<api::UnitDetails, Status> {
    let request = api::GetUnitRequest {
        serial: serial.into(),
    };
    Ok(api.units().get_unit(request).await?.into_inner())
}

async fn set_status(
    api: &Api,
    serial: &str,
    status: api::EnableStatus,
) -> Result<api::UnitDetails, Status> {
    let request = api::SetEnableStatusRequest {
        serial: serial.into(),
        enable_status: status.into(),
    };
    Ok(api.units().set_enable_status(request).await?.into_inner())
}

async fn list(api: &Api, request: api::ListUnitsRequest) -> Vec<api::ControlUnit> {
    all_pages(|page_token| {
        let request = api::ListUnitsRequest {
            page_token,
            ..request.clone()
        };
        async move {
            let page = api
                .units()
                .list_units(request)
                .await
                .expect("listing units")
                .into_inner();
            (page.units, page.next_page_token)
        }
    })
    .await
}

fn serials(units: &[api::ControlUnit]) -> Vec<&str> {
    units.iter().map(|unit| unit.serial.as_str()).collect()
}

async fn connected_device(server: &TestServer, serial: &str, secret: &DeviceKey) -> Device {
    let mut device = Device::connect(server.mqtt, serial, secret, None);
    device.expect_connected().await;
    device.subscribe_commands_of(serial).await;
    assert!(matches!(device.next().await, Seen::Subscribed));
    device
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_make_exactly_its_unit_calls_and_refused_calls_write_nothing() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Roles").await;
    register_unit(&org.admin, "SL-ROLE-0", 0).await;

    use Code::{Ok as Allowed, PermissionDenied as Denied};
    for (index, role) in [Role::Observer, Role::Technician, Role::Admin]
        .into_iter()
        .enumerate()
    {
        let api = org.as_role(role);
        let mut units = api.units();
        let before = org.admin.newest_audit_sequence().await;
        let register = api::RegisterUnitRequest {
            serial: format!("SL-ROLE-{}", index + 1),
            imei: imei(index as u64 + 1),
            entity_id: String::new(),
            ..Default::default()
        };
        let update = api::UpdateUnitRequest {
            serial: "SL-ROLE-0".into(),
            entity_id: Some(format!("entity of {role:?}")),
            imei: None,
        };
        let disable = match role {
            Role::Admin => api::EnableStatus::OfflineDisabled,
            _ => api::EnableStatus::Enabled,
        };
        let outcomes = [
            (
                "RegisterUnit",
                units.register_unit(register).await.map(drop),
                [Denied, Allowed, Allowed],
            ),
            (
                "GetUnit",
                get(api, "SL-ROLE-0").await.map(drop),
                [Allowed, Allowed, Allowed],
            ),
            (
                "ListUnits",
                units
                    .list_units(api::ListUnitsRequest::default())
                    .await
                    .map(drop),
                [Allowed, Allowed, Allowed],
            ),
            (
                "UpdateUnit",
                units.update_unit(update).await.map(drop),
                [Denied, Allowed, Allowed],
            ),
            (
                "SetEnableStatus",
                set_status(api, "SL-ROLE-0", disable).await.map(drop),
                [Denied, Denied, Allowed],
            ),
        ];
        let mut wrote = false;
        for (call, outcome, expected) in outcomes {
            let code = outcome.err().map_or(Code::Ok, |status| status.code());
            assert_eq!(code, expected[index], "{call} as {role:?}");
            wrote |= code == Code::Ok && call != "GetUnit" && call != "ListUnits";
        }
        if !wrote {
            assert_eq!(
                org.admin.newest_audit_sequence().await,
                before,
                "{role:?} wrote"
            );
        }
    }
    let unit = get(&org.observer, "SL-ROLE-0")
        .await
        .expect("unit")
        .unit
        .expect("unit");
    assert_eq!(unit.entity_id, "entity of Admin");
    assert_eq!(unit.enable_status(), api::EnableStatus::OfflineDisabled);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_units_secret_lets_its_device_connect_at_once() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Devices").await;
    let request = api::RegisterUnitRequest {
        serial: " SL-DEV-1 ".into(),
        imei: imei(1),
        entity_id: "ENT-9".into(),
        ..Default::default()
    };
    let registered = org
        .technician
        .units()
        .register_unit(request)
        .await
        .expect("registered")
        .into_inner();
    let unit = registered.unit.expect("unit");
    assert_eq!(
        (
            unit.serial.as_str(),
            unit.imei.as_str(),
            unit.entity_id.as_str()
        ),
        ("SL-DEV-1", imei(1).as_str(), "ENT-9")
    );
    assert_eq!(unit.enable_status(), api::EnableStatus::Enabled);
    let changed = unit.enable_status_changed.expect("status change");
    assert_eq!(changed.email, "tech@example.com");
    let key = DeviceKey::from_hex(&registered.device_key).expect("32 hex digits");
    assert_eq!(registered.device_secret, key.mqtt_password());
    assert!(!unit.development_mode);

    let mut wrong = Device::connect(server.mqtt, "SL-DEV-1", &DeviceKey::generate(), None);
    wrong.expect_closed().await;
    let device = connected_device(&server, "SL-DEV-1", &key).await;
    device.publish(TopicKind::Status, "online").await;
    let deadline = tokio::time::Instant::now() + sunledger_tests::WAIT_MAX;
    loop {
        let details = get(&org.observer, "SL-DEV-1").await.expect("unit");
        let state = details.device.expect("device state");
        if state.online {
            assert!(state.last_seen.is_some());
            assert!(details.customer_history.is_empty());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never online");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let events = org.admin.audit_events().await;
    assert_eq!(events[0].action, "unit.registered");
    assert_eq!(events[0].target_id, "SL-DEV-1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_is_unique_across_organisations_without_revealing_who_holds_it() {
    let server = TestServer::start().await;
    let owner = Org::start(&server, "Owner Solar").await;
    let other = Org::start(&server, "Other Solar").await;
    register_unit(&owner.admin, "SL-UNIQ-1", 1).await;
    server.register("SL-CLI-1");

    for serial in ["SL-UNIQ-1", "SL-CLI-1"] {
        let request = api::RegisterUnitRequest {
            serial: serial.into(),
            imei: imei(2),
            entity_id: String::new(),
            ..Default::default()
        };
        let status = other
            .admin
            .units()
            .register_unit(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{serial}");
        assert_eq!(
            status.message(),
            format!("serial: {serial} is already registered")
        );
        assert!(!status.message().contains(&owner.founded.organisation.id));
    }
    let status = get(&other.admin, "SL-UNIQ-1").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        other
            .admin
            .audit_events()
            .await
            .iter()
            .all(|event| event.action != "unit.registered")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_unit_field_is_refused_naming_it_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Invalid").await;
    register_unit(&org.admin, "SL-OK-1", 1).await;
    let register = |serial: &str, imei: &str, entity_id: &str| api::RegisterUnitRequest {
        serial: serial.into(),
        imei: imei.into(),
        entity_id: entity_id.into(),
        ..Default::default()
    };
    let mut bad_check_digit = imei(2);
    bad_check_digit.replace_range(
        14..,
        if bad_check_digit.ends_with('0') {
            "1"
        } else {
            "0"
        },
    );
    let cases = [
        (register("", &imei(2), ""), "serial"),
        (register("SL/2", &imei(2), ""), "serial"),
        (register(&"S".repeat(65), &imei(2), ""), "serial"),
        (register("SL-2", "", ""), "imei"),
        (register("SL-2", "12345678901234", ""), "imei"),
        (register("SL-2", "35000000000000A", ""), "imei"),
        (register("SL-2", &bad_check_digit, ""), "imei"),
        (register("SL-2", &imei(2), "line\nbreak"), "entity_id"),
    ];
    let before = org.admin.newest_audit_sequence().await;
    let mut units = org.technician.units();
    for (request, field) in cases {
        assert_invalid(units.register_unit(request).await, field);
    }
    let update = |imei: Option<&str>, entity_id: Option<&str>| api::UpdateUnitRequest {
        serial: "SL-OK-1".into(),
        imei: imei.map(str::to_owned),
        entity_id: entity_id.map(str::to_owned),
    };
    assert_invalid(
        units
            .update_unit(update(Some(&bad_check_digit), None))
            .await,
        "imei",
    );
    assert_invalid(
        units.update_unit(update(None, Some("\u{0}"))).await,
        "entity_id",
    );
    assert_invalid(get(&org.admin, "").await, "serial");
    assert_invalid(
        set_status(&org.admin, "SL-OK-1", api::EnableStatus::Unspecified).await,
        "enable_status",
    );
    for (page_size, page_token, serial_prefix, field) in [
        (-1, "", String::new(), "page_size"),
        (0, "01ff", String::new(), "page_token"),
        (0, "", "p".repeat(257), "serial_prefix"),
    ] {
        let request = api::ListUnitsRequest {
            page_size,
            page_token: page_token.into(),
            serial_prefix,
            ..Default::default()
        };
        assert_invalid(units.list_units(request).await, field);
    }
    assert_eq!(org.admin.newest_audit_sequence().await, before);
    let listed = list(&org.admin, api::ListUnitsRequest::default()).await;
    assert_eq!(serials(&listed), ["SL-OK-1"]);
    assert_eq!(listed[0].imei, imei(1));
    let stored = server.server.store().units().expect("billing store units");
    assert_eq!(
        stored
            .iter()
            .map(|unit| unit.serial.as_str())
            .collect::<Vec<_>>(),
        ["SL-OK-1"],
        "nothing reached the billing store"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisation_can_neither_see_nor_change_a_unit() {
    let server = TestServer::start().await;
    let owner = Org::start(&server, "Owner").await;
    let other = Org::start(&server, "Other").await;
    register_unit(&owner.admin, "SL-PRIV-1", 1).await;
    assert_eq!(
        get(&other.admin, "SL-PRIV-1").await.unwrap_err().code(),
        Code::NotFound
    );
    let update = api::UpdateUnitRequest {
        serial: "SL-PRIV-1".into(),
        imei: Some(imei(9)),
        entity_id: None,
    };
    let status = other.admin.units().update_unit(update).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = set_status(
        &other.admin,
        "SL-PRIV-1",
        api::EnableStatus::OfflineDisabled,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        list(&other.admin, api::ListUnitsRequest::default())
            .await
            .is_empty()
    );
    let unit = get(&owner.admin, "SL-PRIV-1")
        .await
        .expect("unit")
        .unit
        .expect("unit");
    assert_eq!(
        (unit.enable_status(), unit.imei),
        (api::EnableStatus::Enabled, imei(1))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_are_listed_by_current_customer_then_serial_and_show_their_customer_history() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Listing").await;
    let plan = usage_plan(&org.admin, "10").await;
    for (n, serial) in ["SL-E", "SL-A", "SL-D", "SL-B", "SL-C", "XL-F"]
        .into_iter()
        .enumerate()
    {
        register_unit(&org.technician, serial, n as u64).await;
    }
    let first = install(&org.technician, "SL-D", &plan.id, "Amina").await;
    let second = install(&org.technician, "SL-B", &plan.id, "Baraka").await;
    let (low, high) = match first.customer_id < second.customer_id {
        true => ("SL-D", "SL-B"),
        false => ("SL-B", "SL-D"),
    };
    set_status(&org.admin, "SL-C", api::EnableStatus::OfflineDisabled)
        .await
        .expect("disabled");

    let everything = list(
        &org.observer,
        api::ListUnitsRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        serials(&everything),
        [low, high, "SL-A", "SL-C", "SL-E", "XL-F"],
        "customers' units by customer id, then the rest by serial, each once"
    );
    let held = everything
        .iter()
        .find(|unit| unit.serial == "SL-D")
        .expect("SL-D");
    assert_eq!(held.current_customer_id, first.customer_id);
    assert_eq!(held.current_installation_id, first.id);

    let prefixed = list(
        &org.observer,
        api::ListUnitsRequest {
            page_size: 1,
            serial_prefix: "sl-".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(serials(&prefixed), [low, high, "SL-A", "SL-C", "SL-E"]);
    let disabled = list(
        &org.observer,
        api::ListUnitsRequest {
            enable_status: api::EnableStatus::OfflineDisabled.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(serials(&disabled), ["SL-C"]);

    let assign = api::AssignInstallationRequest {
        installation_id: first.id.clone(),
        customer_id: second.customer_id.clone(),
    };
    org.technician
        .installations()
        .assign_installation(assign)
        .await
        .expect("installation reassigned");
    let details = get(&org.observer, "SL-D").await.expect("unit");
    let history = details.customer_history;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(
        (history[0].customer_id.as_str(), history[0].active),
        (first.customer_id.as_str(), false)
    );
    assert!(history[0].end.is_some());
    assert_eq!(
        (history[1].customer_id.as_str(), history[1].active),
        (second.customer_id.as_str(), true)
    );
    assert!(history[1].end.is_none());
    assert_eq!(
        details.unit.expect("unit").current_customer_id,
        second.customer_id
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_disable_holds_the_load_off_through_a_payment_and_enabling_restores_it() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Offline").await;
    let plan = usage_plan(&org.admin, "100").await;
    let secret = register_unit(&org.technician, "SL-OD-1", 1).await;
    let mut device = connected_device(&server, "SL-OD-1", &secret).await;
    let installation = install(&org.technician, "SL-OD-1", &plan.id, "Chausiku").await;
    acknowledge_command(&mut device, LoadState::On, Reason::CreditRestored).await;

    let details = set_status(&org.admin, "SL-OD-1", api::EnableStatus::OfflineDisabled)
        .await
        .expect("offline disabled");
    let unit = details.unit.expect("unit");
    assert_eq!(unit.enable_status(), api::EnableStatus::OfflineDisabled);
    let changed = unit.enable_status_changed.expect("change");
    assert_eq!(
        (changed.member_id.as_str(), changed.email.as_str()),
        (org.founded.admin.id.as_str(), "admin@example.com")
    );
    let state = details.device.expect("device");
    assert_eq!(
        (state.desired_load(), state.desired_reason()),
        (api::UnitLoad::Off, api::LoadReason::OfflineDisable)
    );
    let off = acknowledge_command(&mut device, LoadState::Off, Reason::OfflineDisable).await;
    server
        .wait_for_state("SL-OD-1", |state| {
            state.confirmed == Some((off.cmd_id, LoadState::Off as i32))
        })
        .await;
    let state = get(&org.observer, "SL-OD-1")
        .await
        .expect("unit")
        .device
        .expect("device");
    assert!(state.offline_disable_confirmed);
    assert_eq!(state.confirmed_load(), api::UnitLoad::Off);

    let payment = api::RecordPaymentRequest {
        installation_id: installation.id.clone(),
        amount: "500".into(),
        reference: "MP-OD-1".into(),
        channel: api::PaymentChannel::MobileMoney.into(),
    };
    org.technician
        .payments()
        .record_payment(payment)
        .await
        .expect("paid");
    let switch = api::SwitchLoadRequest {
        installation_id: installation.id.clone(),
        load: api::UnitLoad::On.into(),
    };
    let status = org.admin.payments().switch_load(switch).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let state = get(&org.observer, "SL-OD-1")
        .await
        .expect("unit")
        .device
        .expect("device");
    assert_eq!(
        (state.desired_load(), state.desired_reason()),
        (api::UnitLoad::Off, api::LoadReason::OfflineDisable),
        "a payment does not switch an Offline Disabled unit on"
    );

    let enabled = set_status(&org.admin, "SL-OD-1", api::EnableStatus::Enabled)
        .await
        .expect("enabled");
    assert_eq!(
        enabled.unit.expect("unit").enable_status(),
        api::EnableStatus::Enabled
    );
    acknowledge_command(&mut device, LoadState::On, Reason::CreditRestored).await;
    let sequence = org.admin.newest_audit_sequence().await;
    set_status(&org.admin, "SL-OD-1", api::EnableStatus::Enabled)
        .await
        .expect("enabling an enabled unit");
    assert_eq!(
        org.admin.newest_audit_sequence().await,
        sequence,
        "nothing changed"
    );

    let descriptions: Vec<String> = org
        .admin
        .audit_events()
        .await
        .into_iter()
        .filter(|event| event.action == "unit.enable_status_changed")
        .map(|event| event.description)
        .collect();
    assert_eq!(
        descriptions,
        [
            "SL-OD-1: Offline Disabled → Enabled",
            "SL-OD-1: Enabled → Offline Disabled"
        ]
    );
    server.stop().await;
}
