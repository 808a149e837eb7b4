//! Objects of one kind in creation order, listed newest first with Stripe's cursors.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

#[derive(Debug, Default)]
pub struct Collection {
    seq: u64,
    by_seq: BTreeMap<u64, String>,
    objects: HashMap<String, (u64, Value)>,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub data: Vec<Value>,
    pub has_more: bool,
}

impl Collection {
    pub fn insert(&mut self, id: &str, value: Value) {
        if let Some((_, slot)) = self.objects.get_mut(id) {
            *slot = value;
            return;
        }
        self.seq += 1;
        self.by_seq.insert(self.seq, id.to_owned());
        self.objects.insert(id.to_owned(), (self.seq, value));
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.objects.get(id).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.objects.get_mut(id).map(|(_, v)| v)
    }

    pub fn remove(&mut self, id: &str) -> Option<Value> {
        let (seq, v) = self.objects.remove(id)?;
        self.by_seq.remove(&seq);
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.by_seq.values().filter_map(|id| self.get(id))
    }

    /// Newest first. `starting_after` pages towards older objects, `ending_before`
    /// towards newer ones; an unknown cursor is the caller's error to report.
    pub fn list(
        &self,
        filter: impl Fn(&Value) -> bool,
        limit: usize,
        starting_after: Option<&str>,
        ending_before: Option<&str>,
    ) -> Result<Page, String> {
        let seq_of = |id: &str| {
            self.objects
                .get(id)
                .map(|(s, _)| *s)
                .ok_or_else(|| id.to_owned())
        };
        let mut out = Vec::with_capacity(limit + 1);
        if let Some(before) = ending_before {
            let seq = seq_of(before)?;
            for id in self.by_seq.range(seq + 1..).map(|(_, id)| id) {
                let v = self.get(id).expect("indexed");
                if filter(v) {
                    out.push(v.clone());
                    if out.len() > limit {
                        break;
                    }
                }
            }
            let has_more = out.len() > limit;
            out.truncate(limit);
            out.reverse();
            return Ok(Page {
                data: out,
                has_more,
            });
        }
        let upper = match starting_after {
            Some(after) => seq_of(after)?,
            None => u64::MAX,
        };
        for id in self.by_seq.range(..upper).rev().map(|(_, id)| id) {
            let v = self.get(id).expect("indexed");
            if filter(v) {
                out.push(v.clone());
                if out.len() > limit {
                    break;
                }
            }
        }
        let has_more = out.len() > limit;
        out.truncate(limit);
        Ok(Page {
            data: out,
            has_more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newest_first_with_both_cursors() {
        let mut c = Collection::default();
        for i in 1..=5 {
            c.insert(&format!("o{i}"), json!({"id": format!("o{i}")}));
        }
        let ids = |p: &Page| {
            p.data
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let p = c.list(|_| true, 2, None, None).unwrap();
        assert_eq!(
            (ids(&p), p.has_more),
            (vec!["o5".into(), "o4".into()], true)
        );
        let p = c.list(|_| true, 2, Some("o4"), None).unwrap();
        assert_eq!(
            (ids(&p), p.has_more),
            (vec!["o3".into(), "o2".into()], true)
        );
        let p = c.list(|_| true, 2, Some("o2"), None).unwrap();
        assert_eq!((ids(&p), p.has_more), (vec!["o1".into()], false));
        let p = c.list(|_| true, 2, None, Some("o2")).unwrap();
        assert_eq!(
            (ids(&p), p.has_more),
            (vec!["o4".into(), "o3".into()], true)
        );
        assert!(c.list(|_| true, 2, Some("nope"), None).is_err());
    }
}
