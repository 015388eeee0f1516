//! Operator CLI: break-glass organization and user management without the dashboard, through
//! the same command handlers as the API. Every event it causes carries actor `operator`.

use anyhow::Context;
use secrecy::SecretString;
use sqlx::Row;
use std::io::Read;
use std::process::ExitCode;
use xdr_commands::auth::identity::{Principal, RequestContext};
use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
use xdr_commands::EventStore;

use crate::cli::{OrgCommand, UserCommand};
use crate::config::Settings;

async fn service(settings: &Settings) -> anyhow::Result<(IdentityService, sqlx::PgPool)> {
    // Break-glass: as the schema owner, like the other operator tools.
    let pool = crate::database::owner_pool(settings, 4).await?;
    // Tokens are never issued to the operator; a throwaway key keeps the handler whole.
    let tokens = TokenService::new(&SecretString::from(uuid::Uuid::new_v4().simple().to_string().repeat(2)));
    let identity =
        IdentityService::new(EventStore::new(pool.clone()), PasswordHasher::owasp()?, tokens, Clock::system());
    Ok((identity, pool))
}

pub async fn org(settings: &Settings, command: OrgCommand) -> anyhow::Result<ExitCode> {
    let (identity, pool) = service(settings).await?;
    match command {
        OrgCommand::Create(args) => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("Failed to read the admin password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            let r = identity
                .register(
                    &args.name,
                    &args.admin_email,
                    SecretString::from(password),
                    &args.admin_name,
                    &RequestContext::operator(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "organization {} ({}) created; admin {} <{}>",
                r.organization.slug, r.organization.id, r.user.id, r.user.email
            );
        }
        OrgCommand::List => {
            let rows = sqlx::query(
                "SELECT s.slug, s.org_id, COALESCE(h.last_seq, 0) AS events FROM org_slugs s \
                 LEFT JOIN org_heads h ON h.org_id = s.org_id ORDER BY s.slug",
            )
            .fetch_all(&pool)
            .await?;
            println!("{:<32}  {:<36}  EVENTS", "SLUG", "ID");
            for r in rows {
                println!(
                    "{:<32}  {:<36}  {}",
                    r.get::<String, _>("slug"),
                    r.get::<uuid::Uuid, _>("org_id"),
                    r.get::<i64, _>("events")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn user(settings: &Settings, command: UserCommand) -> anyhow::Result<ExitCode> {
    let (identity, pool) = service(settings).await?;
    let ctx = RequestContext::operator();
    let failed = |e: xdr_commands::auth::AuthError| anyhow::anyhow!("{e}");
    match command {
        UserCommand::Invite(args) => {
            let org = xdr_projections::orgs::resolve_org(&pool, &args.org).await?;
            let invited = identity
                .invite(&Principal::operator(org), &args.email, &args.name, &args.role, &ctx)
                .await
                .map_err(failed)?;
            println!("invited {} <{}> as {}", invited.user.id, invited.user.email, args.role);
            println!(
                "invitation token (shown once, valid until {}): {}",
                invited.expires_at.to_rfc3339(),
                invited.invitation_token
            );
        }
        UserCommand::Lock(args) => {
            let org = xdr_projections::orgs::resolve_org(&pool, &args.target.org).await?;
            let user = identity.user_by_email(org, &args.target.email).await.map_err(failed)?;
            identity.lock_user(&Principal::operator(org), user, args.until, &ctx).await.map_err(failed)?;
            println!("locked {}", args.target.email);
        }
        UserCommand::Unlock(args) => {
            let org = xdr_projections::orgs::resolve_org(&pool, &args.org).await?;
            let user = identity.user_by_email(org, &args.email).await.map_err(failed)?;
            identity.unlock_user(&Principal::operator(org), user, &ctx).await.map_err(failed)?;
            println!("unlocked {}", args.email);
        }
        UserCommand::List(args) => {
            let org = xdr_projections::orgs::resolve_org(&pool, &args.org).await?;
            let mut tx = xdr_projections::begin_org_tx(&pool, org).await?;
            let rows = sqlx::query(
                "SELECT email, full_name, role, is_active, invitation_pending, locked_until FROM rm_users \
                 WHERE org_id = $1 ORDER BY email",
            )
            .bind(org.0)
            .fetch_all(&mut *tx)
            .await?;
            println!("{:<36}  {:<24}  {:<9}  STATE", "EMAIL", "NAME", "ROLE");
            for r in rows {
                let state = match (
                    r.get::<bool, _>("invitation_pending"),
                    r.get::<Option<chrono::DateTime<chrono::Utc>>, _>("locked_until"),
                ) {
                    (true, _) => "invited".to_owned(),
                    (_, Some(until)) if until > chrono::Utc::now() => format!("locked until {}", until.to_rfc3339()),
                    _ if r.get::<bool, _>("is_active") => "active".to_owned(),
                    _ => "inactive".to_owned(),
                };
                println!(
                    "{:<36}  {:<24}  {:<9}  {state}",
                    r.get::<String, _>("email"),
                    r.get::<String, _>("full_name"),
                    r.get::<String, _>("role")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
