//! What a document may cost, checked before anything runs.
//!
//! Cost is the number of values the server would produce: a scalar costs 1, an object 1 plus its
//! selection, and a list as many times its selection as it may hold — `first` for paged lists
//! (async-graphql's field `complexity`), an estimate for the short unpaged ones. A field that runs
//! its own query once per parent item (`Incident.timeline`, `.actions`, `.events`) adds
//! [`QUERY_COST`] on top, so N+1 fan-out is paid for. Besides the cost, a document may hold at
//! most so many top-level fields and aliases: they bound how much one request fans out however
//! cheap each field is. A refusal carries `extensions.code = QUERY_TOO_COSTLY`; an accepted
//! query answers with `extensions.cost = {requested, limit}` so clients can see their margin.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::context::DEFAULT_PAGE;
use super::scope::RequestScope;

/// The extra cost of a field that runs one more SQL query for every parent item.
pub const QUERY_COST: usize = 10;
/// What an unpaged list (a timeline, an incident's actions, keys, policies) is counted as.
pub const UNPAGED_LIST: usize = 20;

/// A paged list: `first` items (its default when absent), each costing its selection.
pub fn page(first: Option<i32>, default: usize, child: usize) -> usize {
    let items = first.map_or(default, |n| n.max(0) as usize);
    items.saturating_mul(child.max(1))
}

/// A root page (`incidents(first:)`, `events(first:)`, ...).
pub fn root_page(first: Option<i32>, child: usize) -> usize {
    page(first, DEFAULT_PAGE, child)
}

/// A page fetched by its own query for every parent (`Incident.events(first:)`).
pub fn nested_page(first: Option<i32>, default: usize, child: usize) -> usize {
    QUERY_COST.saturating_add(page(first, default, child))
}

/// An unpaged list fetched by its own query for every parent (`Incident.timeline`).
pub fn nested_list(child: usize) -> usize {
    QUERY_COST.saturating_add(UNPAGED_LIST.saturating_mul(child.max(1)))
}

/// An unpaged list at the root (`ingestKeys`, `containmentPolicies`, `activeBlocks`).
pub fn root_list(child: usize) -> usize {
    UNPAGED_LIST.saturating_mul(child.max(1))
}

fn too_costly(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", "QUERY_TOO_COSTLY");
    error.extensions = Some(extensions);
    error
}

/// Installs [`CostCheck`] on every request.
pub struct CostLimits {
    pub max_cost: usize,
    pub max_root_fields: usize,
    pub max_aliases: usize,
}

impl ExtensionFactory for CostLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CostCheck {
            max_cost: self.max_cost,
            max_root_fields: self.max_root_fields,
            max_aliases: self.max_aliases,
            cost: AtomicUsize::new(0),
        })
    }
}

struct CostCheck {
    max_cost: usize,
    max_root_fields: usize,
    max_aliases: usize,
    /// The validated cost, reported in the response's extensions.
    cost: AtomicUsize,
}

#[async_graphql::async_trait::async_trait]
impl Extension for CostCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let shape = Shape::of(&document);
        if shape.root_fields > self.max_root_fields {
            return Err(too_costly(format!(
                "An operation may select at most {} top-level fields; this one selects {}",
                self.max_root_fields, shape.root_fields
            )));
        }
        if shape.aliases > self.max_aliases {
            return Err(too_costly(format!(
                "A document may hold at most {} aliases; this one holds {}",
                self.max_aliases, shape.aliases
            )));
        }
        // A request that writes does not hold one read transaction across its writes (see
        // `RequestScope`): the write path needs connections of its own.
        if shape.has_mutation {
            if let Some(scope) = ctx.data_opt::<Arc<RequestScope>>() {
                scope.do_not_share_transaction();
            }
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.complexity > self.max_cost {
            return Err(vec![too_costly(format!(
                "Query cost {} exceeds the limit of {}: a list costs `first` times its selection; \
                 ask for smaller pages or fewer nested lists",
                result.complexity, self.max_cost
            ))]);
        }
        self.cost.store(result.complexity, Ordering::Relaxed);
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        let response = next.run(ctx, operation_name).await;
        let mut cost = async_graphql::indexmap::IndexMap::new();
        cost.insert(async_graphql::Name::new("requested"), self.cost.load(Ordering::Relaxed).into());
        cost.insert(async_graphql::Name::new("limit"), self.max_cost.into());
        response.extension("cost", async_graphql::Value::Object(cost))
    }
}

/// Counts over a parsed document, fragments inlined.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Shape {
    /// The most top-level fields of any one operation (`__typename` is free).
    pub root_fields: usize,
    /// Aliased fields written in the document.
    pub aliases: usize,
    pub has_mutation: bool,
}

impl Shape {
    pub(crate) fn of(document: &ExecutableDocument) -> Shape {
        let mut shape = Shape::default();
        for (_, operation) in document.operations.iter() {
            let mut seen = HashSet::new();
            let roots = root_fields(document, &operation.node.selection_set.node, &mut seen);
            shape.root_fields = shape.root_fields.max(roots);
            shape.aliases += aliases(&operation.node.selection_set.node);
            shape.has_mutation |= operation.node.ty == OperationType::Mutation;
        }
        for fragment in document.fragments.values() {
            shape.aliases += aliases(&fragment.node.selection_set.node);
        }
        shape
    }
}

/// Top-level fields of a selection, through fragment spreads (each fragment once: a cycle is
/// refused later by validation, it must not loop here).
fn root_fields<'a>(document: &'a ExecutableDocument, set: &'a SelectionSet, seen: &mut HashSet<&'a str>) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.name.node.as_str() != "__typename"),
            Selection::InlineFragment(f) => root_fields(document, &f.node.selection_set.node, seen),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                match document.fragments.get(name) {
                    Some(fragment) if seen.insert(name) => {
                        root_fields(document, &fragment.node.selection_set.node, seen)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}

fn aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.alias.is_some()) + aliases(&f.node.selection_set.node),
            Selection::InlineFragment(f) => aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str) -> Shape {
        Shape::of(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn root_fields_count_through_fragments_once_each() {
        assert_eq!(shape("{ a: me { user { id } } b: me { user { id } } __typename }").root_fields, 2);
        let q = "query { ...F ... on Query { stats { since } } } fragment F on Query { x: incidents { edges { cursor } } y: stats { since } ...F }";
        let s = shape(q);
        assert_eq!(s.root_fields, 3);
        assert_eq!(s.aliases, 2);
        assert!(!s.has_mutation);
        assert!(shape("mutation { logout }").has_mutation);
    }

    #[test]
    fn list_cost_scales_with_first() {
        assert_eq!(root_page(Some(500), 3), 1_500);
        assert_eq!(root_page(None, 3), DEFAULT_PAGE * 3);
        assert_eq!(nested_page(Some(500), 100, 2), QUERY_COST + 1_000);
        assert_eq!(root_page(Some(-5), 3), 0);
    }
}
