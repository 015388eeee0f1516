//! Identity over real HTTP: registration, login, lockout, invitations, RBAC, tenancy.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{detail, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn the_seed_flow_registers_logs_in_and_reads_me() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/auth/register",
            json!({"organization_name": "Test Corp", "admin_email": "admin@test.com",
                    "admin_password": "SecurePass123!@#", "admin_name": "Test Admin"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let reg: Value = r.json().await.unwrap();
    assert_eq!(reg["token_type"], "bearer");
    assert_eq!(reg["organization"]["slug"], "test-corp");
    assert_eq!(reg["organization"]["status"], "active");
    assert_eq!(reg["user"]["role"], "admin");
    assert!(reg["user"].get("password_hash").is_none());

    let r = app.login("admin@test.com", "SecurePass123!@#").await;
    assert_eq!(r.status(), StatusCode::OK);
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["token_type"], "bearer");
    let me: Value = app.me(login["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "admin@test.com");
    assert_eq!(me["user"]["full_name"], "Test Admin");
    assert_eq!(me["user"]["is_active"], true);
    assert!(me["user"]["last_login"].is_string());
    assert_eq!(me["organization"]["slug"], "test-corp");
    assert_eq!(me["organization"]["name"], "Test Corp");
    assert_eq!(me["user"]["organization_id"], me["organization"]["id"]);
}

#[tokio::test]
async fn each_password_rule_rejects_with_its_own_message() {
    let app = spawn_app().await;
    for (password, message) in [
        ("Short1!", "Password must be at least 12 characters long"),
        ("lowercase123!@#", "Password must contain at least one uppercase letter"),
        ("UPPERCASE123!@#", "Password must contain at least one lowercase letter"),
        ("NoDigitsHere!@#", "Password must contain at least one digit"),
        ("NoSpecials12345", "Password must contain at least one special character"),
    ] {
        let r = app
            .post(
                "/api/auth/register",
                json!({"organization_name": "Weak Co", "admin_email": "a@weak.com", "admin_password": password, "admin_name": "A"}),
                None,
            )
            .await;
        assert_eq!(detail(r).await, (StatusCode::BAD_REQUEST, message.to_owned()), "{password}");
    }
}

#[tokio::test]
async fn duplicate_slugs_and_emails_are_rejected_case_insensitively() {
    let app = spawn_app().await;
    app.register("Test Corp", "admin@test.com").await;
    let again = |org: &'static str, email: &'static str| {
        app.post(
            "/api/auth/register",
            json!({"organization_name": org, "admin_email": email, "admin_password": PASSWORD, "admin_name": "B"}),
            None,
        )
    };
    assert_eq!(
        detail(again("test  CORP", "other@test.com").await).await,
        (StatusCode::BAD_REQUEST, "Organization slug already exists".into())
    );
    assert_eq!(
        detail(again("Other Corp", "ADMIN@Test.com").await).await,
        (StatusCode::BAD_REQUEST, xdr_commands::auth::identity::REGISTRATION_REFUSED.into())
    );
    // Nothing of the refused registrations was written.
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = 'OrganizationRegistered'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(orgs, 1);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("Acme", "admin@acme.com").await;
    let wrong = detail(app.login("admin@acme.com", "WrongPass123!@#").await).await;
    let unknown = detail(app.login("nobody@acme.com", "WrongPass123!@#").await).await;
    assert_eq!(wrong, (StatusCode::UNAUTHORIZED, "Incorrect email or password".into()));
    assert_eq!(unknown, wrong);
}

#[tokio::test]
async fn five_failures_lock_the_account_until_the_lock_expires() {
    let app = spawn_app().await;
    let reg = app.register("Acme", "admin@acme.com").await;
    let user_stream = format!("user-{}", reg["user"]["id"].as_str().unwrap());
    let before = app.login_ok("admin@acme.com", PASSWORD).await;
    let wrong = detail(app.login("admin@acme.com", "WrongPass123!@#").await).await;
    for _ in 0..4 {
        app.login("admin@acme.com", "WrongPass123!@#").await;
    }
    // Locked: the correct password is refused with the same body as a wrong one (this client
    // never kept its device cookie, so it is an unknown client).
    assert_eq!(detail(app.login("admin@acme.com", PASSWORD).await).await, wrong);
    // The lock guards the password path; a session that signed in before keeps working.
    assert_eq!(app.me(&before.access).await.status(), StatusCode::OK);
    assert_eq!(app.count_events("AccountLocked", &user_stream).await, 1);
    assert_eq!(app.count_events("AccountUnderAttack", &user_stream).await, 1);
    assert_eq!(app.count_events("LoginFailed", &user_stream).await, 6);

    app.clock.advance(Duration::minutes(16));
    app.login_ok("admin@acme.com", PASSWORD).await;
    // The counter restarted: four more failures do not lock.
    for _ in 0..4 {
        app.login("admin@acme.com", "WrongPass123!@#").await;
    }
    app.login_ok("admin@acme.com", PASSWORD).await;
    assert_eq!(app.count_events("AccountLocked", &user_stream).await, 1);
}

/// The known-device cookie a login response set.
fn device_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("xdr_device="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

async fn login_with_cookie(app: &crate::helpers::TestApp, password: &str, device: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/auth/login", app.address))
        .header(reqwest::header::COOKIE, format!("xdr_device={device}"))
        .json(&json!({"email": "owner@acme.com", "password": password}))
        .send()
        .await
        .unwrap()
}

/// The lockout as a weapon: an attacker who knows the address locks the account and keeps
/// guessing. The owner, on a client that signed in before, still gets in; an unknown client
/// with the right password (or a made-up device cookie) does not; admins see the attack in
/// the audit log and on /metrics.
#[tokio::test]
async fn an_attacker_locking_the_account_cannot_keep_the_owner_out_of_a_recognised_client() {
    let app = spawn_app().await;
    let reg = app.register("Acme", "owner@acme.com").await;
    let user_stream = format!("user-{}", reg["user"]["id"].as_str().unwrap());
    // The owner signs in on their laptop, which keeps the device cookie.
    let r = app.login("owner@acme.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie: Vec<String> =
        r.headers().get_all(reqwest::header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let laptop = device_cookie(&r).expect("a device cookie on every successful login");
    let cookie = set_cookie.iter().find(|c| c.starts_with("xdr_device=")).unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/api/auth/login") && cookie.contains("Max-Age=2592000"), "{cookie}");

    // The attacker (no cookie) guesses until the account locks, and goes on guessing.
    for i in 0..12 {
        let r = app.login("owner@acme.com", &format!("Guess{i}!@#abcdef")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let wrong = detail(app.login("owner@acme.com", "WrongPass123!@#").await).await;
    // An unknown client is refused even with the right password, and so is a made-up cookie.
    assert_eq!(detail(app.login("owner@acme.com", PASSWORD).await).await, wrong);
    assert_eq!(detail(login_with_cookie(&app, PASSWORD, &"ab".repeat(32)).await).await, wrong);

    // The owner's laptop is recognised: signed in, and it keeps its device token.
    let r = login_with_cookie(&app, PASSWORD, &laptop).await;
    assert_eq!(r.status(), StatusCode::OK, "the owner is not locked out by someone else's failures");
    assert_eq!(device_cookie(&r).as_deref(), Some(laptop.as_str()));
    let body: Value = r.json().await.unwrap();
    let owner = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&owner).await.status(), StatusCode::OK);
    // The attacker's lock still stands for unknown clients after the owner's sign-in.
    assert_eq!(detail(app.login("owner@acme.com", PASSWORD).await).await, wrong);
    // The laptop's device token is the owner's, not the attacker's: it does not carry a wrong password.
    assert_eq!(detail(login_with_cookie(&app, "WrongPass123!@#", &laptop).await).await, wrong);

    // Every attempt is in the log; the automatic lock is announced once per lock.
    assert_eq!(app.count_events("AccountLocked", &user_stream).await, 1);
    assert_eq!(app.count_events("AccountUnderAttack", &user_stream).await, 1);
    let recognised: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_log WHERE stream_id = $1 AND event_type = 'LoginSucceeded' \
         AND (payload->>'recognised')::boolean",
    )
    .bind(&user_stream)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(recognised, 1);
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let audit = app
        .post(
            "/graphql",
            json!({"query": "{ auditLog(first: 100) { edges { node { eventType streamId actor requestIp details } } } }"}),
            Some(&owner),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let entries = audit["data"]["auditLog"]["edges"].as_array().unwrap_or_else(|| panic!("{audit}"));
    let attack = entries
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["eventType"] == "AccountUnderAttack")
        .unwrap_or_else(|| panic!("no AccountUnderAttack in {audit}"));
    assert_eq!(attack["streamId"], user_stream.as_str());
    assert_eq!(attack["actor"], "anonymous");
    assert_eq!(attack["requestIp"], "127.0.0.1");
    assert_eq!(attack["details"]["consecutive_failures"], 5);
    let digests = entries.iter().any(|e| e["node"]["details"].to_string().contains(&laptop));
    assert!(!digests, "the device token never reaches the audit log");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for name in
        ["xdr_login_accounts_under_attack_total", "xdr_logins_refused_locked_total", "xdr_logins_known_device_total"]
    {
        let value: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"));
        assert!(value >= 1, "{name} = {value}");
    }
}

#[tokio::test]
async fn graphql_login_hands_out_a_device_token_that_a_lock_does_not_refuse() {
    let app = spawn_app().await;
    app.register("Acme", "owner@acme.com").await;
    let login = "mutation($p: String!, $d: String) { login(email: \"owner@acme.com\", password: $p, deviceToken: $d) { accessToken deviceToken } }";
    let gql = |vars: Value| {
        let app = &app;
        async move {
            app.post("/graphql", json!({"query": login, "variables": vars}), None).await.json::<Value>().await.unwrap()
        }
    };
    let r = gql(json!({"p": PASSWORD})).await;
    let device = r["data"]["login"]["deviceToken"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    for _ in 0..5 {
        gql(json!({"p": "WrongPass123!@#"})).await;
    }
    let r = gql(json!({"p": PASSWORD})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{r}");
    let r = gql(json!({"p": PASSWORD, "d": device})).await;
    assert!(r["data"]["login"]["accessToken"].is_string(), "{r}");
    assert_eq!(r["data"]["login"]["deviceToken"], device.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_wrong_guesses_lock_exactly_once() {
    let app = spawn_app().await;
    let reg = app.register("Acme", "admin@acme.com").await;
    let user_stream = format!("user-{}", reg["user"]["id"].as_str().unwrap());
    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let (client, address) = (app.client.clone(), app.address.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{address}/api/auth/login"))
                    .json(&json!({"email": "admin@acme.com", "password": format!("WrongPass{i}!@#Aa")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for g in guesses {
        assert_eq!(g.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.count_events("AccountLocked", &user_stream).await, 1);
    assert_eq!(app.count_events("LoginFailed", &user_stream).await, 50);
    assert_eq!(app.count_events("LoginSucceeded", &user_stream).await, 0);
    assert_eq!(app.login("admin@acme.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admins_lock_and_unlock_users_of_their_own_org_only() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let b = app.register("Org B", "admin@b.com").await;
    let a_admin = app.login_ok("admin@a.com", PASSWORD).await;
    let (analyst_id, analyst) = app.user_with_role(&a_admin.access, "analyst@a.com", "analyst").await;
    let b_admin_id = b["user"]["id"].as_str().unwrap();

    // Org B's user does not exist for org A: 404 for read, lock and unlock.
    for path in [format!("/api/auth/users/{b_admin_id}")] {
        assert_eq!(app.get(&path, Some(&a_admin.access)).await.status(), StatusCode::NOT_FOUND);
    }
    for action in ["lock", "unlock"] {
        let r = app.post(&format!("/api/auth/users/{b_admin_id}/{action}"), json!({}), Some(&a_admin.access)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
    app.login_ok("admin@b.com", PASSWORD).await;

    // An analyst may not lock; the admin may, and the analyst is shut out at once.
    let a_admin_id = a["user"]["id"].as_str().unwrap();
    let r = app.post(&format!("/api/auth/users/{a_admin_id}/lock"), json!({}), Some(&analyst.access)).await;
    assert_eq!(detail(r).await, (StatusCode::FORBIDDEN, "Insufficient permissions".into()));
    let r = app.post(&format!("/api/auth/users/{analyst_id}/lock"), json!({}), Some(&a_admin.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.me(&analyst.access).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.login("analyst@a.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let r = app.post(&format!("/api/auth/users/{analyst_id}/unlock"), json!({}), Some(&a_admin.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.me(&analyst.access).await.status(), StatusCode::OK);
    assert_eq!(app.count_events("AccountUnlocked", &format!("user-{analyst_id}")).await, 1);
}

#[tokio::test]
async fn only_admins_invite_and_only_into_their_own_org() {
    let app = spawn_app().await;
    app.register("Org A", "admin@a.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await;
    let (_, viewer) = app.user_with_role(&admin.access, "viewer@a.com", "viewer").await;
    let (_, analyst) = app.user_with_role(&admin.access, "analyst@a.com", "analyst").await;
    for token in [&viewer.access, &analyst.access] {
        let r = app
            .post("/api/auth/invite", json!({"email": "x@a.com", "full_name": "X", "role": "admin"}), Some(token))
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // The invitee lands in the inviter's org whatever the body says.
    let r = app
        .post(
            "/api/auth/invite",
            json!({"email": "new@a.com", "full_name": "New", "role": "soc_lead", "organization_id": "00000000-0000-0000-0000-000000000000"}),
            Some(&admin.access),
        )
        .await;
    let invited: Value = r.json().await.unwrap();
    let me: Value = app.me(&admin.access).await.json().await.unwrap();
    assert_eq!(invited["user"]["organization_id"], me["organization"]["id"]);
    assert_eq!(invited["user"]["role"], "soc_lead");
    let r = app
        .post("/api/auth/invite", json!({"email": "y@a.com", "full_name": "Y", "role": "root"}), Some(&admin.access))
        .await;
    assert_eq!(detail(r).await, (StatusCode::BAD_REQUEST, "Invalid role".into()));
}

#[tokio::test]
async fn an_invitation_is_accepted_once_before_it_expires_with_a_strong_password() {
    let app = spawn_app().await;
    app.register("Org A", "admin@a.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await;
    let invite = |email: &'static str| {
        app.post(
            "/api/auth/invite",
            json!({"email": email, "full_name": "Inv", "role": "analyst"}),
            Some(&admin.access),
        )
    };
    let first: Value = invite("one@a.com").await.json().await.unwrap();
    let token = first["invitation_token"].as_str().unwrap();
    // Invited but not accepted: no login.
    assert_eq!(app.login("one@a.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let weak = app.post("/api/auth/accept-invite", json!({"token": token, "password": "weak"}), None).await;
    assert_eq!(detail(weak).await, (StatusCode::BAD_REQUEST, "Password must be at least 12 characters long".into()));
    let ok = app.post("/api/auth/accept-invite", json!({"token": token, "password": PASSWORD}), None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    app.login_ok("one@a.com", PASSWORD).await;
    let again = app.post("/api/auth/accept-invite", json!({"token": token, "password": PASSWORD}), None).await;
    assert_eq!(detail(again).await, (StatusCode::BAD_REQUEST, "Invalid or expired invitation".into()));
    let forged = format!("{}x", token);
    let r = app.post("/api/auth/accept-invite", json!({"token": forged, "password": PASSWORD}), None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let second: Value = invite("two@a.com").await.json().await.unwrap();
    app.clock.advance(Duration::hours(73));
    let admin = app.login_ok("admin@a.com", PASSWORD).await;
    let _ = admin;
    let expired = app
        .post("/api/auth/accept-invite", json!({"token": second["invitation_token"], "password": PASSWORD}), None)
        .await;
    assert_eq!(detail(expired).await, (StatusCode::BAD_REQUEST, "Invalid or expired invitation".into()));
}

#[tokio::test]
async fn login_is_rate_limited_per_client_address() {
    let app = spawn_app_with(xdr_graphql::ServerConfig { login_rate_per_minute: 3, ..Default::default() }).await;
    app.register("Acme", "admin@acme.com").await;
    for _ in 0..3 {
        assert_eq!(app.login("admin@acme.com", "WrongPass123!@#").await.status(), StatusCode::UNAUTHORIZED);
    }
    let (status, _) = detail(app.login("admin@acme.com", PASSWORD).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("xdr_logins_rate_limited_total 1"), "{metrics}");
}

#[tokio::test]
async fn malformed_bodies_get_422_and_auth_events_record_the_client_address() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(format!("{}/api/auth/login", app.address))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, message) = detail(r).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(message.starts_with("Malformed request body"), "{message}");
    let r = app.post("/api/auth/login", json!({"email": "x@y.com"}), None).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    app.register("Acme", "admin@acme.com").await;
    app.login("admin@acme.com", "WrongPass123!@#").await;
    let meta: Value = sqlx::query_scalar("SELECT metadata FROM event_log WHERE event_type = 'LoginFailed'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(meta["request_ip"], "127.0.0.1");
    assert_eq!(meta["actor"], "anonymous", "a failed attempt is not the user's own action");
    assert!(meta.get("actor_user_id").is_none());
    // The plaintext password is nowhere in the log.
    let hits: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log WHERE payload::text LIKE '%WrongPass123%' OR payload::text LIKE '%SecurePass123%'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(hits, 0);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
}
