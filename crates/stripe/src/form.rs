//! Stripe's request bodies are `application/x-www-form-urlencoded` with bracketed keys
//! for nesting: `metadata[account]=acme`, `line_items[0][price]=price_1`. A flat,
//! ordered list of pairs says exactly what goes on the wire.

/// An ordered list of form fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn push(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// Adds `key=value` when `value` is present.
    pub fn push_opt(self, key: impl Into<String>, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.push(key, v),
            None => self,
        }
    }

    /// Adds `parent[key]=value` for each entry, e.g. metadata.
    pub fn push_map<'a>(
        mut self,
        parent: &str,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        for (k, v) in entries {
            self.pairs.push((format!("{parent}[{k}]"), v.to_owned()));
        }
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_keep_their_order() {
        let f = Form::new()
            .push("mode", "payment")
            .push("line_items[0][price]", "price_1")
            .push_opt("customer", None::<String>)
            .push_map("metadata", [("account", "acme")]);
        assert_eq!(
            f.pairs(),
            &[
                ("mode".into(), "payment".into()),
                ("line_items[0][price]".into(), "price_1".into()),
                ("metadata[account]".into(), "acme".into()),
            ]
        );
    }
}
