//! The committed SDL is the schema: a change to one without the other fails CI.

#[test]
fn committed_sdl_matches_the_schema() {
    let committed = include_str!("../../schema.graphql");
    let current = super::sdl();
    assert!(
        committed == current,
        "graphql/schema.graphql is stale: run `mini-xdr schema > graphql/schema.graphql` and commit it"
    );
}
