//! `POST /graphql` (queries and mutations) and `GET /graphql` (GraphiQL).

use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::http::GraphiQLSource;
use async_graphql_actix_web::{GraphQLRequest, GraphQLResponse};
use xdr_commands::auth::identity::RequestContext;

use crate::extract::{bearer_token, request_context};
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
    schema.execute(request.into_inner().data(auth).data(state.clone())).await.into()
}

pub async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(GraphiQLSource::build().endpoint("/graphql").finish())
}
