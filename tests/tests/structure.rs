//! The shape of the code, checked: `sockhop-core` has no I/O in its dependency
//! tree, only the adapters and the runtime name AWS, the modules depend
//! downwards with no cycle (and docs/architecture.md shows the graph the code
//! has), operations form no import cycle, only the store names table keys, and
//! every function's `main.rs` is the bootstrap.

use sockhop_tests::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

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
            let mut refs = ops_references(&code_of(&text), &modules);
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
    assert!(graph["disconnect"].contains("membership"), "{graph:?}");
    assert!(graph["membership"].contains("presence"), "{graph:?}");
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
    for dir in ["functions", "infra", "shared/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let store = root().join("shared/src/adapters/dynamodb");
    files.retain(|f| !f.starts_with(&store));
    assert!(files.len() > 10);
    assert!(files
        .iter()
        .any(|f| f.ends_with("shared/src/ops/connect.rs")));
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

// ---------------------------------------------------------------------------------
// Layers: sockhop-core, then sockhop's ports, ops, adapters and runtime
// ---------------------------------------------------------------------------------

/// Crates whose names say they do I/O: none may be in `sockhop-core`'s tree.
const IO_CRATES: [&str; 10] = [
    "aws-", "aws_", "tokio", "hyper", "reqwest", "lambda_", "http", "h2 ", "mio ", "socket2 ",
];

#[test]
fn the_core_crate_has_no_io_in_its_dependency_tree() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "sockhop-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The tree is really there (so an empty output cannot pass).
    for present in ["sockhop-core ", "jsonwebtoken ", "serde_json "] {
        assert!(tree.lines().any(|l| l.starts_with(present)), "{tree}");
    }
    let io: BTreeSet<&str> = tree
        .lines()
        .filter(|line| IO_CRATES.iter().any(|c| line.starts_with(c)))
        .collect();
    assert!(
        io.is_empty(),
        "sockhop-core must do no I/O, yet its tree has:\n  {}",
        io.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// Crates only `shared/src/adapters/` and `shared/src/runtime/` may name.
const AWS_CRATES: [&str; 7] = [
    "aws_sdk_",
    "aws_config",
    "aws_smithy",
    "aws_lambda_events",
    "lambda_runtime",
    "lambda_http",
    "serde_dynamo",
];

#[test]
fn only_adapters_and_the_runtime_name_aws() {
    let mut files = Vec::new();
    rust_files(&root().join("shared/src"), &mut files);
    rust_files(&root().join("core"), &mut files);
    let allowed = [
        root().join("shared/src/adapters"),
        root().join("shared/src/runtime"),
    ];
    let (outside, inside): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|f| !allowed.iter().any(|dir| f.starts_with(dir)));
    let names_aws = |file: &Path| {
        let code = code_of(&std::fs::read_to_string(file).expect("read"));
        AWS_CRATES.into_iter().find(|c| code.contains(c))
    };
    // The scanner sees AWS where it is.
    assert!(inside.iter().filter(|f| names_aws(f).is_some()).count() >= 8);
    assert!(outside.len() > 20);
    for file in outside {
        if let Some(name) = names_aws(&file) {
            panic!(
                "{} names {name}: what talks to AWS belongs in shared/src/adapters/",
                file.display()
            );
        }
    }
}

/// `text` without its comment lines (doc comments included): what the
/// compiler reads as code, near enough for finding module paths.
fn code_of(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index just past the `}` that closes a group opened just before `text`.
fn group_end(text: &str) -> usize {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return at,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The paths a use or path expression names, from just after its `crate::`:
/// `a::b::C` is `[a, b, C]`, and `a::{b, c::D}` both `[a, b]` and `[a, c, D]`.
fn paths_from(text: &str) -> Vec<Vec<String>> {
    let mut segments: Vec<String> = Vec::new();
    let mut rest = text;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group_end(group)];
            let mut items = Vec::new();
            let (mut depth, mut start) = (0, 0);
            for (at, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&inner[start..at]);
                        start = at + 1;
                    }
                    _ => {}
                }
            }
            items.push(&inner[start..]);
            return items
                .into_iter()
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .flat_map(paths_from)
                .map(|tail| [segments.clone(), tail].concat())
                .collect();
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        rest = &rest[ident.len()..];
        segments.push(ident);
        match rest.strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    vec![segments]
}

/// Every path after `prefix` (`crate::`, `sockhop_core::`) in `code`, where
/// `prefix` starts a path (not `mycrate::`).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            !code[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .flat_map(|(at, _)| paths_from(&code[at + prefix.len()..]))
        .collect()
}

/// The modules `sockhop-core` has (each file's top module).
const CORE_MODULES: [&str; 9] = [
    "claims", "clock", "error", "ids", "names", "pattern", "protocol", "schedule", "token",
];

/// The unit of `sockhop` a path from its root names: `core` for
/// `sockhop-core`'s modules (re-exported at the root), `adapters::x` and
/// `runtime::x` for those folders' modules (and the root re-exports of
/// `store`, `app`, `driver`, `lambda`), else the top module.
fn shared_unit(path: &[String]) -> Option<String> {
    let first = path.first()?.as_str();
    Some(match (first, path.get(1)) {
        ("adapters" | "runtime", Some(second))
            if second.chars().all(|c| c.is_lowercase() || c == '_') =>
        {
            format!("{first}::{second}")
        }
        ("app" | "driver" | "lambda", _) => format!("runtime::{first}"),
        ("App", _) => "runtime::app".to_owned(),
        (m, _) if CORE_MODULES.contains(&m) => "core".to_owned(),
        (m, _) => m.to_owned(),
    })
}

/// The unit a file of `shared/src` belongs to (None: `lib.rs` and the folders'
/// `mod.rs`, which only declare modules).
fn unit_of_shared_file(relative: &Path) -> Option<String> {
    let parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["lib"] | ["adapters" | "runtime", "mod"] => None,
        [folder @ ("adapters" | "runtime"), module, ..] => Some(format!("{folder}::{module}")),
        [top, ..] => Some((*top).to_owned()),
        [] => None,
    }
}

/// Each unit of `sockhop` (its top modules, `ops` as one, each module of
/// `adapters/` and `runtime/`) and the units it uses: `crate::` paths, and
/// `core` for `sockhop_core::`.
fn shared_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("shared/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under shared/src");
        let Some(unit) = unit_of_shared_file(relative) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).expect("read"));
        let mut uses: BTreeSet<String> = paths_after(&code, "crate::")
            .iter()
            .filter_map(|path| shared_unit(path))
            .collect();
        if !paths_after(&code, "sockhop_core::").is_empty() {
            uses.insert("core".to_owned());
        }
        uses.remove(&unit);
        graph.entry(unit).or_default().extend(uses);
    }
    graph
}

/// Each module of `sockhop-core` and the modules it uses.
fn core_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under core/src");
        let Some(unit) = relative
            .with_extension("")
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|u| u != "lib")
        else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).expect("read"));
        let mut uses: BTreeSet<String> = paths_after(&code, "crate::")
            .iter()
            .filter_map(|path| path.first().cloned())
            .filter(|m| CORE_MODULES.contains(&m.as_str()))
            .collect();
        uses.remove(&unit);
        graph.entry(unit).or_default().extend(uses);
    }
    graph
}

/// Where a unit of `sockhop` sits, for the order of the picture: ports and
/// their rules, then ops, adapters, runtime.
fn layer_of(unit: &str) -> u8 {
    match unit {
        "ops" => 1,
        u if u.starts_with("adapters::") => 2,
        u if u.starts_with("runtime::") => 3,
        _ => 0,
    }
}

/// Columns a line of the picture stays within (unless one name is longer).
const GRAPH_WIDTH: usize = 88;

/// One line per node: the node, padded, then what it uses (`-`: nothing),
/// continued on lines of their own under the first when they are many.
fn render(out: &mut String, nodes: &[(&String, &BTreeSet<String>)]) {
    let width = nodes.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let indent = " ".repeat(2 + width + 5);
    for (node, uses) in nodes {
        let mut line = format!("  {node:width$}  -> ");
        if uses.is_empty() {
            line.push('-');
        }
        let last = uses.len().saturating_sub(1);
        for (i, used) in uses.iter().enumerate() {
            let item = if i == last {
                used.clone()
            } else {
                format!("{used},")
            };
            let fresh = line.ends_with("-> ") || line == indent;
            if !fresh && line.len() + 1 + item.len() > GRAPH_WIDTH {
                out.push_str(&line);
                out.push('\n');
                line = indent.clone();
            } else if !fresh {
                line.push(' ');
            }
            line.push_str(&item);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// The module graph as docs/architecture.md shows it.
fn module_graph_text() -> String {
    let mut out = String::new();
    out.push_str("sockhop-core (core/src; no I/O): module -> the modules it uses\n");
    let core = core_graph();
    render(&mut out, &core.iter().collect::<Vec<_>>());
    out.push_str(
        "\nsockhop (shared/src): module -> what it uses (core = sockhop-core);\n\
         ports and their rules, then ops, adapters/, runtime/\n",
    );
    let shared = shared_graph();
    let mut units: Vec<_> = shared.iter().collect();
    units.sort_by_key(|(unit, _)| (layer_of(unit), (*unit).clone()));
    render(&mut out, &units);
    out.push_str("\nops (shared/src/ops): operation -> the operations it uses\n");
    let ops = ops_graph();
    render(&mut out, &ops.iter().collect::<Vec<_>>());
    out
}

const GRAPH_BEGIN: &str = "<!-- module graph: generated by tests/tests/structure.rs -->";
const GRAPH_END: &str = "<!-- end module graph -->";

#[test]
fn the_architecture_doc_shows_the_module_graph_the_code_has() {
    let path = root().join("docs/architecture.md");
    let doc = std::fs::read_to_string(&path).expect("architecture.md");
    let block = format!("\n```text\n{}```\n", module_graph_text());
    let start = doc.find(GRAPH_BEGIN).expect("the begin marker") + GRAPH_BEGIN.len();
    let end = start + doc[start..].find(GRAPH_END).expect("the end marker");
    if doc[start..end] == block {
        return;
    }
    if std::env::var("SOCKHOP_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let updated = format!("{}{block}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).expect("write architecture.md");
        return;
    }
    panic!(
        "docs/architecture.md's module graph is not the code's; between its markers it \
         should read:\n{block}\n(SOCKHOP_UPDATE_DOCS=1 cargo test -p sockhop-tests --test \
         structure rewrites it)"
    );
}

#[test]
fn the_layers_depend_downwards() {
    let graph = shared_graph();
    // The scanner sees real edges (so an empty graph cannot pass).
    assert!(graph["runtime::driver"].contains("ops"), "{graph:#?}");
    assert!(graph["ops"].contains("store"), "{graph:#?}");
    assert!(graph["adapters::sqs"].contains("queue"), "{graph:#?}");
    assert!(graph["ops"].contains("core"), "{graph:#?}");
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
    for (unit, uses) in &graph {
        // Operations and the ports see the world through ports only: no
        // adapter is named below the runtime (which builds the app).
        if layer_of(unit) <= 1 {
            let adapters: Vec<_> = uses
                .iter()
                .filter(|u| u.starts_with("adapters::"))
                .collect();
            assert!(adapters.is_empty(), "{unit} uses {adapters:?}");
        }
        // Adapters implement ports; they never call back into operations or
        // the runtime.
        if unit.starts_with("adapters::") {
            let above: Vec<_> = uses
                .iter()
                .filter(|u| *u == "ops" || u.starts_with("runtime::"))
                .collect();
            assert!(above.is_empty(), "{unit} uses {above:?}");
        }
        // The driver and the bootstrap sit above everything else.
        if !unit.starts_with("runtime::") {
            for top in ["runtime::driver", "runtime::lambda"] {
                assert!(!uses.contains(top), "{unit} uses {top}");
            }
        }
    }
    let core = core_graph();
    assert!(core["claims"].contains("pattern"), "{core:#?}");
    assert_eq!(find_cycle(&core), None, "{core:#?}");
}

#[test]
fn the_path_scanner_reads_groups_and_nested_paths() {
    assert_eq!(
        paths_after(
            "use crate::adapters::{sqs::SqsQueue, dynamodb::{DynamoStore, StoreError}};\nlet x = mycrate::a;",
            "crate::"
        ),
        vec![
            vec!["adapters", "sqs", "SqsQueue"],
            vec!["adapters", "dynamodb", "DynamoStore"],
            vec!["adapters", "dynamodb", "StoreError"],
        ]
    );
    let unit = |p: &str| shared_unit(&p.split("::").map(str::to_owned).collect::<Vec<_>>());
    assert_eq!(unit("store::Store").as_deref(), Some("store"));
    assert_eq!(
        unit("adapters::sqs::SqsQueue").as_deref(),
        Some("adapters::sqs")
    );
    assert_eq!(unit("claims::Claims").as_deref(), Some("core"));
    assert_eq!(unit("driver").as_deref(), Some("runtime::driver"));
    assert_eq!(unit("queue::Enqueue").as_deref(), Some("queue"));
    assert_eq!(
        unit_of_shared_file(Path::new("adapters/dynamodb/keys.rs")).as_deref(),
        Some("adapters::dynamodb")
    );
    assert_eq!(
        unit_of_shared_file(Path::new("pubsub/batch.rs")).as_deref(),
        Some("pubsub")
    );
    assert_eq!(unit_of_shared_file(Path::new("adapters/mod.rs")), None);
    assert_eq!(code_of("a\n  /// crate::x\nb"), "a\nb");
}
