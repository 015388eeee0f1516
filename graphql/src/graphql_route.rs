//! `POST /graphql` (queries and mutations) and `GET /graphql` (GraphiQL).

use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql_actix_web::{GraphQLRequest, GraphQLResponse, GraphQLSubscription};
use xdr_commands::auth::identity::RequestContext;

use crate::extract::{bearer_token, request_context};
use crate::metrics::Metrics;
use crate::schema::live::ConnectionSubscriptions;
use crate::schema::scope::RequestScope;
use crate::schema::XdrSchema;
use crate::startup::AppState;

/// What a resolver may know about the HTTP request: the raw bearer token (verified lazily by
/// resolvers that need a caller) and the client address for event metadata.
#[derive(Clone)]
pub struct RequestAuth {
    pub token: Option<String>,
    pub context: RequestContext,
}

pub async fn graphql(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<XdrSchema>,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let auth = RequestAuth {
        token: bearer_token(&req).map(str::to_owned),
        context: request_context(&req, state.config.trust_forwarded_for),
    };
    let timeout = state.config.query_timeout;
    // One caller verification and one read transaction for the whole request.
    let scope = std::sync::Arc::new(RequestScope::new());
    let execution = schema.execute(request.into_inner().data(auth).data(state.clone()).data(scope.clone()));
    let outcome = tokio::time::timeout(timeout, execution).await;
    scope.finish().await;
    match outcome {
        Ok(response) => {
            if response.errors.iter().any(|e| is_code(e, "QUERY_TOO_COSTLY")) {
                Metrics::inc(&state.metrics.graphql_refused_cost);
            }
            response.into()
        }
        Err(_) => {
            let mut error = async_graphql::ServerError::new(format!("Query timed out after {timeout:?}"), None);
            error.extensions = Some({
                let mut ext = async_graphql::ErrorExtensionValues::default();
                ext.set("code", "TIMEOUT");
                ext
            });
            async_graphql::Response::from_errors(vec![error]).into()
        }
    }
}

fn is_code(error: &async_graphql::ServerError, code: &str) -> bool {
    error.extensions.as_ref().and_then(|x| x.get("code")) == Some(&async_graphql::Value::from(code))
}

/// `GET /graphql`: a WebSocket upgrade (`graphql-transport-ws`) runs subscriptions; anything
/// else gets GraphiQL, bundled with the dashboard (behind the introspection switch).
pub async fn graphiql_or_subscription(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    schema: web::Data<XdrSchema>,
) -> actix_web::Result<HttpResponse> {
    let upgrade = req.headers().get("upgrade").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Ok(crate::routes::dashboard::graphiql_page(&req, &state).await);
    }
    let context = request_context(&req, state.config.trust_forwarded_for);
    let mut data = async_graphql::Data::default();
    data.insert(state.clone());
    GraphQLSubscription::new(XdrSchema::clone(&schema))
        .with_data(data)
        .on_connection_init(move |init: serde_json::Value| {
            // Browsers cannot set headers on a WebSocket: the token comes in connection_init.
            let token = ["Authorization", "authorization", "authToken"]
                .iter()
                .find_map(|k| init.get(*k).and_then(|v| v.as_str()))
                .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim().to_owned());
            let context = context.clone();
            async move {
                let mut data = async_graphql::Data::default();
                data.insert(RequestAuth { token, context });
                // Counts this socket's open subscriptions against its cap.
                data.insert(std::sync::Arc::new(ConnectionSubscriptions::default()));
                Ok(data)
            }
        })
        .start(&req, payload)
}
