//! Repeated failed logins lock the failing party out for a while, on both front doors:
//! a device client id that keeps failing CONNECT is refused unchecked (even with the right
//! secret), and an address that keeps failing API authentication gets RESOURCE_EXHAUSTED
//! (even with a valid token). Both are counted as `rate_limited`.

use sunledger_billing::units::DeviceKey;
use sunledger_control_api::auth::API_AUTH_LIMIT;
use sunledger_proto::api::v1 as api;
use sunledger_tests::api::{Api, found};
use sunledger_tests::{Device, TestServer};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_that_keeps_failing_connect_is_locked_out() {
    let server = TestServer::start().await;
    let secret = server.register("SL-LOCK-1");
    let wrong = DeviceKey::generate();
    // Five free failures, then lockouts of 1, 2 and 4 s: the right secret comes within them.
    for _ in 0..8 {
        let mut device = Device::connect(server.mqtt, "SL-LOCK-1", &wrong, None);
        device.expect_closed().await;
    }
    let mut device = Device::connect(server.mqtt, "SL-LOCK-1", &secret, None);
    device.expect_closed().await;
    let limited = [("reason", "rate_limited")];
    server
        .wait_for_metric("sunledger_broker_connect_refused_total", &limited, 1.0)
        .await;
    let neighbour_secret = server.register("SL-LOCK-2");
    let mut neighbour = Device::connect(server.mqtt, "SL-LOCK-2", &neighbour_secret, None);
    neighbour.expect_connected().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_api_authentication_is_locked_out() {
    let server = TestServer::start().await;
    let founded = found(&server, "Lockout Solar").await;
    let admin = Api::bearer(&server, founded.token.secret.expose()).await;
    let list = |api: Api| async move {
        api.team()
            .list_members(api::ListMembersRequest::default())
            .await
            .map(|_| ())
    };
    list(admin.clone()).await.expect("a valid token works");
    let stranger = Api::bearer(&server, "not-a-token").await;
    for _ in 0..API_AUTH_LIMIT.free_failures {
        let refused = list(stranger.clone()).await.expect_err("bad token");
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let first_counted = list(stranger.clone()).await.expect_err("bad token");
    assert_eq!(
        first_counted.code(),
        Code::Unauthenticated,
        "checked, then locked"
    );
    let locked = list(stranger).await.expect_err("locked out");
    assert_eq!(locked.code(), Code::ResourceExhausted);
    let also_locked = list(admin).await.expect_err("same address, locked out");
    assert_eq!(also_locked.code(), Code::ResourceExhausted);
    assert!(
        server
            .metric(
                "sunledger_api_auth_failed_total",
                &[("reason", "rate_limited")]
            )
            .await
            >= 2.0
    );
}
