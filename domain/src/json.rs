//! JSON facts shared by the parsers (what a record may be) and the log (what it may store).

use serde_json::Value;

/// Nesting depth of a value: 0 for a scalar, 1 for `[]` or `{}`, and so on.
pub fn depth(value: &Value) -> usize {
    // Iterative, so a hostile value cannot overflow the stack here either.
    let mut deepest = 0;
    let mut pending = vec![(value, 1usize)];
    while let Some((v, level)) = pending.pop() {
        match v {
            Value::Array(items) => pending.extend(items.iter().map(|i| (i, level + 1))),
            Value::Object(map) => pending.extend(map.values().map(|i| (i, level + 1))),
            _ => continue,
        }
        deepest = deepest.max(level);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::depth;
    use serde_json::json;

    #[test]
    fn depth_counts_containers_not_scalars() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
    }
}
