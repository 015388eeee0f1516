//! HTTP tests of the API server against the real PostgreSQL, one fresh database each.

mod accounts;
mod auth;
mod cost;
mod dashboard;
mod exposure;
mod graphql;
mod helpers;
mod incidents;
mod ingest_http;
mod limits;
mod password_reset;
mod read;
mod response;
mod second_factor;
mod subscriptions;
mod tls;
mod tokens;
