//! The identity operations through GraphQL: same handlers, errors with `extensions.code`.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, PASSWORD};

async fn gql(app: &TestApp, query: &str, variables: Value, token: Option<&str>) -> Value {
    let r = app.post("/graphql", json!({"query": query, "variables": variables}), token).await;
    assert!(r.status().is_success(), "status {}", r.status());
    r.json().await.unwrap()
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

const REGISTER: &str = "mutation($input: RegisterOrganizationInput!) { registerOrganization(input: $input) {
    accessToken tokenType user { id email role } organization { id slug status } } }";
const LOGIN: &str =
    "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken refreshToken } }";
const ME: &str = "{ me { user { id email fullName role isActive } organization { id name slug } } }";

#[tokio::test]
async fn register_login_and_me_through_graphql() {
    let app = spawn_app().await;
    let input = json!({"input": {"organizationName": "Test Corp", "adminEmail": "admin@test.com",
                                 "adminPassword": PASSWORD, "adminName": "Test Admin"}});
    let r = gql(&app, REGISTER, input, None).await;
    let reg = &r["data"]["registerOrganization"];
    assert_eq!(reg["tokenType"], "bearer");
    assert_eq!(reg["user"]["role"], "ADMIN");
    assert_eq!(reg["organization"]["slug"], "test-corp");
    assert_eq!(reg["organization"]["status"], "ACTIVE");

    let r = gql(&app, LOGIN, json!({"email": "admin@test.com", "password": PASSWORD}), None).await;
    let token = r["data"]["login"]["accessToken"].as_str().unwrap().to_owned();
    let me = gql(&app, ME, json!({}), Some(&token)).await;
    assert_eq!(me["data"]["me"]["organization"]["slug"], "test-corp");
    assert_eq!(me["data"]["me"]["user"]["fullName"], "Test Admin");
    // REST and GraphQL are the same handlers: the REST view agrees.
    let rest: Value = app.me(&token).await.json().await.unwrap();
    assert_eq!(rest["user"]["id"], me["data"]["me"]["user"]["id"]);
}

#[tokio::test]
async fn errors_carry_machine_readable_codes() {
    let app = spawn_app().await;
    app.register("Acme", "admin@acme.com").await;
    let r = gql(&app, LOGIN, json!({"email": "admin@acme.com", "password": "WrongPass123!@#"}), None).await;
    assert_eq!(code(&r), "UNAUTHENTICATED");
    assert_eq!(r["errors"][0]["message"], "Incorrect email or password");
    assert_eq!(code(&gql(&app, ME, json!({}), None).await), "UNAUTHENTICATED");

    let admin = app.login_ok("admin@acme.com", PASSWORD).await;
    let (_, viewer) = app.user_with_role(&admin.access, "viewer@acme.com", "viewer").await;
    let invite = "mutation { inviteUser(email: \"x@acme.com\", fullName: \"X\", role: ANALYST) { invitationToken } }";
    assert_eq!(code(&gql(&app, invite, json!({}), Some(&viewer.access)).await), "FORBIDDEN");
    let ok = gql(&app, invite, json!({}), Some(&admin.access)).await;
    assert!(ok["data"]["inviteUser"]["invitationToken"].is_string(), "{ok}");
    let lock = "mutation($id: ID!) { lockUser(id: $id) { id } }";
    let r = gql(&app, lock, json!({"id": uuid::Uuid::new_v4().to_string()}), Some(&admin.access)).await;
    assert_eq!(code(&r), "NOT_FOUND");
    let weak = json!({"input": {"organizationName": "Weak", "adminEmail": "w@w.com", "adminPassword": "short", "adminName": "W"}});
    assert_eq!(code(&gql(&app, REGISTER, weak, None).await), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_depth_bomb_is_rejected_with_a_clear_error() {
    let app = spawn_app().await;
    let mut query = String::from("{ __schema { types { fields { type { ");
    for _ in 0..15 {
        query.push_str("ofType { ");
    }
    query.push_str("name ");
    query.push_str(&"} ".repeat(15 + 5));
    let r = gql(&app, &query, json!({}), None).await;
    let message = r["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{r}");
    assert!(r["data"].is_null());
}

#[tokio::test]
async fn graphiql_is_served_on_get() {
    // Without a dashboard build GraphiQL's page says how to get it (tests/it/dashboard.rs
    // serves a build).
    let app = spawn_app().await;
    let html = app.get("/graphql", None).await.text().await.unwrap();
    assert!(html.contains("GraphiQL") && html.contains("npm run build"), "{html}");
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let app =
        crate::helpers::spawn_app_with(xdr_graphql::ServerConfig { introspection: false, ..Default::default() }).await;
    let r = app.post("/graphql", json!({"query": "{ __schema { queryType { name } } }"}), None).await;
    let body: Value = r.json().await.unwrap();
    assert!(body["data"]["__schema"].is_null(), "no schema revealed: {body}");
    // The default server does answer it.
    let open = spawn_app().await;
    let body: Value = open
        .post("/graphql", json!({"query": "{ __schema { queryType { name } } }"}), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
}
