//! The shape of the code, checked: operations form no import cycle, only the
//! store names table keys, and every function's `main.rs` is the bootstrap.

use sockhop_tests::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The `ops` modules one file of `ops` refers to (`super::x`, `super::{x, y}`,
/// `crate::ops::x`).
fn ops_references(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for prefix in ["super::", "crate::ops::"] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(0)]
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or_default())
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()],
            };
            found.extend(
                names
                    .into_iter()
                    .filter(|n| modules.contains(*n))
                    .map(str::to_owned),
            );
        }
    }
    found
}

fn ops_graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = root().join("shared/src/ops");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("ops dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .filter(|m| m != "mod")
        .collect();
    files
        .iter()
        .filter(|p| p.file_stem().is_some_and(|s| s != "mod"))
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(p).expect("read");
            let mut refs = ops_references(&text, &modules);
            refs.remove(&name);
            (name, refs)
        })
        .collect()
}

/// A cycle in `graph`, if any, as the path that closes it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn operations_have_no_import_cycle() {
    let graph = ops_graph();
    assert!(graph.len() >= 10, "found the ops modules: {graph:?}");
    // The scanner sees real edges (so an empty graph cannot pass).
    assert!(graph["disconnect"].contains("presence"), "{graph:?}");
    assert!(graph["presence"].contains("deliver"), "{graph:?}");
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let modules: BTreeSet<String> = ["deliver", "presence"].map(str::to_owned).into();
    assert_eq!(
        ops_references(
            "use super::deliver::recipients;\nuse super::{internal, presence};",
            &modules
        ),
        modules
    );
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry"))
    {
        let path = entry.path();
        if path.is_dir() {
            if !path.ends_with("target") && !path.ends_with("node_modules") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_store_names_table_keys() {
    let mut files = Vec::new();
    for dir in ["functions", "infra", "shared/src/ops"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 10);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for needle in [
            "CONN#",
            "MSG#",
            "CHAN#",
            "RXN#",
            "JTI#",
            "store::keys",
            "_PREFIX",
        ] {
            assert!(
                !text.contains(needle),
                "{} names the table's keys ({needle})",
                file.display()
            );
        }
    }
}

#[test]
fn every_function_main_is_the_bootstrap() {
    let dirs = std::fs::read_dir(root().join("functions")).expect("functions");
    let mut seen = 0;
    for dir in dirs.map(|e| e.expect("entry").path()) {
        let main = std::fs::read_to_string(dir.join("src/main.rs")).expect("main.rs");
        assert!(main.lines().count() <= 5, "{}: {main}", dir.display());
        seen += 1;
    }
    assert_eq!(seen, 8);
}

/// Every test docs/conformance.md names as a proof exists: a Rust
/// `path::function` (a `fn` of that name in that file), a Python
/// `path::Class::method`, and a browser test `path › "title"`. A renamed or
/// removed test cannot leave the table claiming a proof that is gone.
#[test]
fn every_test_the_conformance_table_cites_exists() {
    let table =
        std::fs::read_to_string(root().join("docs/conformance.md")).expect("conformance.md");
    let cited = regex::Regex::new(
        r"`([A-Za-z0-9_./-]+\.(?:rs|py|mjs))(?:::([A-Za-z0-9_:]+)| › \x22([^\x22]+)\x22)`",
    )
    .expect("regex");
    let mut checked = 0;
    let mut missing = Vec::new();
    for found in cited.captures_iter(&table) {
        let path = &found[1];
        let Ok(source) = std::fs::read_to_string(root().join(path)) else {
            missing.push(format!("{path} (no such file)"));
            continue;
        };
        let present = match (found.get(2), found.get(3)) {
            (Some(name), _) if path.ends_with(".py") => {
                let parts: Vec<&str> = name.as_str().split("::").collect();
                parts.iter().enumerate().all(|(i, part)| {
                    let keyword = if i + 1 == parts.len() { "def" } else { "class" };
                    source.contains(&format!("{keyword} {part}("))
                        || source.contains(&format!("{keyword} {part}:"))
                })
            }
            (Some(name), _) => {
                let function = name.as_str().rsplit("::").next().unwrap_or_default();
                source.contains(&format!("fn {function}("))
                    || source.contains(&format!("fn {function}<"))
            }
            (None, Some(title)) => source.contains(&format!("\"{}\"", title.as_str())),
            (None, None) => false,
        };
        checked += 1;
        if !present {
            missing.push(found[0].to_owned());
        }
    }
    assert!(
        checked > 100,
        "the table cites {checked} tests: has its format changed?"
    );
    assert!(
        missing.is_empty(),
        "cited but not found:\n  {}",
        missing.join("\n  ")
    );
}
