//! Static checks of `template.yaml` against the code it deploys. No DynamoDB, no AWS:
//! it reads the template, the workspace's Cargo.toml files and the Rust sources.
//!
//! - every function: provided.al2023, arm64, built by cargo-lambda from a `[[bin]]`
//!   that exists in the workspace;
//! - the WebSocket routes reach the right functions, each with an invoke permission;
//! - IAM covers the code: the DynamoDB actions `shared/src/store` calls are granted to
//!   every function (any function can reach any store method through `ops`), scoped to
//!   the table; `execute-api:ManageConnections`, scoped to this WebSocket API, is granted
//!   to every function whose code can reach `app.gateway` — and not to the others.
//!
//! CloudFormation short tags (`!Ref`, `!Sub`, `!GetAtt`) parse as YAML tagged values;
//! the long forms (`Ref:`, `Fn::Sub:`) are understood too.

use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ====================================================================== inputs

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `template.yaml`, or the file `SOCKHOP_TEMPLATE` names (for trying mutations).
fn template() -> Value {
    let path = std::env::var_os("SOCKHOP_TEMPLATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("template.yaml"));
    serde_yaml::from_str(&read(&path)).unwrap_or_else(|e| panic!("template.yaml: {e}"))
}

fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

// ====================================================================== template helpers

/// Every function of the template: logical id → binary name the brief fixes.
const FUNCTIONS: [(&str, &str); 8] = [
    ("ConnectFunction", "connect"),
    ("DisconnectFunction", "disconnect"),
    ("DefaultFunction", "default"),
    ("DeliverFunction", "deliver"),
    ("HttpFunction", "http"),
    ("PublishFunction", "publish"),
    ("StreamFunction", "stream"),
    ("SweeperFunction", "sweeper"),
];

/// Functions that send frames by design, whatever the static scan below finds.
const ALWAYS_POST: [&str; 6] = [
    "DefaultFunction",
    "DeliverFunction",
    "HttpFunction",
    "PublishFunction",
    "StreamFunction",
    "SweeperFunction",
];

/// Functions that queue messages for delivery (client and server publishes).
const PUBLISHERS: [&str; 3] = ["DefaultFunction", "HttpFunction", "PublishFunction"];
/// Functions whose effects include backend events: the stream (connections,
/// subscriptions, counts, expiries), deliver (messages, storage, members), and
/// the publishers (reactions).
const EMITTERS: [&str; 5] = [
    "DefaultFunction",
    "HttpFunction",
    "PublishFunction",
    "DeliverFunction",
    "StreamFunction",
];

fn resources(t: &Value) -> &Mapping {
    t.get("Resources")
        .and_then(Value::as_mapping)
        .expect("template has Resources")
}

fn resources_of_type<'a>(t: &'a Value, ty: &str) -> Vec<(String, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
        .map(|(k, r)| (k.as_str().expect("string logical id").to_owned(), r))
        .collect()
}

fn prop<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    resource.get("Properties").and_then(|p| p.get(name))
}

/// A function property, falling back to `Globals.Function`.
fn function_prop<'a>(t: &'a Value, resource: &'a Value, name: &str) -> Option<&'a Value> {
    prop(resource, name).or_else(|| {
        t.get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get(name))
    })
}

/// An intrinsic function as (name without `Fn::`/`!`, argument): `!Ref X`, `Ref: X`,
/// `!Sub s`, `Fn::Sub: s`, ...
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            Some((tag.trim_start_matches('!').to_owned(), &tagged.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            if k == "Ref" {
                Some(("Ref".into(), v))
            } else {
                k.strip_prefix("Fn::").map(|name| (name.to_owned(), v))
            }
        }
        _ => None,
    }
}

/// `!Ref X` → X.
fn ref_target(v: &Value) -> Option<String> {
    match intrinsic(v)? {
        (name, Value::String(s)) if name == "Ref" => Some(s.clone()),
        _ => None,
    }
}

/// `!GetAtt X.Attr` or `!GetAtt [X, Attr]` → (X, Attr).
fn get_att(v: &Value) -> Option<(String, String)> {
    let (name, arg) = intrinsic(v)?;
    if name != "GetAtt" {
        return None;
    }
    match arg {
        Value::String(s) => {
            let (r, a) = s.split_once('.')?;
            Some((r.to_owned(), a.to_owned()))
        }
        Value::Sequence(seq) if seq.len() == 2 => {
            Some((seq[0].as_str()?.to_owned(), seq[1].as_str()?.to_owned()))
        }
        _ => None,
    }
}

/// `!Sub "..."` or `!Sub ["...", {...}]` → the format string.
fn sub_string(v: &Value) -> Option<String> {
    let (name, arg) = intrinsic(v)?;
    if name != "Sub" {
        return None;
    }
    match arg {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(seq) => seq.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(seq)) => seq
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn show(v: &Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .replace('\n', " ")
}

// ====================================================================== Cargo.toml reading

/// `members = [ "a", "b" ]` of the root Cargo.toml (plain line parsing: no TOML crate).
fn workspace_members() -> Vec<String> {
    let text = read(&root().join("Cargo.toml"));
    let start = text
        .find("members")
        .expect("Cargo.toml has a [workspace] members list");
    let open = start + text[start..].find('[').expect("members = [");
    let close = open + text[open..].find(']').expect("members list closes");
    text[open + 1..close]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The value of `key = "value"` on one line, or None.
fn toml_string(line: &str, key: &str) -> Option<String> {
    let (k, v) = line.split_once('=')?;
    if k.trim() != key {
        return None;
    }
    let v = v.trim();
    let v = v.split('#').next().unwrap_or(v).trim(); // no '#' inside our names
    Some(v.strip_prefix('"')?.strip_suffix('"')?.to_owned())
}

/// Every binary of the workspace: bin name → (member dir, source path). `[[bin]]`
/// tables are read line by line; a member without `[[bin]]` but with src/main.rs gets
/// its package name, as cargo does.
fn workspace_bins() -> BTreeMap<String, (String, PathBuf)> {
    let mut bins = BTreeMap::new();
    for member in workspace_members() {
        let dir = root().join(&member);
        let text = read(&dir.join("Cargo.toml"));
        let mut section = String::new();
        let mut package_name = None;
        let mut current: Option<(Option<String>, Option<String>)> = None;
        let mut declared = Vec::new();
        for raw in text.lines() {
            let line = raw.trim();
            if line.starts_with('[') {
                if let Some(bin) = current.take() {
                    declared.push(bin);
                }
                section = line.to_owned();
                if section == "[[bin]]" {
                    current = Some((None, None));
                }
                continue;
            }
            if section == "[package]" {
                if let Some(n) = toml_string(line, "name") {
                    package_name = Some(n);
                }
            }
            if let Some((name, path)) = current.as_mut() {
                if let Some(n) = toml_string(line, "name") {
                    *name = Some(n);
                }
                if let Some(p) = toml_string(line, "path") {
                    *path = Some(p);
                }
            }
        }
        if let Some(bin) = current.take() {
            declared.push(bin);
        }
        for (name, path) in &declared {
            let name = name
                .clone()
                .unwrap_or_else(|| panic!("{member}/Cargo.toml: a [[bin]] without a name"));
            let path = dir.join(path.as_deref().unwrap_or("src/main.rs"));
            bins.insert(name, (member.clone(), path));
        }
        if declared.is_empty() && dir.join("src/main.rs").is_file() {
            if let Some(name) = package_name {
                bins.insert(name, (member.clone(), dir.join("src/main.rs")));
            }
        }
    }
    bins
}

// ====================================================================== Rust source reading

/// Rust source with comments, string and char literals blanked out (so braces and
/// words inside them count for nothing), lifetimes kept.
fn strip_rust(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
            continue;
        }
        // raw strings: r"..", r#".."#, br#".."#
        let prev_ident = i > 0 && ident(b[i - 1]);
        if !prev_ident && (c == b'r' || (c == b'b' && b.get(i + 1) == Some(&b'r'))) {
            let mut j = if c == b'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&b'"') {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let mut k = j + 1;
                while k < b.len() && !b[k..].starts_with(&close) {
                    k += 1;
                }
                i = (k + close.len()).min(b.len());
                out.push_str("\"\"");
                continue;
            }
        }
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
            continue;
        }
        if c == b'\'' {
            if b.get(i + 1) == Some(&b'\\') {
                let mut k = i + 2;
                while k < b.len() && b[k] != b'\'' {
                    k += 1;
                }
                i = k + 1;
                out.push_str("' '");
                continue;
            }
            // a one-character literal, possibly multi-byte
            if let Some(ch) = src[i + 1..].chars().next() {
                let after = i + 1 + ch.len_utf8();
                if b.get(after) == Some(&b'\'') {
                    i = after + 1;
                    out.push_str("' '");
                    continue;
                }
            }
        }
        // copy one char (may be multi-byte)
        let ch = src[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(char),
}

fn tokens(stripped: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let chars: Vec<char> = stripped.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

fn is_punct(t: Option<&Tok>, c: char) -> bool {
    matches!(t, Some(Tok::Punct(p)) if *p == c)
}

fn is_ident(t: Option<&Tok>, s: &str) -> bool {
    matches!(t, Some(Tok::Ident(i)) if i == s)
}

/// Index just past the `open`..`close` group starting at `at` (which holds `open`).
fn skip_group(toks: &[Tok], at: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = at;
    while i < toks.len() {
        if is_punct(toks.get(i), open) {
            depth += 1;
        } else if is_punct(toks.get(i), close) {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    toks.len()
}

/// Drops `use ...;` declarations and every `#[cfg(test)]` item (test code is not
/// deployed), so neither counts as a reference.
fn without_tests_and_uses(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let cfg_test = is_punct(toks.get(i), '#')
            && is_punct(toks.get(i + 1), '[')
            && is_ident(toks.get(i + 2), "cfg")
            && is_punct(toks.get(i + 3), '(')
            && is_ident(toks.get(i + 4), "test")
            && is_punct(toks.get(i + 5), ')')
            && is_punct(toks.get(i + 6), ']');
        if cfg_test {
            // skip the attribute and the item it applies to: up to its `;` or its
            // braced body, whichever comes first
            let mut j = i + 7;
            while j < toks.len() {
                if is_punct(toks.get(j), ';') {
                    j += 1;
                    break;
                }
                if is_punct(toks.get(j), '{') {
                    j = skip_group(&toks, j, '{', '}');
                    break;
                }
                j += 1;
            }
            i = j;
            continue;
        }
        if is_ident(toks.get(i), "use") {
            while i < toks.len() && !is_punct(toks.get(i), ';') {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(toks[i].clone());
        i += 1;
    }
    out
}

/// One `fn` with a body somewhere under shared/src.
#[derive(Debug)]
struct FnDef {
    name: String,
    file: PathBuf,
    /// Takes `self` (called as `.name(...)`).
    method: bool,
    /// Can hold the management client: its signature names `App` or `Gateway`, or it
    /// is a method of one of them or of a type with such a field. Only such fns can post (no global state; pure
    /// decision code never sees an `App`), so only they are followed.
    io: bool,
    body: Vec<Tok>,
}

/// The type an `impl` block at `at` is for: `impl X`, `impl<T> X<T>`, `impl Tr for X`.
fn impl_type(toks: &[Tok], at: usize, open: usize) -> Option<String> {
    let header = &toks[at + 1..open];
    let start = match header.iter().position(|t| *t == Tok::Ident("for".into())) {
        Some(f) => f + 1,
        None if is_punct(header.first(), '<') => skip_group(header, 0, '<', '>'),
        None => 0,
    };
    header[start..].iter().find_map(|t| match t {
        Tok::Ident(i) if i != "dyn" && i != "crate" && i != "super" => Some(i.clone()),
        _ => None,
    })
}

fn fn_defs(file: &Path) -> Vec<FnDef> {
    let toks = without_tests_and_uses(tokens(&strip_rust(&read(file))));
    // impl blocks: (body start, body end, type)
    let mut impls: Vec<(usize, usize, String)> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if *t == Tok::Ident("impl".into()) {
            let Some(open) = (i + 1..toks.len())
                .find(|&k| is_punct(toks.get(k), '{') || is_punct(toks.get(k), ';'))
            else {
                continue;
            };
            if is_punct(toks.get(open), '{') {
                if let Some(ty) = impl_type(&toks, i, open) {
                    impls.push((open, skip_group(&toks, open, '{', '}'), ty));
                }
            }
        }
    }
    // Types holding an App or a Gateway in a field: their methods can post.
    let mut holders: Vec<String> = vec!["App".into(), "Gateway".into()];
    for (i, t) in toks.iter().enumerate() {
        if *t == Tok::Ident("struct".into()) {
            let Some(Tok::Ident(name)) = toks.get(i + 1) else {
                continue;
            };
            let Some(open) = (i + 2..toks.len())
                .find(|&k| is_punct(toks.get(k), '{') || is_punct(toks.get(k), ';'))
            else {
                continue;
            };
            if is_punct(toks.get(open), '{') {
                let end = skip_group(&toks, open, '{', '}');
                if toks[open..end]
                    .iter()
                    .any(|t| matches!(t, Tok::Ident(x) if x == "App" || x == "Gateway"))
                {
                    holders.push(name.clone());
                }
            }
        }
    }
    let mut defs = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if is_ident(toks.get(i), "fn") {
            if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                // parameters
                let mut p = i + 2;
                while p < toks.len() && !is_punct(toks.get(p), '(') {
                    p += 1;
                }
                let params_end = skip_group(&toks, p, '(', ')');
                let first_param_end = (p + 1..params_end)
                    .find(|&k| is_punct(toks.get(k), ','))
                    .unwrap_or(params_end);
                let method = (p + 1..first_param_end).any(|k| is_ident(toks.get(k), "self"));
                // body: the first `{` before any `;`
                let mut b = params_end;
                while b < toks.len() && !is_punct(toks.get(b), '{') && !is_punct(toks.get(b), ';') {
                    b += 1;
                }
                if is_punct(toks.get(b), '{') {
                    let end = skip_group(&toks, b, '{', '}');
                    let owner = impls
                        .iter()
                        .filter(|(s, e, _)| *s < i && i < *e)
                        .max_by_key(|(s, _, _)| *s)
                        .map(|(_, _, ty)| ty.as_str());
                    let io = owner.is_some_and(|o| holders.iter().any(|h| h == o))
                        || toks[i..b]
                            .iter()
                            .any(|t| matches!(t, Tok::Ident(x) if x == "App" || x == "Gateway"));
                    defs.push(FnDef {
                        name: name.clone(),
                        file: file.to_path_buf(),
                        method,
                        io,
                        body: toks[b..end].to_vec(),
                    });
                }
                i += 2;
                continue;
            }
        }
        i += 1;
    }
    defs
}

/// The module path segment a file answers to: `ops/connect.rs` → `connect`,
/// `ops/mod.rs` → `ops`.
fn module_name(file: &Path) -> String {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    if stem == "mod" {
        file.parent()
            .and_then(Path::file_name)
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    } else {
        stem.into_owned()
    }
}

/// Functions a token stream refers to, by name, over-approximating: a method call
/// `.x(` may be any method named x; `Type::x` any fn named x; `module::x` the fns
/// named x in a file of that module (paths outside the crate resolve to nothing);
/// a bare `x` a free fn named x in this file, else in any file (an import).
fn references<'a>(
    body: &[Tok],
    here: Option<&Path>,
    defs: &'a BTreeMap<String, Vec<FnDef>>,
) -> Vec<&'a FnDef> {
    let mut out: Vec<&FnDef> = Vec::new();
    for (i, t) in body.iter().enumerate() {
        let Tok::Ident(name) = t else { continue };
        let Some(candidates) = defs.get(name) else {
            continue;
        };
        let after_dot = i > 0 && is_punct(body.get(i - 1), '.');
        let qualifier = (i >= 3
            && is_punct(body.get(i - 1), ':')
            && is_punct(body.get(i - 2), ':'))
        .then(|| match body.get(i - 3) {
            Some(Tok::Ident(q)) => Some(q.clone()),
            _ => None, // `<T as Trait>::x` and the like
        });
        let called = is_punct(body.get(i + 1), '(')
            || (is_punct(body.get(i + 1), ':') && is_punct(body.get(i + 3), '<'));
        if after_dot {
            if called {
                out.extend(candidates.iter().filter(|d| d.method));
            }
            continue;
        }
        match qualifier {
            Some(Some(q)) if q.starts_with(|c: char| c.is_uppercase()) => {
                out.extend(candidates.iter());
            }
            Some(Some(q)) if q == "super" => out.extend(candidates.iter().filter(|d| {
                let n = d.file.file_name().unwrap_or_default();
                n == "mod.rs" || n == "lib.rs" || Some(d.file.as_path()) == here
            })),
            Some(Some(q)) if q == "self" => {
                out.extend(candidates.iter().filter(|d| Some(d.file.as_path()) == here))
            }
            Some(Some(q)) if q == "crate" => out.extend(
                candidates
                    .iter()
                    .filter(|d| d.file.file_name().unwrap_or_default() == "lib.rs"),
            ),
            Some(Some(q)) => out.extend(candidates.iter().filter(|d| module_name(&d.file) == q)),
            Some(None) => out.extend(candidates.iter()),
            None => {
                let free: Vec<&FnDef> = candidates.iter().filter(|d| !d.method).collect();
                let local: Vec<&FnDef> = free
                    .iter()
                    .copied()
                    .filter(|d| Some(d.file.as_path()) == here)
                    .collect();
                out.extend(if local.is_empty() { free } else { local });
            }
        }
    }
    out
}

/// `.gateway` as a field access: the only way to the management API.
fn touches_gateway(body: &[Tok]) -> bool {
    body.windows(2)
        .any(|w| w[0] == Tok::Punct('.') && w[1] == Tok::Ident("gateway".into()))
}

/// If the function crate's code can reach `app.gateway`, the chain of fns that gets
/// there (outermost first).
fn gateway_path(binary: &str) -> Option<Vec<String>> {
    let shared_files = rs_files(&root().join("shared/src"));
    let mut defs: BTreeMap<String, Vec<FnDef>> = BTreeMap::new();
    for f in &shared_files {
        for d in fn_defs(f).into_iter().filter(|d| d.io) {
            defs.entry(d.name.clone()).or_default().push(d);
        }
    }
    let crate_dir = root().join("functions").join(binary).join("src");
    let mut root_toks = Vec::new();
    for f in rs_files(&crate_dir) {
        root_toks.extend(without_tests_and_uses(tokens(&strip_rust(&read(&f)))));
    }
    if touches_gateway(&root_toks) {
        return Some(vec![format!("functions/{binary}/src")]);
    }
    type Key = (String, PathBuf);
    let key = |d: &FnDef| -> Key { (d.name.clone(), d.file.clone()) };
    let label = |k: &Key| format!("{}::{}", rel(&k.1), k.0);
    let mut parent: BTreeMap<Key, Option<Key>> = BTreeMap::new();
    let mut queue: std::collections::VecDeque<(&FnDef, Option<Key>)> =
        references(&root_toks, None, &defs)
            .into_iter()
            .map(|d| (d, None))
            .collect();
    while let Some((d, from)) = queue.pop_front() {
        let k = key(d);
        if parent.contains_key(&k) {
            continue;
        }
        parent.insert(k.clone(), from);
        if touches_gateway(&d.body) {
            let mut chain = vec![label(&k)];
            let mut cur = parent.get(&k).cloned().flatten();
            while let Some(p) = cur {
                chain.push(label(&p));
                cur = parent.get(&p).cloned().flatten();
            }
            chain.push(format!("functions/{binary}/src"));
            chain.reverse();
            return Some(chain);
        }
        for next in references(&d.body, Some(&d.file), &defs) {
            if !parent.contains_key(&key(next)) {
                queue.push_back((next, Some(k.clone())));
            }
        }
    }
    None
}

/// SDK operations called on a `.client` (or `.client()`) receiver: (operation, file, line).
fn client_calls(file: &Path) -> Vec<(String, usize)> {
    let stripped = strip_rust(&read(file));
    // token positions → line numbers: rebuild tokens with line info
    let mut out = Vec::new();
    let lines: Vec<&str> = stripped.lines().collect();
    let mut flat = String::new();
    let mut line_of = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        for ch in l.chars().filter(|c| !c.is_whitespace()) {
            flat.push(ch);
            line_of.push(n + 1);
        }
    }
    let chars: Vec<char> = flat.chars().collect();
    for pat in [".client.", ".client()."] {
        let pat: Vec<char> = pat.chars().collect();
        let mut i = 0;
        while i + pat.len() <= chars.len() {
            if chars[i..i + pat.len()] == pat[..] {
                let start = i + pat.len();
                let mut j = start;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if j > start && chars.get(j) == Some(&'(') {
                    let op: String = chars[start..j].iter().collect();
                    out.push((op, line_of[start]));
                }
                i = j.max(i + 1);
            } else {
                i += 1;
            }
        }
    }
    out
}

/// SDK operation → the IAM actions it needs.
fn dynamodb_actions(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "get_item" => &["dynamodb:GetItem"],
        "put_item" => &["dynamodb:PutItem"],
        "update_item" => &["dynamodb:UpdateItem"],
        "delete_item" => &["dynamodb:DeleteItem"],
        "query" => &["dynamodb:Query"],
        "scan" => &["dynamodb:Scan"],
        "batch_get_item" => &["dynamodb:BatchGetItem"],
        "batch_write_item" => &["dynamodb:BatchWriteItem"],
        "transact_get_items" => &["dynamodb:GetItem"],
        "transact_write_items" => &[
            "dynamodb:TransactWriteItems",
            "dynamodb:ConditionCheckItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ],
        "describe_table" => &["dynamodb:DescribeTable"],
        _ => return None,
    })
}

/// Management API operation → the HTTP method its execute-api resource names.
fn management_method(op: &str) -> Option<&'static str> {
    Some(match op {
        "post_to_connection" => "POST",
        "get_connection" => "GET",
        "delete_connection" => "DELETE",
        _ => return None,
    })
}

/// Every IAM action the store's DynamoDB calls need, with where each comes from.
fn store_actions() -> BTreeMap<String, Vec<String>> {
    let mut actions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    let files = rs_files(&root().join("shared/src/store"));
    assert!(!files.is_empty(), "no files under shared/src/store");
    for f in &files {
        for (op, line) in client_calls(f) {
            let site = format!("{}:{line} .{op}()", rel(f));
            match dynamodb_actions(&op) {
                Some(list) => {
                    for a in list {
                        actions
                            .entry((*a).to_owned())
                            .or_default()
                            .push(site.clone());
                    }
                }
                None => unknown.push(site),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "DynamoDB operations this test does not know the IAM actions of (add them to \
         dynamodb_actions() in tests/tests/template.rs, and grant them in template.yaml):\n  {}",
        unknown.join("\n  ")
    );
    assert!(
        !actions.is_empty(),
        "found no `.client.<op>()` calls under shared/src/store: has the store changed shape?"
    );
    actions
}

// ====================================================================== policies

#[derive(Debug, Default)]
struct Grants {
    /// action → the resources it is granted on
    actions: BTreeMap<String, Vec<Value>>,
}

fn grants(id: &str, resource: &Value) -> Grants {
    let mut g = Grants::default();
    let policies = match prop(resource, "Policies") {
        None => return g,
        Some(Value::Sequence(seq)) => seq.clone(),
        Some(other) => vec![other.clone()],
    };
    for policy in &policies {
        let statements = match policy.get("Statement") {
            Some(Value::Sequence(seq)) => seq.clone(),
            Some(one @ Value::Mapping(_)) => vec![one.clone()],
            _ => panic!(
                "{id}: policy {} is not an inline policy document (SAM policy templates and \
                 managed policies are not checked here; write the statements out)",
                show(policy)
            ),
        };
        for st in &statements {
            assert_eq!(
                st.get("Effect").and_then(Value::as_str),
                Some("Allow"),
                "{id}: only Allow statements are expected: {}",
                show(st)
            );
            assert!(
                st.get("NotAction").is_none() && st.get("NotResource").is_none(),
                "{id}: NotAction/NotResource are too broad to check: {}",
                show(st)
            );
            let resources = match st.get("Resource") {
                Some(Value::Sequence(seq)) => seq.clone(),
                Some(one) => vec![one.clone()],
                None => panic!("{id}: statement without Resource: {}", show(st)),
            };
            for r in &resources {
                assert!(
                    r.as_str() != Some("*"),
                    "{id}: a statement grants on Resource \"*\": {}",
                    show(st)
                );
            }
            for action in strings(st.get("Action")) {
                assert!(
                    !action.contains('*'),
                    "{id}: wildcard action {action:?} (list the actions the code calls)"
                );
                g.actions
                    .entry(action)
                    .or_default()
                    .extend(resources.iter().cloned());
            }
        }
    }
    g
}

/// The template's table(s): logical ids of AWS::DynamoDB::Table resources.
fn table_ids(t: &Value) -> Vec<String> {
    resources_of_type(t, "AWS::DynamoDB::Table")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// A DynamoDB grant's resource is the table, its stream, or its indexes — nothing else.
fn is_table_scoped(r: &Value, tables: &[String]) -> bool {
    if let Some((res, attr)) = get_att(r) {
        return tables.contains(&res) && (attr == "Arn" || attr == "StreamArn");
    }
    if let Some(s) = sub_string(r) {
        return tables.iter().any(|t| {
            let base = format!("${{{t}.Arn}}");
            s == base
                || s.strip_prefix(&format!("{base}/index/"))
                    .is_some_and(|rest| !rest.is_empty())
                || s.strip_prefix(&format!("{base}/stream/"))
                    .is_some_and(|rest| !rest.is_empty())
        });
    }
    false
}

// ====================================================================== tests

#[test]
fn every_function_is_a_cargo_lambda_arm64_build_of_a_workspace_binary() {
    let t = template();
    let bins = workspace_bins();
    let functions = resources_of_type(&t, "AWS::Serverless::Function");
    let mut problems = Vec::new();

    let ids: BTreeSet<&str> = functions.iter().map(|(id, _)| id.as_str()).collect();
    let expected: BTreeSet<&str> = FUNCTIONS.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids, expected,
        "the template's AWS::Serverless::Function resources differ from the seven this test \
         knows (update FUNCTIONS in tests/tests/template.rs when adding one)"
    );

    for (id, f) in &functions {
        let runtime = function_prop(&t, f, "Runtime").and_then(Value::as_str);
        if runtime != Some("provided.al2023") {
            problems.push(format!(
                "{id}: Runtime is {runtime:?}, want provided.al2023"
            ));
        }
        let arch = strings(function_prop(&t, f, "Architectures"));
        if arch != ["arm64"] {
            problems.push(format!("{id}: Architectures is {arch:?}, want [arm64]"));
        }
        let handler = function_prop(&t, f, "Handler").and_then(Value::as_str);
        if handler != Some("bootstrap") {
            problems.push(format!("{id}: Handler is {handler:?}, want bootstrap"));
        }
        // The cargo-lambda builder runs in CodeUri: it must be the workspace root (the
        // binaries' crates are workspace members sharing one Cargo.lock).
        match function_prop(&t, f, "CodeUri").and_then(Value::as_str) {
            Some(uri) if root().join(uri).join("Cargo.toml").is_file() => {}
            other => problems.push(format!(
                "{id}: CodeUri {other:?} is not a directory with a Cargo.toml"
            )),
        }
        let meta = f.get("Metadata");
        let method = meta
            .and_then(|m| m.get("BuildMethod"))
            .and_then(Value::as_str);
        if method != Some("rust-cargolambda") {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is {method:?}, want rust-cargolambda"
            ));
        }
        let binary = meta
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|p| p.get("Binary"))
            .and_then(Value::as_str);
        let want = FUNCTIONS.iter().find(|(fid, _)| fid == id).map(|(_, b)| *b);
        match binary {
            None => problems.push(format!("{id}: Metadata.BuildProperties.Binary is missing")),
            Some(b) => {
                if Some(b) != want {
                    problems.push(format!(
                        "{id}: BuildProperties.Binary is {b:?}, want {want:?}"
                    ));
                }
                match bins.get(b) {
                    None => problems.push(format!(
                        "{id}: BuildProperties.Binary {b:?} is no [[bin]] of any workspace \
                         member (binaries: {:?})",
                        bins.keys().collect::<Vec<_>>()
                    )),
                    Some((member, path)) if !path.is_file() => problems.push(format!(
                        "{id}: binary {b:?} of {member} points at {}, which does not exist",
                        rel(path)
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
}

#[test]
fn websocket_routes_reach_their_functions_with_invoke_permissions() {
    let t = template();
    let res = resources(&t);
    let routes = resources_of_type(&t, "AWS::ApiGatewayV2::Route");
    let permissions = resources_of_type(&t, "AWS::Lambda::Permission");
    let mut problems = Vec::new();

    for (route_key, function) in [
        ("$connect", "ConnectFunction"),
        ("$disconnect", "DisconnectFunction"),
        ("$default", "DefaultFunction"),
    ] {
        let matching: Vec<_> = routes
            .iter()
            .filter(|(_, r)| prop(r, "RouteKey").and_then(Value::as_str) == Some(route_key))
            .collect();
        let [(route_id, route)] = matching.as_slice() else {
            problems.push(format!(
                "route {route_key}: want exactly one AWS::ApiGatewayV2::Route, found {}",
                matching.len()
            ));
            continue;
        };
        let api = prop(route, "ApiId").and_then(ref_target);
        // Target: !Sub "integrations/${X}"
        let target = prop(route, "Target").and_then(sub_string);
        let Some(integration_id) = target
            .as_deref()
            .and_then(|s| s.strip_prefix("integrations/${"))
            .and_then(|s| s.strip_suffix('}'))
        else {
            problems.push(format!(
                "{route_id} ({route_key}): Target {:?} is not !Sub \"integrations/${{Integration}}\"",
                prop(route, "Target").map(show)
            ));
            continue;
        };
        let Some(integration) = res.get(integration_id) else {
            problems.push(format!(
                "{route_id}: target integration {integration_id} does not exist"
            ));
            continue;
        };
        if integration.get("Type").and_then(Value::as_str) != Some("AWS::ApiGatewayV2::Integration")
        {
            problems.push(format!(
                "{route_id}: {integration_id} is not an AWS::ApiGatewayV2::Integration"
            ));
        }
        if prop(integration, "IntegrationType").and_then(Value::as_str) != Some("AWS_PROXY") {
            problems.push(format!(
                "{integration_id}: IntegrationType is not AWS_PROXY"
            ));
        }
        if prop(integration, "ApiId").and_then(ref_target) != api || api.is_none() {
            problems.push(format!(
                "{route_id} and {integration_id} are not on the same !Ref'd API ({api:?})"
            ));
        }
        let uri = prop(integration, "IntegrationUri").and_then(sub_string);
        let want = format!(
            "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{{function}.Arn}}/invocations"
        );
        if uri.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "{integration_id} (route {route_key}): IntegrationUri {uri:?} does not invoke \
                 {function}; want !Sub \"{want}\""
            ));
        }
        // The invoke permission.
        let granted = permissions.iter().any(|(_, p)| {
            let fname = prop(p, "FunctionName");
            let names_function = fname.and_then(ref_target).as_deref() == Some(function)
                || fname.and_then(get_att) == Some((function.to_owned(), "Arn".to_owned()));
            let source = prop(p, "SourceArn")
                .and_then(sub_string)
                .unwrap_or_default();
            names_function
                && prop(p, "Action").and_then(Value::as_str) == Some("lambda:InvokeFunction")
                && prop(p, "Principal").and_then(Value::as_str) == Some("apigateway.amazonaws.com")
                && api
                    .as_deref()
                    .is_some_and(|a| source.contains(&format!("${{{a}}}/")))
                && (source.ends_with(&format!("/{route_key}")) || source.ends_with("/*"))
        });
        if !granted {
            problems.push(format!(
                "route {route_key}: no AWS::Lambda::Permission lets apigateway.amazonaws.com \
                 invoke {function} (lambda:InvokeFunction, SourceArn on the API's {route_key} \
                 route)"
            ));
        }
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
}

#[test]
fn iam_grants_cover_the_store_and_gateway_calls_and_nothing_more() {
    let t = template();
    let tables = table_ids(&t);
    assert_eq!(
        tables.len(),
        1,
        "expected one AWS::DynamoDB::Table, found {tables:?}"
    );
    let needed = store_actions();
    let needed_set: BTreeSet<&String> = needed.keys().collect();
    let mut problems = Vec::new();

    // DynamoDB calls live in the store only: a `.client.<dynamodb op>()` elsewhere
    // would escape the action list above.
    for dir in ["shared/src", "functions"] {
        for f in rs_files(&root().join(dir)) {
            if f.starts_with(root().join("shared/src/store")) {
                continue;
            }
            for (op, line) in client_calls(&f) {
                if dynamodb_actions(&op).is_some() && management_method(&op).is_none() {
                    problems.push(format!(
                        "{}:{line}: DynamoDB .{op}() outside shared/src/store (move it into \
                         the store so this test sees it)",
                        rel(&f)
                    ));
                }
            }
        }
    }

    // Management API operations the gateway uses, and the methods they need.
    let mut methods = BTreeSet::new();
    for (op, line) in client_calls(&root().join("shared/src/gateway.rs")) {
        match management_method(&op) {
            Some(m) => {
                methods.insert(m);
            }
            None => problems.push(format!(
                "shared/src/gateway.rs:{line}: management API .{op}() is unknown to this test \
                 (add it to management_method())"
            )),
        }
    }

    for (id, binary) in FUNCTIONS {
        let f = resources(&t)
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing from template.yaml"));
        let g = grants(id, f);

        // --- DynamoDB: every store action, on the table only.
        let dynamo: BTreeMap<&String, &Vec<Value>> = g
            .actions
            .iter()
            .filter(|(a, _)| a.starts_with("dynamodb:"))
            .collect();
        for (action, sites) in &needed {
            if !dynamo.contains_key(action) {
                problems.push(format!(
                    "{id}: lacks {action}, which the store calls ({}); every function reaches \
                     the store through `ops`, so each needs every store action",
                    sites.join(", ")
                ));
            }
        }
        for (action, resources) in &dynamo {
            if !needed_set.contains(action) {
                problems.push(format!(
                    "{id}: grants {action}, which no code under shared/src/store calls \
                     (least privilege: remove it)"
                ));
            }
            for r in *resources {
                if !is_table_scoped(r, &tables) {
                    problems.push(format!(
                        "{id}: {action} is granted on {}, not on the table \
                         (!GetAtt {t}.Arn, its StreamArn, or !Sub \"${{{t}.Arn}}/index/...\")",
                        show(r),
                        t = tables[0]
                    ));
                }
            }
        }

        // --- execute-api:ManageConnections: to the functions that post, on this API.
        let reach = gateway_path(binary);
        let must_post = ALWAYS_POST.contains(&id) || reach.is_some();
        let manage = g.actions.get("execute-api:ManageConnections");
        match (must_post, manage) {
            (true, None) => problems.push(format!(
                "{id}: lacks execute-api:ManageConnections, but it sends to sockets{}",
                reach
                    .as_ref()
                    .map(|p| format!(" (reaches app.gateway via {})", p.join(" -> ")))
                    .unwrap_or_default()
            )),
            (false, Some(_)) => problems.push(format!(
                "{id}: grants execute-api:ManageConnections, but no code path from \
                 functions/{binary}/src reaches app.gateway (least privilege: remove it)"
            )),
            (true, Some(resources)) => {
                for r in resources {
                    let s = sub_string(r).unwrap_or_default();
                    if !s.starts_with(
                        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/",
                    ) {
                        problems.push(format!(
                            "{id}: execute-api:ManageConnections on {}, which is not scoped to \
                             this account's WebSocketApi",
                            show(r)
                        ));
                    }
                }
                for s in resources.iter().filter_map(sub_string) {
                    let method = s
                        .split_once("${WebSocketApi}/")
                        .and_then(|(_, rest)| rest.split('/').nth(1))
                        .unwrap_or_default();
                    if method != "*" && !methods.contains(method) {
                        problems.push(format!(
                            "{id}: execute-api:ManageConnections on {s}, but shared/src/gateway.rs \
                             never calls {method} @connections (least privilege: remove it)"
                        ));
                    }
                }
                for method in &methods {
                    let covered = resources.iter().filter_map(sub_string).any(|s| {
                        let Some(rest) = s.split_once("${WebSocketApi}/").map(|x| x.1) else {
                            return false;
                        };
                        let parts: Vec<&str> = rest.splitn(3, '/').collect();
                        matches!(parts.as_slice(),
                            [stage, m, path]
                                if (*stage == "${StageName}" || *stage == "*")
                                    && (*m == *method || *m == "*")
                                    && (*path == "@connections/*" || *path == "*"))
                    });
                    if !covered {
                        problems.push(format!(
                            "{id}: execute-api:ManageConnections does not cover {method} \
                             @connections (shared/src/gateway.rs calls it); want !Sub \
                             \"...:${{WebSocketApi}}/${{StageName}}/{method}/@connections/*\""
                        ));
                    }
                }
            }
            (false, None) => {}
        }

        // --- sqs:SendMessage: to the functions that publish, on the delivery queue.
        match (PUBLISHERS.contains(&id), g.actions.get("sqs:SendMessage")) {
            (true, Some(resources)) => {
                for r in resources {
                    if get_att(r) != Some(("DeliveryQueue".into(), "Arn".into())) {
                        problems.push(format!(
                            "{id}: sqs:SendMessage on {}, not on !GetAtt DeliveryQueue.Arn",
                            show(r)
                        ));
                    }
                }
            }
            (true, None) => problems.push(format!(
                "{id}: lacks sqs:SendMessage on the DeliveryQueue, but it publishes"
            )),
            (false, Some(_)) => problems.push(format!(
                "{id}: grants sqs:SendMessage, but it never publishes (least privilege)"
            )),
            (false, None) => {}
        }

        // --- scheduling: the publishers create schedules in the group, passing
        // the scheduler's role (and only to EventBridge Scheduler).
        let schedules = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*";
        let create = g.actions.get("scheduler:CreateSchedule");
        let pass = g.actions.get("iam:PassRole");
        if PUBLISHERS.contains(&id) {
            let creates = create.is_some_and(|rs| {
                !rs.is_empty()
                    && rs
                        .iter()
                        .all(|r| sub_string(r).as_deref() == Some(schedules))
            });
            let passes = pass.is_some_and(|rs| {
                !rs.is_empty()
                    && rs
                        .iter()
                        .all(|r| get_att(r) == Some(("SchedulerRole".into(), "Arn".into())))
            });
            if !creates || !passes {
                problems.push(format!(
                    "{id}: it schedules, so it needs scheduler:CreateSchedule on !Sub \"{schedules}\" \
                     and iam:PassRole on !GetAtt SchedulerRole.Arn, and nothing broader"
                ));
            }
        } else if create.is_some() || pass.is_some() {
            problems.push(format!(
                "{id}: grants scheduling, but it never schedules (least privilege)"
            ));
        }

        // --- backend events: whoever emits may publish to the stack's bus and
        // topic, by name (they exist only when switched on), and to nothing else.
        let bus = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/sockhop-events-${StackUuid}";
        let topic = "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:sockhop-events-${StackUuid}";
        for (action, want) in [("events:PutEvents", bus), ("sns:Publish", topic)] {
            let granted = g.actions.get(action);
            let exact = granted.is_some_and(|rs| {
                !rs.is_empty() && rs.iter().all(|r| sub_string(r).as_deref() == Some(want))
            });
            match (EMITTERS.contains(&id), granted) {
                (true, _) if !exact => problems.push(format!(
                    "{id}: it emits backend events, so it needs {action} on !Sub \"{want}\" only"
                )),
                (false, Some(_)) => problems.push(format!(
                    "{id}: grants {action}, but it never emits backend events (least privilege)"
                )),
                _ => {}
            }
        }

        // --- anything else granted is unexpected.
        for action in g.actions.keys() {
            if !action.starts_with("dynamodb:")
                && action != "execute-api:ManageConnections"
                && action != "sqs:SendMessage"
                && action != "scheduler:CreateSchedule"
                && action != "iam:PassRole"
                && action != "events:PutEvents"
                && action != "sns:Publish"
            {
                problems.push(format!(
                    "{id}: grants {action}, which this test does not know the code to need \
                     (teach tests/tests/template.rs about it if it is)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
}

#[test]
fn connect_never_reaches_the_gateway() {
    // Not a rule of the design, but the reason its role lacks ManageConnections (the
    // greeting goes out from the stream processor): if this starts failing, grant it in
    // template.yaml and drop this test.
    if let Some(path) = gateway_path("connect") {
        panic!(
            "functions/connect now reaches app.gateway via {}: grant \
             execute-api:ManageConnections to its function in template.yaml",
            path.join(" -> ")
        );
    }
    // And the scan does see the functions that do post (so it is not blind).
    for binary in ["disconnect", "default", "stream", "sweeper"] {
        assert!(
            gateway_path(binary).is_some(),
            "the reachability scan no longer finds app.gateway from functions/{binary}: \
             tests/tests/template.rs's source scan needs fixing"
        );
    }
}

#[test]
fn table_properties_hold_plain_values() {
    // The local stage creates its table from these properties, so they must not use
    // intrinsic functions (nor `Ref:`/`Fn::` long forms).
    fn walk(v: &Value, at: &str, problems: &mut Vec<String>) {
        if intrinsic(v).is_some() {
            problems.push(format!("{at}: {}", show(v)));
            return;
        }
        match v {
            Value::Mapping(m) => {
                for (k, v) in m {
                    walk(v, &format!("{at}.{}", k.as_str().unwrap_or("?")), problems);
                }
            }
            Value::Sequence(s) => {
                for (i, v) in s.iter().enumerate() {
                    walk(v, &format!("{at}[{i}]"), problems);
                }
            }
            _ => {}
        }
    }
    let t = template();
    let mut problems = Vec::new();
    for (id, table) in resources_of_type(&t, "AWS::DynamoDB::Table") {
        let props = table
            .get("Properties")
            .unwrap_or_else(|| panic!("{id} has no Properties"));
        walk(props, &format!("{id}.Properties"), &mut problems);
    }
    assert!(
        problems.is_empty(),
        "intrinsic functions in the table's Properties (infra/local reads them as plain \
         values):\n  {}",
        problems.join("\n  ")
    );
}

// ====================================================================== self-tests

#[test]
fn source_scan_self_test() {
    let src = r##"
        // app.gateway.post( in a comment
        fn a(app: &App) { let s = "app.gateway.post("; let c = '{'; b(app) }
        fn b(app: &App) { app.store.thing(); }
        fn c(&self) { self.client.scan().send(); }
        /* nested /* block */ comment { */
        #[cfg(test)]
        mod tests { fn a() { x.gateway.post() } }
    "##;
    let toks = without_tests_and_uses(tokens(&strip_rust(src)));
    assert!(!touches_gateway(&toks), "comments/strings/cfg(test) leak");
    let dir = std::env::temp_dir().join(format!("sockhop-template-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("x.rs");
    std::fs::write(&file, src).unwrap();
    let defs = fn_defs(&file);
    let names: Vec<(&str, bool)> = defs.iter().map(|d| (d.name.as_str(), d.method)).collect();
    assert_eq!(names, [("a", false), ("b", false), ("c", true)]);
    assert_eq!(client_calls(&file), [("scan".to_owned(), 5)]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        toml_string(r#"name = "connect""#, "name").as_deref(),
        Some("connect")
    );
}

#[test]
fn stream_failures_are_reported_per_record_and_retried() {
    // The stream function answers `batchItemFailures`; without this setting Lambda
    // would ignore them and treat the whole batch as done.
    let t = template();
    let stream = &resources(&t)["StreamFunction"];
    let mapping = prop(stream, "Events")
        .and_then(|e| e.get("TableStream"))
        .and_then(|s| s.get("Properties"))
        .expect("StreamFunction has a TableStream event");
    assert_eq!(
        strings(mapping.get("FunctionResponseTypes")),
        ["ReportBatchItemFailures"]
    );
    assert_eq!(
        mapping.get("BisectBatchOnFunctionError"),
        Some(&Value::Bool(true))
    );
    let retries = mapping
        .get("MaximumRetryAttempts")
        .and_then(Value::as_i64)
        .expect("bounded retries");
    assert!((1..=10_000).contains(&retries), "{retries}");
    assert_eq!(
        mapping.get("ParallelizationFactor").and_then(Value::as_i64),
        Some(1),
        "one batch per shard keeps each partition in order"
    );
    // Without backend events only connection items reach the function; with
    // them (AnyEvents) every record does, for the subscription, count and
    // storage events `store::Change` reads.
    let (name, branches) = intrinsic(mapping.get("FilterCriteria").expect("a filter"))
        .expect("FilterCriteria is an !If on AnyEvents");
    assert_eq!(name, "If");
    let branches = branches.as_sequence().expect("[condition, then, else]");
    assert_eq!(branches[0].as_str(), Some("AnyEvents"));
    assert_eq!(ref_target(&branches[1]), Some("AWS::NoValue".into()));
    let pattern = Some(&branches[2])
        .and_then(|f| f.get("Filters"))
        .and_then(|f| f.get(0))
        .and_then(|f| f.get("Pattern"))
        .and_then(Value::as_str)
        .expect("a filter pattern");
    let pattern: serde_json::Value = serde_json::from_str(pattern).expect("JSON pattern");
    assert_eq!(
        pattern,
        serde_json::json!({"dynamodb": {"Keys": {"sk": {"S": ["CONN"]}}}})
    );
}

/// Infrastructure written for Hotsock reads these outputs by name; where a
/// Sockhop output means the same thing it carries Hotsock's name.
#[test]
fn outputs_carry_hotsocks_names() {
    let t = template();
    let outputs = t
        .get("Outputs")
        .and_then(Value::as_mapping)
        .expect("Outputs");
    let output = |name: &str| {
        outputs
            .get(name)
            .and_then(|o| o.get("Value"))
            .unwrap_or_else(|| panic!("output {name}"))
    };
    let wss = sub_string(output("WebSocketsAwsWssUrl")).expect("a !Sub URL");
    assert!(
        wss.starts_with("wss://${WebSocketApi}.execute-api.") && wss.ends_with("/${StageName}"),
        "{wss}"
    );
    assert_eq!(
        get_att(output("HttpApiUrl")),
        Some(("HttpFunctionUrl".into(), "FunctionUrl".into()))
    );
    let publish = sub_string(output("PublishHttpApiUrl")).expect("a !Sub URL");
    assert_eq!(publish, "${HttpFunctionUrl.FunctionUrl}publish");
    assert_eq!(
        get_att(output("PublishFunctionArn")),
        Some(("PublishFunction".into(), "Arn".into()))
    );
    assert!(
        outputs.get("WebSocketsWssUrl").is_none(),
        "one name per output"
    );
}

/// The delivery path of docs/adr/0002: a FIFO queue with per-channel
/// deduplication, a dead-letter queue, and a consumer that reports failures per
/// message so the queue hands out exactly the failed ones again.
#[test]
fn messages_travel_a_fifo_queue_to_the_deliver_function() {
    let t = template();
    let queue = &resources(&t)["DeliveryQueue"];
    assert_eq!(
        queue.get("Type").and_then(Value::as_str),
        Some("AWS::SQS::Queue")
    );
    assert_eq!(prop(queue, "FifoQueue"), Some(&Value::Bool(true)));
    assert_eq!(
        prop(queue, "ContentBasedDeduplication"),
        Some(&Value::Bool(false))
    );
    assert_eq!(
        prop(queue, "DeduplicationScope").and_then(Value::as_str),
        Some("messageGroup")
    );
    let redrive = prop(queue, "RedrivePolicy").expect("dead letters");
    assert_eq!(
        get_att(redrive.get("deadLetterTargetArn").expect("target")),
        Some(("DeliveryDeadLetterQueue".into(), "Arn".into()))
    );
    let receives = redrive.get("maxReceiveCount").and_then(Value::as_i64);
    assert_eq!(receives, Some(5), "the local stage's MAX_RECEIVES is 5 too");
    let alarm = &resources(&t)["DeliveryDeadLetterAlarm"];
    assert_eq!(
        alarm.get("Type").and_then(Value::as_str),
        Some("AWS::CloudWatch::Alarm")
    );
    let watched = prop(alarm, "Dimensions")
        .and_then(|d| d.get(0))
        .and_then(|d| d.get("Value"))
        .and_then(get_att);
    assert_eq!(
        watched,
        Some(("DeliveryDeadLetterQueue".into(), "QueueName".into())),
        "the alarm watches the dead letters"
    );
    let deliver = &resources(&t)["DeliverFunction"];
    let timeout = prop(deliver, "Timeout")
        .and_then(Value::as_i64)
        .expect("timeout");
    let visibility = prop(queue, "VisibilityTimeout")
        .and_then(Value::as_i64)
        .expect("visibility");
    assert!(visibility >= 6 * timeout, "{visibility} < 6 × {timeout}");
    let source = prop(deliver, "Events")
        .and_then(|e| e.get("Queue"))
        .expect("an SQS event");
    assert_eq!(source.get("Type").and_then(Value::as_str), Some("SQS"));
    let properties = source.get("Properties").expect("properties");
    assert_eq!(
        get_att(properties.get("Queue").expect("queue")),
        Some(("DeliveryQueue".into(), "Arn".into()))
    );
    assert_eq!(
        strings(properties.get("FunctionResponseTypes")),
        ["ReportBatchItemFailures"]
    );
    let batch = properties
        .get("BatchSize")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    assert!(
        (1..=10).contains(&batch),
        "FIFO batches hold at most 10: {batch}"
    );
    let env = t
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .and_then(|f| f.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .expect("global environment");
    assert_eq!(
        ref_target(env.get("DELIVERY_QUEUE_URL").expect("queue url")),
        Some("DeliveryQueue".into())
    );
}

/// Scheduled messages (docs/architecture.md, "Scheduled delivery"): a schedule
/// group, a role EventBridge Scheduler assumes that may only invoke the publish
/// function, whose ARN every function is told, and PassRole only towards
/// EventBridge Scheduler.
#[test]
fn scheduled_messages_have_a_group_and_a_role_that_may_only_invoke_publish() {
    let t = template();
    let res = resources(&t);
    assert_eq!(
        res["ScheduleGroup"]["Type"].as_str(),
        Some("AWS::Scheduler::ScheduleGroup")
    );
    let role = &res["SchedulerRole"];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"));
    let trust = &prop(role, "AssumeRolePolicyDocument").expect("trust policy")["Statement"][0];
    assert_eq!(
        trust["Principal"]["Service"].as_str(),
        Some("scheduler.amazonaws.com")
    );
    assert!(
        ref_target(&trust["Condition"]["StringEquals"]["aws:SourceAccount"])
            == Some("AWS::AccountId".into()),
        "the role is assumed only for this account's schedules: {}",
        show(trust)
    );
    let policies = prop(role, "Policies")
        .and_then(Value::as_sequence)
        .expect("policies");
    let statements: Vec<&Value> = policies
        .iter()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_sequence()
                .into_iter()
                .flatten()
        })
        .collect();
    assert_eq!(statements.len(), 1, "only lambda:InvokeFunction");
    assert_eq!(
        strings(statements[0].get("Action")),
        ["lambda:InvokeFunction"]
    );
    // The role's resource, the functions' SCHEDULE_TARGET_ARN and the publish
    // function's own name are one name.
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    let target = sub_string(&env["SCHEDULE_TARGET_ARN"]).expect("SCHEDULE_TARGET_ARN is a !Sub");
    assert_eq!(
        sub_string(&statements[0]["Resource"]).as_deref(),
        Some(target.as_str())
    );
    let publish = &res["PublishFunction"];
    let name = sub_string(prop(publish, "FunctionName").expect("a fixed name")).expect("!Sub");
    assert!(
        target.ends_with(&format!(":function:{name}")),
        "{target} does not name {name}"
    );
    assert!(
        name.len() - "${StackUuid}".len() + 36 <= 64,
        "function names are at most 64"
    );
    assert_eq!(
        ref_target(&env["SCHEDULE_GROUP_NAME"]),
        Some("ScheduleGroup".into())
    );
    assert_eq!(
        get_att(&env["SCHEDULE_ROLE_ARN"]),
        Some(("SchedulerRole".into(), "Arn".into()))
    );
    // PassRole only to EventBridge Scheduler.
    for id in PUBLISHERS {
        let policies = prop(&res[id], "Policies")
            .and_then(Value::as_sequence)
            .expect("policies");
        let pass = policies
            .iter()
            .flat_map(|p| p["Statement"].as_sequence().into_iter().flatten())
            .find(|st| strings(st.get("Action")) == ["iam:PassRole"])
            .unwrap_or_else(|| panic!("{id}: no iam:PassRole"));
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"].as_str(),
            Some("scheduler.amazonaws.com"),
            "{id}"
        );
    }
    assert_eq!(
        ref_target(&t["Outputs"]["ScheduleGroupName"]["Value"]),
        Some("ScheduleGroup".into())
    );
}

/// Backend events (docs/protocol.md, "Pub/sub events"): a bus and a topic, each
/// behind its own parameter (off by default), named where the functions' IAM
/// grants point, told to every function, with Hotsock's output names.
#[test]
fn backend_events_are_switched_by_parameters_and_off_by_default() {
    let t = template();
    for (parameter, condition) in [
        ("PublishEventsToEventBridge", "EventBridgeEvents"),
        ("PublishEventsToSNS", "SnsEvents"),
    ] {
        let p = &t["Parameters"][parameter];
        assert_eq!(p["Default"].as_str(), Some("disabled"), "{parameter}");
        assert_eq!(strings(p.get("AllowedValues")), ["enabled", "disabled"]);
        let (name, args) = intrinsic(&t["Conditions"][condition]).expect("a condition");
        assert_eq!(name, "Equals");
        assert_eq!(ref_target(&args[0]), Some(parameter.to_owned()));
        assert_eq!(args[1].as_str(), Some("enabled"));
    }
    let res = resources(&t);
    for (id, ty, condition, name_prop) in [
        (
            "PubSubEventBus",
            "AWS::Events::EventBus",
            "EventBridgeEvents",
            "Name",
        ),
        ("PubSubTopic", "AWS::SNS::Topic", "SnsEvents", "TopicName"),
    ] {
        let r = &res[id];
        assert_eq!(r["Type"].as_str(), Some(ty));
        assert_eq!(r["Condition"].as_str(), Some(condition));
        assert_eq!(
            sub_string(prop(r, name_prop).expect("a fixed name")).as_deref(),
            Some("sockhop-events-${StackUuid}"),
            "{id} is named where the IAM grants point"
        );
    }
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    for (var, condition, target) in [
        ("EVENTS_BUS_NAME", "EventBridgeEvents", "PubSubEventBus"),
        ("EVENTS_TOPIC_ARN", "SnsEvents", "PubSubTopic"),
    ] {
        let (name, args) = intrinsic(&env[var]).expect("an !If");
        assert_eq!(name, "If");
        assert_eq!(args[0].as_str(), Some(condition));
        assert_eq!(ref_target(&args[1]), Some(target.into()));
        assert_eq!(ref_target(&args[2]), Some("AWS::NoValue".into()));
    }
    let outputs = &t["Outputs"];
    assert_eq!(
        outputs["PubSubBusArn"]["Condition"].as_str(),
        Some("EventBridgeEvents")
    );
    assert_eq!(
        get_att(&outputs["PubSubBusArn"]["Value"]),
        Some(("PubSubEventBus".into(), "Arn".into()))
    );
    assert_eq!(
        outputs["PubSubTopicArn"]["Condition"].as_str(),
        Some("SnsEvents")
    );
    assert_eq!(
        ref_target(&outputs["PubSubTopicArn"]["Value"]),
        Some("PubSubTopic".into())
    );
}
