//! The module graph of `crates/server/src` has no cycles between top-level modules: each
//! depends on the ones below it (`clock`, `net`, `config`, … → `state` → `http` →
//! `app`), so a module can be read, tested and replaced on its own. Read from the
//! sources: `crate::name` references outside test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The graph of the top-level modules of the crate whose sources are `root`.
fn graph_of(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let root = root.to_path_buf();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).expect("under src");
        let top = rel
            .components()
            .next()
            .expect("a component")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let deps = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                deps.insert(name);
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn top_level_modules_depend_on_each_other_without_cycles() {
    let graph = graph();
    assert!(graph.len() > 10, "the sources were read: {graph:?}");
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

#[test]
fn the_shared_state_holds_no_admin_page_types_and_config_no_webhook_types() {
    let graph = graph();
    assert!(!graph["state"].contains("http"), "{:?}", graph["state"]);
    assert!(
        !graph["config"].contains("webhooks"),
        "{:?}",
        graph["config"]
    );
}

/// The same rule for the store crate (`catalog` and `objects` used to import each other;
/// the write-count types now live in `objects`). One known cycle is left: `credits` and
/// `outbox` (a ledger write records its events to the app, and the outbox reads the
/// ledger's levels); any other fails.
#[test]
fn the_store_s_modules_depend_on_each_other_without_cycles() {
    let graph = graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/src"));
    assert!(graph.contains_key("catalog") && graph.contains_key("objects"));
    let known = |c: &Vec<String>| c.iter().all(|m| m == "credits" || m == "outbox");
    let cycles: Vec<Vec<String>> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .filter(|c| !known(c))
        .collect();
    assert!(cycles.is_empty(), "module cycles in sm-store: {cycles:#?}");
}

/// Inside `webhooks`: the credit planners do not import the applier (they share
/// `webhooks::error` instead), so the applier can be read as the one that calls them.
#[test]
fn the_credit_planners_do_not_import_the_applier() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/webhooks/credit");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        assert!(
            !text.contains("webhooks::apply") && !text.contains("super::apply"),
            "{} imports webhooks::apply",
            file.display()
        );
    }
}
