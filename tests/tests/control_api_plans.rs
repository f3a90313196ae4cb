//! The payment plans API against the running server, over the generated tonic client,
//! proving:
//!
//! - what each role may do with plans, and that a refused call writes nothing;
//! - that a plan keeps its terms as created, in the organisation's currency, with the
//!   documented defaults (limit 0, no automatic switch-off, 1000 W);
//! - that renaming keeps the terms, retiring is recorded once, and both are audited;
//! - that each invalid field is INVALID_ARGUMENT naming it, with nothing stored;
//! - that another organisation's plans are NOT_FOUND and never listed;
//! - that lists filter by tariff, availability and name, and pages return every plan once.

use std::collections::HashSet;

use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::Role;
use sunledger_proto::api::v1::create_plan_request::Tariff;
use sunledger_tests::TestServer;
use sunledger_tests::api::{Api, Org, all_pages, assert_invalid};
use tonic::{Code, Status};

fn usage(name: &str, price: &str) -> api::CreatePlanRequest {
    api::CreatePlanRequest {
        name: name.into(),
        tariff: Some(Tariff::Usage(api::UsageTariff {
            price_per_kwh: price.into(),
        })),
        ..Default::default()
    }
}

fn weekly(name: &str, amount: &str) -> api::CreatePlanRequest {
    api::CreatePlanRequest {
        name: name.into(),
        tariff: Some(Tariff::Instalment(api::InstalmentTariff {
            amount_per_period: amount.into(),
            period: api::TariffPeriod::Weekly.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

async fn create(api: &Api, request: api::CreatePlanRequest) -> Result<api::Plan, Status> {
    Ok(api.plans().create_plan(request).await?.into_inner())
}

async fn list(api: &Api, request: api::ListPlansRequest) -> Vec<api::Plan> {
    all_pages(|page_token| {
        let request = api::ListPlansRequest {
            page_token,
            ..request.clone()
        };
        async move {
            let page = api
                .plans()
                .list_plans(request)
                .await
                .expect("listing plans")
                .into_inner();
            (page.plans, page.next_page_token)
        }
    })
    .await
}

fn ids(plans: &[api::Plan]) -> Vec<&str> {
    plans.iter().map(|plan| plan.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_make_exactly_its_plan_calls_and_refused_calls_write_nothing() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Roles").await;
    let plan = create(&org.admin, usage("Base", "25")).await.expect("plan");

    use Code::{Ok as Allowed, PermissionDenied as Denied};
    for role in [Role::Observer, Role::Technician, Role::Admin] {
        let api = org.as_role(role);
        let mut plans = api.plans();
        let before = org.admin.newest_audit_sequence().await;
        let outcomes = [
            (
                "CreatePlan",
                create(api, usage("New", "1")).await.map(drop),
                [Denied, Denied, Allowed],
            ),
            (
                "GetPlan",
                plans
                    .get_plan(api::GetPlanRequest {
                        plan_id: plan.id.clone(),
                    })
                    .await
                    .map(drop),
                [Allowed, Allowed, Allowed],
            ),
            (
                "ListPlans",
                plans
                    .list_plans(api::ListPlansRequest::default())
                    .await
                    .map(drop),
                [Allowed, Allowed, Allowed],
            ),
            (
                "RenamePlan",
                plans
                    .rename_plan(api::RenamePlanRequest {
                        plan_id: plan.id.clone(),
                        name: format!("Renamed by {role:?}"),
                    })
                    .await
                    .map(drop),
                [Denied, Denied, Allowed],
            ),
            (
                "RetirePlan",
                plans
                    .retire_plan(api::RetirePlanRequest {
                        plan_id: plan.id.clone(),
                    })
                    .await
                    .map(drop),
                [Denied, Denied, Allowed],
            ),
        ];
        let index = match role {
            Role::Observer => 0,
            Role::Technician => 1,
            _ => 2,
        };
        for (call, outcome, expected) in outcomes {
            let code = outcome.err().map_or(Code::Ok, |status| status.code());
            assert_eq!(code, expected[index], "{call} as {role:?}");
        }
        if role != Role::Admin {
            assert_eq!(
                org.admin.newest_audit_sequence().await,
                before,
                "{role:?} wrote"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_keep_their_terms_in_the_organisation_currency_with_documented_defaults() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Terms").await;
    let mut request = usage("Pay as you go", "0.370");
    request.negative_charge_limit = "-100.50".into();
    request.auto_switch_off = true;
    request.rated_power_w = 250;
    let created = create(&org.admin, request).await.expect("usage plan");
    assert!(created.id.starts_with("plan_"));
    assert_eq!(
        created.tariff,
        Some(api::plan::Tariff::Usage(api::UsageTariff {
            price_per_kwh: "0.37".into()
        }))
    );
    assert_eq!(created.negative_charge_limit, "-100.5");
    assert!(created.auto_switch_off);
    assert_eq!(created.rated_power_w, 250);
    assert_eq!(created.currency, "KES");
    assert!(created.retired_at.is_none());

    let weekly = create(&org.admin, weekly("Weekly 100", "100"))
        .await
        .expect("instalment plan");
    assert_eq!(
        weekly.tariff,
        Some(api::plan::Tariff::Instalment(api::InstalmentTariff {
            amount_per_period: "100".into(),
            period: api::TariffPeriod::Weekly.into(),
            token_time_mode: api::TokenTimeMode::AddTime.into(),
        }))
    );
    assert_eq!(
        (
            weekly.negative_charge_limit.as_str(),
            weekly.auto_switch_off,
            weekly.rated_power_w
        ),
        ("0", false, 1000),
        "limit 0 and no switch-off unless entered"
    );
    let fetched = org
        .observer
        .plans()
        .get_plan(api::GetPlanRequest {
            plan_id: created.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched, created);

    let events = org.admin.audit_events().await;
    let created_events: Vec<_> = events
        .iter()
        .filter(|event| event.action == "plan.created")
        .collect();
    assert_eq!(created_events.len(), 2);
    assert_eq!(created_events[1].target_id, created.id);
    assert_eq!(created_events[1].actor_member_id, org.founded.admin.id);
    assert!(created_events[1].description.contains("0.37 KES/kWh"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_keeps_the_terms_and_retiring_is_recorded_once() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Lifecycle").await;
    let plan = create(&org.admin, weekly("Weekly", "50"))
        .await
        .expect("plan");
    let mut plans = org.admin.plans();
    let renamed = plans
        .rename_plan(api::RenamePlanRequest {
            plan_id: plan.id.clone(),
            name: "Weekly 50".into(),
        })
        .await
        .expect("renamed")
        .into_inner();
    assert_eq!(renamed.name, "Weekly 50");
    assert_eq!(renamed.tariff, plan.tariff);

    let retire = api::RetirePlanRequest {
        plan_id: plan.id.clone(),
    };
    let retired = plans
        .retire_plan(retire.clone())
        .await
        .expect("retired")
        .into_inner();
    assert!(retired.retired_at.is_some());
    let sequence = org.admin.newest_audit_sequence().await;
    let again = plans
        .retire_plan(retire)
        .await
        .expect("retired again")
        .into_inner();
    assert_eq!(again, retired, "retiring a retired plan changes nothing");
    assert_eq!(org.admin.newest_audit_sequence().await, sequence);
    let renamed_retired = plans
        .rename_plan(api::RenamePlanRequest {
            plan_id: plan.id.clone(),
            name: "Old weekly".into(),
        })
        .await
        .expect("a retired plan can be renamed")
        .into_inner();
    assert_eq!(renamed_retired.retired_at, retired.retired_at);

    let actions: Vec<String> = org
        .admin
        .audit_events()
        .await
        .into_iter()
        .filter(|event| event.target_id == plan.id)
        .map(|event| event.action)
        .collect();
    assert_eq!(
        actions,
        [
            "plan.renamed",
            "plan.retired",
            "plan.renamed",
            "plan.created"
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_plan_field_is_refused_naming_it_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Invalid").await;
    let existing = create(&org.admin, usage("Existing", "1"))
        .await
        .expect("plan");
    let instalment = |amount: &str, period: api::TariffPeriod| api::CreatePlanRequest {
        name: "Instalment".into(),
        tariff: Some(Tariff::Instalment(api::InstalmentTariff {
            amount_per_period: amount.into(),
            period: period.into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let with_limit = |limit: &str| api::CreatePlanRequest {
        negative_charge_limit: limit.into(),
        ..usage("Limited", "1")
    };
    let cases = [
        (usage("  ", "1"), "name"),
        (usage(&"n".repeat(257), "1"), "name"),
        (usage("Control\u{7}", "1"), "name"),
        (
            api::CreatePlanRequest {
                name: "No tariff".into(),
                ..Default::default()
            },
            "tariff",
        ),
        (usage("Price", ""), "usage.price_per_kwh"),
        (usage("Price", "-0.5"), "usage.price_per_kwh"),
        (usage("Price", "0.5 KES"), "usage.price_per_kwh"),
        (usage("Price", "1e3"), "usage.price_per_kwh"),
        (
            usage("Price", "1000000000000000000000000000000"),
            "usage.price_per_kwh",
        ),
        (usage("Price", "0.0000000000001"), "usage.price_per_kwh"),
        (
            instalment("-1", api::TariffPeriod::Daily),
            "instalment.amount_per_period",
        ),
        (
            instalment("10", api::TariffPeriod::Unspecified),
            "instalment.period",
        ),
        (with_limit("100"), "negative_charge_limit"),
        (with_limit("-1,000"), "negative_charge_limit"),
    ];
    let before = org.admin.newest_audit_sequence().await;
    for (request, field) in cases {
        assert_invalid(create(&org.admin, request).await, field);
    }
    let mut plans = org.admin.plans();
    assert_invalid(
        plans
            .rename_plan(api::RenamePlanRequest {
                plan_id: existing.id.clone(),
                name: String::new(),
            })
            .await,
        "name",
    );
    assert_invalid(
        plans.get_plan(api::GetPlanRequest::default()).await,
        "plan_id",
    );
    for (page_size, page_token, search, field) in [
        (-1, "", String::new(), "page_size"),
        (0, "zz", String::new(), "page_token"),
        (0, "", "s".repeat(257), "search"),
    ] {
        let request = api::ListPlansRequest {
            page_size,
            page_token: page_token.into(),
            search,
            ..Default::default()
        };
        assert_invalid(plans.list_plans(request).await, field);
    }
    assert_eq!(org.admin.newest_audit_sequence().await, before);
    let listed = list(&org.admin, api::ListPlansRequest::default()).await;
    assert_eq!(ids(&listed), [existing.id.as_str()]);
    assert_eq!(listed[0].name, "Existing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisation_can_neither_see_nor_change_a_plan() {
    let server = TestServer::start().await;
    let owner = Org::start(&server, "Owner").await;
    let other = Org::start(&server, "Other").await;
    let plan = create(&owner.admin, usage("Private", "3"))
        .await
        .expect("plan");
    let mut plans = other.admin.plans();
    let plan_id = plan.id.clone();
    let refusals = [
        plans
            .get_plan(api::GetPlanRequest {
                plan_id: plan_id.clone(),
            })
            .await
            .map(drop),
        plans
            .rename_plan(api::RenamePlanRequest {
                plan_id: plan_id.clone(),
                name: "Stolen".into(),
            })
            .await
            .map(drop),
        plans
            .retire_plan(api::RetirePlanRequest {
                plan_id: plan_id.clone(),
            })
            .await
            .map(drop),
    ];
    for refusal in refusals {
        assert_eq!(refusal.unwrap_err().code(), Code::NotFound);
    }
    assert!(
        list(&other.admin, api::ListPlansRequest::default())
            .await
            .is_empty()
    );
    let unchanged = owner
        .admin
        .plans()
        .get_plan(api::GetPlanRequest { plan_id })
        .await
        .expect("owner still sees it")
        .into_inner();
    assert_eq!(unchanged, plan);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_by_tariff_availability_and_name_and_pages_return_every_plan_once() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Lists").await;
    let mut usage_ids = Vec::new();
    let mut weekly_ids = Vec::new();
    for n in 0..4 {
        usage_ids.push(
            create(&org.admin, usage(&format!("Usage {n}"), "1"))
                .await
                .expect("plan")
                .id,
        );
        weekly_ids.push(
            create(&org.admin, weekly(&format!("Weekly {n}"), "9"))
                .await
                .expect("plan")
                .id,
        );
    }
    org.admin
        .plans()
        .retire_plan(api::RetirePlanRequest {
            plan_id: weekly_ids[0].clone(),
        })
        .await
        .expect("retired");

    let everything = list(
        &org.observer,
        api::ListPlansRequest {
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    let listed: Vec<&str> = ids(&everything);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "ordered by id");
    let unique: HashSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        (listed.len(), unique.len()),
        (8, 8),
        "each plan exactly once"
    );

    let filtered =
        |tariff_type: api::TariffType, availability: api::PlanAvailability, search: &str| {
            api::ListPlansRequest {
                page_size: 2,
                tariff_type: tariff_type.into(),
                availability: availability.into(),
                search: search.into(),
                ..Default::default()
            }
        };
    use api::{PlanAvailability as A, TariffType as T};
    let cases = [
        (filtered(T::Usage, A::Unspecified, ""), usage_ids.clone()),
        (
            filtered(T::Instalment, A::Active, ""),
            weekly_ids[1..].to_vec(),
        ),
        (
            filtered(T::Unspecified, A::Retired, ""),
            vec![weekly_ids[0].clone()],
        ),
        (
            filtered(T::Unspecified, A::Unspecified, "usage 2"),
            vec![usage_ids[2].clone()],
        ),
        (filtered(T::Usage, A::Unspecified, "WEEKLY"), Vec::new()),
    ];
    for (request, mut expected) in cases {
        let shown = list(&org.observer, request.clone()).await;
        let mut shown: Vec<String> = shown.into_iter().map(|plan| plan.id).collect();
        shown.sort();
        expected.sort();
        assert_eq!(shown, expected, "{request:?}");
    }
    server.stop().await;
}
