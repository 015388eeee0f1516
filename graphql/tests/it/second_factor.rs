//! The TOTP second factor over real HTTP and PostgreSQL: enrolment, the two-step sign-in, a
//! replayed code, the attempt limit, recovery codes, the org policy and an admin's reset.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use xdr_commands::auth::totp::{code_at, step_at};

use xdr_domain::ids::OrgId;

use crate::accounts::audit_entry;
use crate::helpers::{spawn_app, TestApp, Tokens, PASSWORD};

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    let r = app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await;
    r.json().await.unwrap()
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.chars() {
        buffer = (buffer << 5) | ALPHABET.find(c).expect("base32") as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// An enrolled user: the secret and the recovery codes.
struct Enrolled {
    secret: Vec<u8>,
    recovery_codes: Vec<String>,
}

fn current_code(app: &TestApp, secret: &[u8]) -> String {
    code_at(secret, step_at(app.clock.now().timestamp()))
}

async fn enrol(app: &TestApp, access: &str) -> Enrolled {
    let started = gql(app, "mutation { startSecondFactorEnrolment { otpauthUri secret } }", json!({}), access).await;
    let uri =
        started["data"]["startSecondFactorEnrolment"]["otpauthUri"].as_str().unwrap_or_else(|| panic!("{started}"));
    let secret_text = started["data"]["startSecondFactorEnrolment"]["secret"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Mini-XDR:") && uri.contains(&format!("secret={secret_text}")), "{uri}");
    let secret = base32_decode(secret_text);
    assert_eq!(secret.len(), 20);
    let confirm = "mutation($code: String!) { confirmSecondFactorEnrolment(code: $code) }";
    let wrong = gql(app, confirm, json!({"code": "000000x"}), access).await;
    assert_eq!(code(&wrong), "BAD_USER_INPUT", "{wrong}");
    let ok = gql(app, confirm, json!({"code": current_code(app, &secret)}), access).await;
    let codes: Vec<String> = ok["data"]["confirmSecondFactorEnrolment"]
        .as_array()
        .unwrap_or_else(|| panic!("{ok}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    Enrolled { secret, recovery_codes: codes }
}

/// The password step: the MFA pending token.
async fn password_step(app: &TestApp, email: &str) -> String {
    let r = app.login(email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body["access_token"].is_null(), "no token before the second factor: {body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    app.post("/api/auth/login/mfa", json!({"mfa_token": mfa_token, "code": code}), None).await
}

#[tokio::test]
async fn an_enrolled_user_signs_in_with_a_code_once_and_a_replayed_code_is_refused() {
    let app = spawn_app().await;
    let body = app.register("Totp Corp", "admin@totp.example").await;
    let admin = Tokens::from(&body);
    let factor = enrol(&app, &admin.access).await;
    let me = gql(&app, "{ me { secondFactorEnrolled secondFactorRequired } }", json!({}), &admin.access).await;
    assert_eq!(me["data"]["me"]["secondFactorEnrolled"], true, "{me}");
    assert_eq!(me["data"]["me"]["secondFactorRequired"], false);

    // The enrolment's code is spent: the same step cannot sign in.
    let pending = password_step(&app, "admin@totp.example").await;
    let enrolment_code = current_code(&app, &factor.secret);
    assert_eq!(second_step(&app, &pending, &enrolment_code).await.status(), StatusCode::UNAUTHORIZED);

    app.clock.advance(Duration::seconds(30));
    let fresh = current_code(&app, &factor.secret);
    let r = second_step(&app, &pending, &fresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens = Tokens::from(&r.json().await.unwrap());
    assert_eq!(app.me(&tokens.access).await.status(), StatusCode::OK);
    // The pending token is spent with it.
    assert_eq!(second_step(&app, &pending, &fresh).await.status(), StatusCode::UNAUTHORIZED);

    // A new sign-in within the same step: the code that just worked is a replay.
    let again = password_step(&app, "admin@totp.example").await;
    assert_eq!(second_step(&app, &again, &fresh).await.status(), StatusCode::UNAUTHORIZED);
    let replays: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_log WHERE event_type = 'SecondFactorFailed' AND payload->>'reason' = 'replayed_code'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(replays, 2);

    // GraphQL's login says the same, with the pending token in the error.
    let login = app
        .post(
            "/graphql",
            json!({"query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
                   "variables": {"e": "admin@totp.example", "p": PASSWORD}}),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&login), "SECOND_FACTOR_REQUIRED", "{login}");
    let mfa_token = login["errors"][0]["extensions"]["mfaToken"].as_str().unwrap();
    app.clock.advance(Duration::seconds(30));
    let done = app
        .post(
            "/graphql",
            json!({"query": "mutation($t: String!, $c: String!) { loginSecondFactor(mfaToken: $t, code: $c) { accessToken } }",
                   "variables": {"t": mfa_token, "c": current_code(&app, &factor.secret)}}),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(done["data"]["loginSecondFactor"]["accessToken"].is_string(), "{done}");
}

#[tokio::test]
async fn wrong_codes_burn_the_sign_in_at_the_limit_and_a_recovery_code_works_once() {
    let app = spawn_app().await;
    let admin = Tokens::from(&app.register("Guess Corp", "admin@guess.example").await);
    let factor = enrol(&app, &admin.access).await;
    app.clock.advance(Duration::seconds(30));

    let pending = password_step(&app, "admin@guess.example").await;
    for _ in 0..5 {
        assert_eq!(second_step(&app, &pending, "123456").await.status(), StatusCode::UNAUTHORIZED);
    }
    // The right code is refused now: this sign-in is burned, the password must come again.
    let right = current_code(&app, &factor.secret);
    let r = second_step(&app, &pending, &right).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let fresh = password_step(&app, "admin@guess.example").await;
    assert_eq!(second_step(&app, &fresh, &right).await.status(), StatusCode::OK);

    // A recovery code, typed in capitals, works once.
    let recovery = factor.recovery_codes[0].to_uppercase();
    let first = password_step(&app, "admin@guess.example").await;
    assert_eq!(second_step(&app, &first, &recovery).await.status(), StatusCode::OK);
    let second = password_step(&app, "admin@guess.example").await;
    assert_eq!(second_step(&app, &second, &recovery).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(second_step(&app, &second, &factor.recovery_codes[1]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_admin_policy_forces_enrolment_before_anything_else() {
    let app = spawn_app().await;
    let admin = Tokens::from(&app.register("Policy Corp", "admin@policy.example").await);
    let (_, analyst) = app.user_with_role(&admin.access, "ana@policy.example", "analyst").await;
    let set = gql(&app, "mutation { setSecondFactorPolicy(requiredFor: ADMINS) }", json!({}), &admin.access).await;
    assert_eq!(set["data"]["setSecondFactorPolicy"], "ADMINS", "{set}");

    // The admin's very next request: nothing but enrolment (and me, logout).
    let users = gql(&app, "{ users { edges { node { email } } } }", json!({}), &admin.access).await;
    assert_eq!(code(&users), "SECOND_FACTOR_ENROLMENT_REQUIRED", "{users}");
    let invite = app
        .post(
            "/api/auth/invite",
            json!({"email": "x@policy.example", "full_name": "X", "role": "viewer"}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(invite.status(), StatusCode::FORBIDDEN);
    let me = gql(&app, "{ me { secondFactorEnrolled secondFactorRequired } }", json!({}), &admin.access).await;
    assert_eq!(
        (me["data"]["me"]["secondFactorEnrolled"].as_bool(), me["data"]["me"]["secondFactorRequired"].as_bool()),
        (Some(false), Some(true)),
        "{me}"
    );
    // The analyst is not covered by an admins-only policy.
    let theirs = gql(&app, "{ users { edges { node { email } } } }", json!({}), &analyst.access).await;
    assert!(theirs["data"]["users"].is_object(), "{theirs}");

    enrol(&app, &admin.access).await;
    let users = gql(&app, "{ users { edges { node { email } } } }", json!({}), &admin.access).await;
    assert!(users["data"]["users"].is_object(), "{users}");
}

#[tokio::test]
async fn an_admin_resets_a_users_factor_on_the_record_and_the_secret_is_stored_sealed() {
    let app = spawn_app().await;
    let admin = Tokens::from(&app.register("Reset Corp", "admin@reset.example").await);
    let (analyst_id, analyst) = app.user_with_role(&admin.access, "ana@reset.example", "analyst").await;
    let factor = enrol(&app, &analyst.access).await;

    // The secret is in the log only sealed: neither its bytes nor its base32 appear.
    let sealed: String = sqlx::query_scalar(
        "SELECT payload->>'sealed_secret' FROM event_log WHERE event_type = 'SecondFactorEnrolmentStarted'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(sealed.starts_with("v1."), "{sealed}");
    assert!(!sealed.contains(&hex::encode(&factor.secret)));
    assert!(!sealed.to_uppercase().contains(&xdr_commands::auth::totp::base32(&factor.secret)));

    // Another org's admin cannot reset it.
    let other = Tokens::from(&app.register("Other Corp", "admin@other.example").await);
    let reset = "mutation($id: ID!) { resetSecondFactor(userId: $id) }";
    let refused = gql(&app, reset, json!({"id": analyst_id}), &other.access).await;
    assert_eq!(code(&refused), "NOT_FOUND", "{refused}");

    let done = gql(&app, reset, json!({"id": analyst_id}), &admin.access).await;
    assert_eq!(done["data"]["resetSecondFactor"], true, "{done}");
    // The analyst signs in with the password alone again.
    let tokens = app.login_ok("ana@reset.example", PASSWORD).await;
    assert_eq!(app.me(&tokens.access).await.status(), StatusCode::OK);

    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let me: Value = app.me(&admin.access).await.json().await.unwrap();
    let org = OrgId(uuid::Uuid::parse_str(me["organization"]["id"].as_str().unwrap()).unwrap());
    let (actor, details) = audit_entry(&app, org, "SecondFactorReset", &format!("user-{analyst_id}")).await;
    let admin_id =
        app.me(&admin.access).await.json::<Value>().await.unwrap()["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(actor, format!("user:{admin_id}"));
    assert!(details.get("by_user").is_some());
    // The audit log never shows sealed secrets or recovery-code digests.
    let mut tx = xdr_commands::db::begin_org_tx(&app.db.pool, org).await.unwrap();
    let (entries, leaked): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE details::text LIKE '%sealed%' OR details::text LIKE '%recovery_codes%') \
         FROM rm_audit_log WHERE event_type LIKE 'SecondFactor%'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert!(entries >= 3, "enrolment started, enrolled, reset: {entries}");
    assert_eq!(leaked, 0);
}

/// The same capability over REST (the handlers the GraphQL mutations use): an admin requires
/// the factor of everyone, an analyst enrols through `/api/auth/second-factor/…` and signs in
/// in two steps, and the admin resets the analyst's factor; an analyst may neither set the
/// policy nor reset anyone's factor.
#[tokio::test]
async fn enrolment_policy_and_reset_work_over_rest_too() {
    let app = spawn_app().await;
    let admin = Tokens::from(&app.register("Rest Totp Corp", "admin@resttotp.example").await);
    let (analyst_id, analyst) = app.user_with_role(&admin.access, "ana@resttotp.example", "analyst").await;

    let refused =
        app.post("/api/auth/second-factor/policy", json!({"required_for": "everyone"}), Some(&analyst.access));
    assert_eq!(refused.await.status(), StatusCode::FORBIDDEN, "an analyst does not set the policy");
    let set =
        app.post("/api/auth/second-factor/policy", json!({"required_for": "everyone"}), Some(&admin.access)).await;
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(set.json::<Value>().await.unwrap()["required_for"], "everyone");

    // The policy covers the admin too: nothing but enrolment until they have a factor.
    let reset = format!("/api/auth/users/{analyst_id}/second-factor/reset");
    assert_eq!(app.post(&reset, json!({}), Some(&admin.access)).await.status(), StatusCode::FORBIDDEN);
    rest_enrol(&app, &admin.access).await;
    let secret = rest_enrol(&app, &analyst.access).await;

    app.clock.advance(Duration::seconds(30));
    let pending = password_step(&app, "ana@resttotp.example").await;
    let signed_in = second_step(&app, &pending, &current_code(&app, &secret)).await;
    assert_eq!(signed_in.status(), StatusCode::OK);

    assert_eq!(app.post(&reset, json!({}), Some(&analyst.access)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.post(&reset, json!({}), Some(&admin.access)).await.status(), StatusCode::NO_CONTENT);
    let me = gql(&app, "{ me { secondFactorEnrolled } }", json!({}), &analyst.access).await;
    assert_eq!(me["data"]["me"]["secondFactorEnrolled"], false, "{me}");
}

/// Enrol over REST; returns the secret.
async fn rest_enrol(app: &TestApp, access: &str) -> Vec<u8> {
    let started = app.post("/api/auth/second-factor/enrol", json!({}), Some(access)).await;
    assert_eq!(started.status(), StatusCode::OK, "enrolment is what the policy still allows");
    let started: Value = started.json().await.unwrap();
    let secret = base32_decode(started["secret"].as_str().unwrap());
    assert!(started["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"), "{started}");
    let bad = app.post("/api/auth/second-factor/confirm", json!({"code": "12345x"}), Some(access)).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let code = current_code(app, &secret);
    let confirmed = app.post("/api/auth/second-factor/confirm", json!({"code": code}), Some(access)).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(confirmed.json::<Value>().await.unwrap()["recovery_codes"].as_array().map(Vec::len), Some(10));
    secret
}
