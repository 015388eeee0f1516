//! Role changes, deactivation and the session list over real HTTP and PostgreSQL: each change
//! holds on the affected user's very next request; another org's users and sessions do not
//! exist for an admin.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use xdr_domain::ids::OrgId;

use crate::helpers::{spawn_app, TestApp, Tokens, PASSWORD};

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    let r = app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await;
    r.json().await.unwrap()
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

const SET_STATUS: &str = "mutation($id: ID!) { updateIncidentStatus(id: $id, status: DISMISSED) { __typename } }";
const CHANGE_ROLE: &str = "mutation($id: ID!, $role: Role!) { changeUserRole(id: $id, role: $role) { role } }";
const DEACTIVATE: &str = "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }";
const REACTIVATE: &str = "mutation($id: ID!) { reactivateUser(id: $id) { isActive } }";
const MY_SESSIONS: &str = "{ me { user { email } sessions { id createdAt lastUsedAt ip userAgent current } } }";

async fn project(app: &TestApp) {
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
}

/// The caller's org, as `me` says.
async fn org_of(app: &TestApp, access: &str) -> OrgId {
    let me: Value = app.me(access).await.json().await.unwrap();
    OrgId(Uuid::parse_str(me["organization"]["id"].as_str().unwrap()).unwrap())
}

/// `(actor, details)` of the audit entry of `event_type` on `stream` (read models are under
/// row-level security even for their owner: read inside the org's scope).
pub async fn audit_entry(app: &TestApp, org: OrgId, event_type: &str, stream: &str) -> (String, Value) {
    let mut tx = xdr_commands::db::begin_org_tx(&app.db.pool, org).await.unwrap();
    sqlx::query_as("SELECT actor, details FROM rm_audit_log WHERE event_type = $1 AND stream_id = $2")
        .bind(event_type)
        .bind(stream)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
}

async fn admin_of(app: &TestApp, org: &str, email: &str) -> (String, String) {
    let body = app.register(org, email).await;
    (body["access_token"].as_str().unwrap().to_owned(), body["user"]["id"].as_str().unwrap().to_owned())
}

/// A login with a chosen `User-Agent`.
async fn login_as(app: &TestApp, email: &str, user_agent: &str) -> Tokens {
    let r = app
        .client
        .post(format!("{}/api/auth/login", app.address))
        .header("User-Agent", user_agent)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "login {email}");
    Tokens::from(&r.json().await.unwrap())
}

async fn refresh(app: &TestApp, refresh_token: &str) -> StatusCode {
    app.post("/api/auth/refresh", json!({"refresh_token": refresh_token}), None).await.status()
}

#[tokio::test]
async fn a_demoted_analyst_is_refused_on_the_very_next_request_and_the_change_is_audited() {
    let app = spawn_app().await;
    let (admin, _) = admin_of(&app, "Demote Corp", "admin@demote.example").await;
    let (analyst_id, analyst) = app.user_with_role(&admin, "ana@demote.example", "analyst").await;
    let incident = Uuid::new_v4().to_string();
    // As an analyst the mutation passes the permission check (the incident does not exist).
    let before = gql(&app, SET_STATUS, json!({"id": incident}), &analyst.access).await;
    assert_ne!(code(&before), "FORBIDDEN", "{before}");

    let changed = gql(&app, CHANGE_ROLE, json!({"id": analyst_id, "role": "VIEWER"}), &admin).await;
    assert_eq!(changed["data"]["changeUserRole"]["role"], "VIEWER", "{changed}");
    // The same access token, whose claims still say analyst, is judged by the current role.
    let after = gql(&app, SET_STATUS, json!({"id": incident}), &analyst.access).await;
    assert_eq!(code(&after), "FORBIDDEN", "{after}");

    project(&app).await;
    let org = org_of(&app, &admin).await;
    let (actor, details) = audit_entry(&app, org, "UserRoleChanged", &format!("user-{analyst_id}")).await;
    assert!(actor.starts_with("user:"), "{actor}");
    assert_eq!((details["from"].as_str(), details["to"].as_str()), (Some("analyst"), Some("viewer")));
    // The users list shows the new role.
    let users = gql(&app, "{ users { edges { node { email role } } } }", json!({}), &admin).await;
    assert!(users["data"]["users"]["edges"].as_array().unwrap().iter().any(|e| e["node"]["role"] == "VIEWER"));
}

#[tokio::test]
async fn a_deactivated_user_loses_access_refresh_and_login_at_once_and_reactivation_needs_a_new_sign_in() {
    let app = spawn_app().await;
    let (admin, _) = admin_of(&app, "Leaver Corp", "admin@leaver.example").await;
    let (leaver_id, leaver) = app.user_with_role(&admin, "leaver@leaver.example", "analyst").await;
    assert_eq!(app.me(&leaver.access).await.status(), StatusCode::OK);

    // Over REST, as the pattern of lock/unlock.
    let r = app.post(&format!("/api/auth/users/{leaver_id}/deactivate"), json!({}), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["is_active"], false);

    assert_eq!(app.me(&leaver.access).await.status(), StatusCode::UNAUTHORIZED, "access token refused");
    assert_eq!(refresh(&app, &leaver.refresh).await, StatusCode::UNAUTHORIZED, "refresh refused");
    assert_eq!(app.login("leaver@leaver.example", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);

    app.clock.advance(Duration::seconds(1));
    let back = gql(&app, REACTIVATE, json!({"id": leaver_id}), &admin).await;
    assert_eq!(back["data"]["reactivateUser"]["isActive"], true, "{back}");
    // The sessions from before the deactivation stay dead; a new sign-in works.
    assert_eq!(app.me(&leaver.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&app, &leaver.refresh).await, StatusCode::UNAUTHORIZED);
    app.clock.advance(Duration::seconds(1));
    let again = app.login_ok("leaver@leaver.example", PASSWORD).await;
    assert_eq!(app.me(&again.access).await.status(), StatusCode::OK);
    assert_eq!(app.count_events("UserDeactivated", &format!("user-{leaver_id}")).await, 1);
    assert_eq!(app.count_events("UserReactivated", &format!("user-{leaver_id}")).await, 1);
}

#[tokio::test]
async fn the_last_active_admin_cannot_demote_or_deactivate_themselves_but_can_once_there_is_another() {
    let app = spawn_app().await;
    let (admin, admin_id) = admin_of(&app, "Solo Corp", "solo@solo.example").await;
    let demote = gql(&app, CHANGE_ROLE, json!({"id": admin_id, "role": "ANALYST"}), &admin).await;
    assert_eq!(code(&demote), "BAD_USER_INPUT", "{demote}");
    assert!(demote["errors"][0]["message"].as_str().unwrap().contains("last active admin"));
    let off = gql(&app, DEACTIVATE, json!({"id": admin_id}), &admin).await;
    assert_eq!(code(&off), "BAD_USER_INPUT", "{off}");
    assert_eq!(app.me(&admin).await.status(), StatusCode::OK, "still an admin, still signed in");

    // A second admin appears: now the first may step down.
    let (second_id, second) = app.user_with_role(&admin, "second@solo.example", "admin").await;
    let demote = gql(&app, CHANGE_ROLE, json!({"id": admin_id, "role": "ANALYST"}), &admin).await;
    assert_eq!(demote["data"]["changeUserRole"]["role"], "ANALYST", "{demote}");
    // …and the second is now the last one.
    let off = gql(&app, DEACTIVATE, json!({"id": second_id}), &second.access).await;
    assert_eq!(code(&off), "BAD_USER_INPUT", "{off}");
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = spawn_app().await;
    let (first, first_id) = admin_of(&app, "Race Corp", "first@race.example").await;
    let (second_id, second) = app.user_with_role(&first, "second@race.example", "admin").await;
    let (a, b) = tokio::join!(
        gql(&app, CHANGE_ROLE, json!({"id": second_id, "role": "VIEWER"}), &first),
        gql(&app, CHANGE_ROLE, json!({"id": first_id, "role": "VIEWER"}), &second.access),
    );
    let won = [&a, &b].iter().filter(|r| r["data"]["changeUserRole"]["role"] == "VIEWER").count();
    let refused = [&a, &b].iter().filter(|r| code(r) == "BAD_USER_INPUT" || code(r) == "FORBIDDEN").count();
    assert_eq!((won, refused), (1, 1), "{a} {b}");
}

#[tokio::test]
async fn an_admin_cannot_touch_a_user_or_session_of_another_org() {
    let app = spawn_app().await;
    let (admin_a, _) = admin_of(&app, "Alpha Corp", "admin@alpha.example").await;
    let (admin_b, _) = admin_of(&app, "Beta Corp", "admin@beta.example").await;
    let (victim_id, victim) = app.user_with_role(&admin_b, "victim@beta.example", "analyst").await;
    project(&app).await;
    let mut tx = xdr_commands::db::begin_org_tx(&app.db.pool, org_of(&app, &admin_b).await).await.unwrap();
    let victim_session: String = sqlx::query_scalar(
        "SELECT session_id::text FROM rm_user_sessions WHERE user_id = $1::uuid ORDER BY started_at DESC LIMIT 1",
    )
    .bind(&victim_id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    drop(tx);

    for (query, vars) in [
        (CHANGE_ROLE, json!({"id": victim_id, "role": "ADMIN"})),
        (DEACTIVATE, json!({"id": victim_id})),
        ("mutation($id: ID!) { revokeUserSessions(userId: $id) }", json!({"id": victim_id})),
        ("mutation($id: ID!) { revokeSession(id: $id) }", json!({"id": victim_session})),
        ("query($id: ID!) { userSessions(userId: $id) { id } }", json!({"id": victim_id})),
    ] {
        let r = gql(&app, query, vars, &admin_a).await;
        assert_eq!(code(&r), "NOT_FOUND", "{query}: {r}");
    }
    let r = app.post(&format!("/api/auth/users/{victim_id}/deactivate"), json!({}), Some(&admin_a)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.post(&format!("/api/auth/sessions/{victim_session}/revoke"), json!({}), Some(&admin_a)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The victim is untouched.
    assert_eq!(app.me(&victim.access).await.status(), StatusCode::OK);
    assert_eq!(refresh(&app, &victim.refresh).await, StatusCode::OK);
    // A non-admin of the org itself cannot end someone else's session either.
    let (_, peer) = app.user_with_role(&admin_b, "peer@beta.example", "soc_lead").await;
    let r =
        gql(&app, "mutation($id: ID!) { revokeSession(id: $id) }", json!({"id": victim_session}), &peer.access).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
}

#[tokio::test]
async fn a_user_lists_their_sessions_and_revokes_one_then_all_others() {
    let app = spawn_app().await;
    let (admin, _) = admin_of(&app, "Laptop Corp", "admin@laptop.example").await;
    let (user_id, _) = app.user_with_role(&admin, "many@laptop.example", "analyst").await;
    let laptop = login_as(&app, "many@laptop.example", "Laptop/1.0").await;
    let phone = login_as(&app, "many@laptop.example", "Phone/2.0").await;
    let tablet = login_as(&app, "many@laptop.example", "Tablet/3.0").await;
    project(&app).await;

    let me = gql(&app, MY_SESSIONS, json!({}), &laptop.access).await;
    let sessions = me["data"]["me"]["sessions"].as_array().unwrap_or_else(|| panic!("{me}")).clone();
    assert_eq!(sessions.len(), 4, "the invitation's sign-in and three more: {me}");
    let laptop_row = sessions.iter().find(|s| s["userAgent"] == "Laptop/1.0").unwrap();
    assert_eq!(laptop_row["current"], true);
    assert_eq!(laptop_row["ip"], "127.0.0.1");
    assert!(laptop_row["createdAt"].is_string() && laptop_row["lastUsedAt"].is_string());
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    // Revoke the phone's session from the laptop: its refresh and access tokens die.
    let phone_id = sessions.iter().find(|s| s["userAgent"] == "Phone/2.0").unwrap()["id"].as_str().unwrap().to_owned();
    let r = gql(&app, "mutation($id: ID!) { revokeSession(id: $id) }", json!({"id": phone_id}), &laptop.access).await;
    assert_eq!(r["data"]["revokeSession"], true, "{r}");
    assert_eq!(refresh(&app, &phone.refresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&phone.access).await.status(), StatusCode::UNAUTHORIZED);

    // Sign out everywhere else: the tablet dies, the laptop lives on.
    app.clock.advance(Duration::seconds(1));
    let r = app.post("/api/auth/sessions/revoke-others", json!({}), Some(&laptop.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.me(&tablet.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&app, &tablet.refresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);
    assert_eq!(refresh(&app, &laptop.refresh).await, StatusCode::OK);
    project(&app).await;
    let me = gql(&app, MY_SESSIONS, json!({}), &laptop.access).await;
    let left: Vec<&Value> = me["data"]["me"]["sessions"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 1, "{me}");
    assert_eq!(left[0]["userAgent"], "Laptop/1.0");
    assert_eq!(app.count_events("UserSessionsRevoked", &format!("user-{user_id}")).await, 1);

    // An admin sees the user's sessions and ends them all.
    let listed =
        gql(&app, "query($id: ID!) { userSessions(userId: $id) { userAgent } }", json!({"id": user_id}), &admin).await;
    assert_eq!(listed["data"]["userSessions"].as_array().map(Vec::len), Some(1), "{listed}");
    app.clock.advance(Duration::seconds(1));
    let r = gql(&app, "mutation($id: ID!) { revokeUserSessions(userId: $id) }", json!({"id": user_id}), &admin).await;
    assert_eq!(r["data"]["revokeUserSessions"], true, "{r}");
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::UNAUTHORIZED);
    // A viewer-level caller cannot list another user's sessions.
    let (_, viewer) = app.user_with_role(&admin, "viewer@laptop.example", "viewer").await;
    let r =
        gql(&app, "query($id: ID!) { userSessions(userId: $id) { id } }", json!({"id": user_id}), &viewer.access).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
}
