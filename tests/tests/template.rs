//! Static checks of `template.yaml` against the code it deploys. No DynamoDB, no AWS:
//! it reads the template, the workspace's Cargo.toml files and the Rust sources.
//!
//! - every function: provided.al2023, arm64, built by cargo-lambda from a `[[bin]]`
//!   that exists in the workspace;
//! - the WebSocket routes reach the right functions, each with an invoke permission;
//! - every IAM grant is scoped to this stack's own resource for its service, and names
//!   an action this test knows. Which function needs which action is decided by
//!   tests/tests/grants.rs, from the requests each function's code paths make.
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

// ====================================================================== policies

#[derive(Debug, Default)]
struct Grants {
    /// action → the resources it is granted on
    actions: BTreeMap<String, Vec<Value>>,
    /// action → the `Condition` of each statement granting it
    conditions: BTreeMap<String, Vec<Option<Value>>>,
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
                g.conditions
                    .entry(action.clone())
                    .or_default()
                    .push(st.get("Condition").cloned());
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

/// The table's global secondary indexes, by name.
fn index_names(t: &Value, table: &str) -> Vec<String> {
    prop(&resources(t)[table], "GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i.get("IndexName")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// Where a DynamoDB grant points: the table itself, or one of its indexes.
#[derive(Debug, PartialEq)]
enum TableResource {
    Table,
    Index(String),
}

/// `!GetAtt T.Arn` → the table; `!Sub "${T.Arn}/index/<one of its indexes>"` → that
/// index; anything else (another table, its stream, a pattern) → None.
fn table_resource(t: &Value, r: &Value, table: &str) -> Option<TableResource> {
    if get_att(r) == Some((table.to_owned(), "Arn".into())) {
        return Some(TableResource::Table);
    }
    let index = sub_string(r)?
        .strip_prefix(&format!("${{{table}.Arn}}/index/"))?
        .to_owned();
    index_names(t, table)
        .contains(&index)
        .then_some(TableResource::Index(index))
}

/// The item actions a DynamoDB grant may name (a transaction needs those of its
/// items: DynamoDB authorizes TransactWriteItems item by item).
const DYNAMODB_ACTIONS: [&str; 9] = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
];

// ====================================================================== tests

/// A function's architectures, a `!Ref` to a parameter read as the parameter's
/// default (which must be one of its allowed values).
fn architectures(t: &Value, f: &Value) -> Vec<String> {
    let listed = match function_prop(t, f, "Architectures") {
        Some(Value::Sequence(seq)) => seq.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    listed
        .iter()
        .map(|a| match ref_target(a) {
            Some(parameter) => {
                let p = &t["Parameters"][parameter.as_str()];
                let default = p["Default"].as_str().unwrap_or_default().to_owned();
                if strings(p.get("AllowedValues")).contains(&default) {
                    default
                } else {
                    format!("!Ref {parameter} (default {default:?} not allowed)")
                }
            }
            None => a.as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

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
        let arch = architectures(&t, f);
        if arch != ["arm64"] {
            problems.push(format!(
                "{id}: Architectures is {arch:?} by default, want [arm64]"
            ));
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

/// Every grant is scoped to this stack's own resource for its service: the table
/// or its indexes, this API's stage per `@connections` method, the delivery queue, the
/// schedule group, the scheduler role (passed to EventBridge Scheduler only), the
/// events bus and topic by name. Which function needs which action is not decided
/// here: tests/tests/grants.rs drives each function's paths and compares both ways.
#[test]
fn iam_grants_are_scoped_to_this_stacks_resources() {
    let t = template();
    let tables = table_ids(&t);
    let [table] = tables.as_slice() else {
        panic!("expected one AWS::DynamoDB::Table, found {tables:?}");
    };
    let connections = |method: &str| {
        format!(
            "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:\
             ${{WebSocketApi}}/${{StageNameParameter}}/{method}/@connections/*"
        )
    };
    let management: Vec<String> = ["POST", "GET", "DELETE"].map(connections).to_vec();
    let schedules = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*";
    let bus = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/sockhop-events-${StackUuid}";
    let topic =
        "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:sockhop-events-${StackUuid}";
    let mut problems = Vec::new();

    for (id, _) in FUNCTIONS {
        let f = resources(&t)
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing from template.yaml"));
        let g = grants(id, f);
        for (action, granted_on) in &g.actions {
            let mut wrong = |want: &str| {
                for r in granted_on {
                    problems.push(format!("{id}: {action} on {}, want {want}", show(r)));
                }
            };
            match action.as_str() {
                "dynamodb:TransactWriteItems" | "dynamodb:TransactGetItems" => {
                    problems.push(format!(
                        "{id}: grants {action}, which authorizes nothing (DynamoDB authorizes a \
                     transaction item by item: grant the items' actions)"
                    ))
                }
                a if a.starts_with("dynamodb:") => {
                    if !DYNAMODB_ACTIONS.contains(&a) {
                        problems.push(format!(
                            "{id}: grants {action}, which this test does not know (teach \
                             DYNAMODB_ACTIONS in tests/tests/template.rs if the code needs it)"
                        ));
                    }
                    for r in granted_on {
                        match table_resource(&t, r, table) {
                            Some(TableResource::Table) => {}
                            Some(TableResource::Index(_))
                                if a == "dynamodb:Query" || a == "dynamodb:Scan" => {}
                            Some(TableResource::Index(index)) => problems.push(format!(
                                "{id}: {action} on the index {index}, where only Query and \
                                 Scan mean anything"
                            )),
                            None => problems.push(format!(
                                "{id}: {action} on {}, not on the table (!GetAtt {table}.Arn) \
                                 or one of its indexes (!Sub \"${{{table}.Arn}}/index/<name>\")",
                                show(r)
                            )),
                        }
                    }
                }
                "execute-api:ManageConnections" => {
                    let scoped = granted_on
                        .iter()
                        .all(|r| sub_string(r).is_some_and(|s| management.contains(&s)));
                    if !scoped {
                        wrong("this API's stage, one @connections method each: !Sub \"arn:...:${WebSocketApi}/${StageNameParameter}/<POST|GET|DELETE>/@connections/*\"");
                    }
                }
                "sqs:SendMessage" => {
                    if !granted_on
                        .iter()
                        .all(|r| get_att(r) == Some(("DeliveryQueue".into(), "Arn".into())))
                    {
                        wrong("!GetAtt DeliveryQueue.Arn");
                    }
                }
                "scheduler:CreateSchedule" => {
                    if !granted_on
                        .iter()
                        .all(|r| sub_string(r).as_deref() == Some(schedules))
                    {
                        wrong(&format!("!Sub \"{schedules}\""));
                    }
                }
                "iam:PassRole" => {
                    if !granted_on
                        .iter()
                        .all(|r| get_att(r) == Some(("SchedulerRole".into(), "Arn".into())))
                    {
                        wrong("!GetAtt SchedulerRole.Arn");
                    }
                    for condition in &g.conditions[action] {
                        let service = condition
                            .as_ref()
                            .and_then(|c| c.get("StringEquals"))
                            .and_then(|c| c.get("iam:PassedToService"))
                            .and_then(Value::as_str);
                        if service != Some("scheduler.amazonaws.com") {
                            problems.push(format!(
                                "{id}: iam:PassRole without the condition StringEquals \
                                 iam:PassedToService: scheduler.amazonaws.com"
                            ));
                        }
                    }
                }
                "events:PutEvents" => {
                    if !granted_on
                        .iter()
                        .all(|r| sub_string(r).as_deref() == Some(bus))
                    {
                        wrong(&format!("!Sub \"{bus}\""));
                    }
                }
                "sns:Publish" => {
                    if !granted_on
                        .iter()
                        .all(|r| sub_string(r).as_deref() == Some(topic))
                    {
                        wrong(&format!("!Sub \"{topic}\""));
                    }
                }
                "secretsmanager:GetSecretValue" => {
                    // Only the stack's own generated API key secrets.
                    let keys = ["HttpApiSecretKey1", "HttpApiSecretKey2"];
                    if granted_on.is_empty()
                        || !granted_on.iter().all(|r| {
                            get_att(r).is_some_and(|(t, a)| keys.contains(&t.as_str()) && a == "Id")
                        })
                    {
                        wrong("!GetAtt HttpApiSecretKey1.Id / !GetAtt HttpApiSecretKey2.Id (their ARNs)");
                    }
                }
                _ => problems.push(format!(
                    "{id}: grants {action}, which this test does not know how to scope \
                     (teach tests/tests/template.rs about it if the code needs it)"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
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
fn toml_reading_self_test() {
    assert_eq!(
        toml_string(r#"name = "connect""#, "name").as_deref(),
        Some("connect")
    );
    assert_eq!(
        toml_string(r#"path = "src/main.rs" # the bootstrap"#, "path").as_deref(),
        Some("src/main.rs")
    );
    assert_eq!(toml_string(r#"names = "x""#, "name"), None);
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
        wss.starts_with("wss://${WebSocketApi}.execute-api.")
            && wss.ends_with("/${StageNameParameter}"),
        "{wss}"
    );
    assert_eq!(
        get_att(output("HttpApiUrl")),
        Some(("HttpFunctionUrl".into(), "FunctionUrl".into()))
    );
    let publish = sub_string(output("PublishHttpApiUrl")).expect("a !Sub URL");
    assert_eq!(publish, "${HttpFunctionUrl.FunctionUrl}publish");
    let console = sub_string(output("WebConsoleHttpUrl")).expect("a !Sub URL");
    assert_eq!(console, "${HttpFunctionUrl.FunctionUrl}console");
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
    // PassRole only to EventBridge Scheduler, by every function that passes it
    // (some do: scheduling is one of the functions' paths).
    let mut passing = 0;
    for (id, _) in FUNCTIONS {
        let policies = prop(&res[id], "Policies")
            .and_then(Value::as_sequence)
            .expect("policies");
        for pass in policies
            .iter()
            .flat_map(|p| p["Statement"].as_sequence().into_iter().flatten())
            .filter(|st| {
                strings(st.get("Action"))
                    .iter()
                    .any(|a| a == "iam:PassRole")
            })
        {
            passing += 1;
            assert_eq!(
                pass["Condition"]["StringEquals"]["iam:PassedToService"].as_str(),
                Some("scheduler.amazonaws.com"),
                "{id}"
            );
        }
    }
    assert!(passing > 0, "no function passes the scheduler's role");
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
        ("PublishEventsToEventBridgeParameter", "EventBridgeEvents"),
        ("PublishEventsToSNSParameter", "SnsEvents"),
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

/// Every function logs JSON (the Lambda runtime then writes its lines as JSON
/// objects, each with the invocation's request id) at the levels two stack
/// parameters choose, as Hotsock's application and system log levels; logs are
/// kept as long as Hotsock's default (a year).
#[test]
fn functions_log_json_at_the_levels_the_stack_parameters_choose() {
    let t = template();
    let params = &t["Parameters"];
    assert_eq!(
        params["ApplicationLogLevelParameter"]["Default"].as_str(),
        Some("INFO")
    );
    assert_eq!(
        params["SystemLogLevelParameter"]["Default"].as_str(),
        Some("WARN")
    );
    assert_eq!(
        params["LogRetentionDaysParameter"]["Default"].as_u64(),
        Some(365)
    );
    for (id, _) in FUNCTIONS {
        let f = &resources(&t)[id];
        let logging = prop(f, "LoggingConfig").unwrap_or_else(|| panic!("{id}: LoggingConfig"));
        assert_eq!(logging["LogFormat"].as_str(), Some("JSON"), "{id}");
        assert_eq!(
            ref_target(&logging["ApplicationLogLevel"]).as_deref(),
            Some("ApplicationLogLevelParameter"),
            "{id}"
        );
        assert_eq!(
            ref_target(&logging["SystemLogLevel"]).as_deref(),
            Some("SystemLogLevelParameter"),
            "{id}"
        );
    }
    for (id, group) in resources_of_type(&t, "AWS::Logs::LogGroup") {
        assert_eq!(
            ref_target(&group["Properties"]["RetentionInDays"]).as_deref(),
            Some("LogRetentionDaysParameter"),
            "{id}"
        );
    }
}

/// What an operator watches: the functions' own metrics (Embedded Metric
/// Format, namespace `Sockhop`), a dashboard with its URL as Hotsock's output
/// name (switchable off), alarms on dead letters, the queue's age and every
/// function's errors.
#[test]
fn the_stack_has_a_dashboard_of_its_metrics_and_alarms_on_failures() {
    let t = template();
    let dashboard = &resources(&t)["MonitoringOverviewDashboard"];
    assert_eq!(
        dashboard["Type"].as_str(),
        Some("AWS::CloudWatch::Dashboard")
    );
    assert_eq!(dashboard["Condition"].as_str(), Some("MonitoringDashboard"));
    assert_eq!(
        t["Parameters"]["MonitoringDashboardParameter"]["Default"].as_str(),
        Some("enabled")
    );
    let body = sub_string(&dashboard["Properties"]["DashboardBody"]).expect("a !Sub body");
    // Every metric the functions publish is on it, and it is JSON once filled in.
    for measure in [
        "Connections",
        "Subscribes",
        "MessagesPublished",
        "FramesDelivered",
        "FramesFailed",
        "GoneCleanups",
        "FanOutMilliseconds",
        "EventsLost",
        "OwedPresenceChanges",
    ] {
        assert!(
            body.contains(&format!("\"Sockhop\", \"{measure}\"")),
            "{measure} not on the dashboard"
        );
    }
    let filled = regex::Regex::new(r"\$\{[^}]+\}")
        .expect("re")
        .replace_all(&body, "x");
    let parsed: serde_json::Value = serde_json::from_str(&filled).expect("the body is JSON");
    assert!(parsed["widgets"].as_array().is_some_and(|w| w.len() >= 6));
    let url = &t["Outputs"]["MonitoringOverviewDashboardUrl"];
    assert_eq!(url["Condition"].as_str(), Some("MonitoringDashboard"));
    assert!(sub_string(&url["Value"])
        .is_some_and(|u| u.contains("#dashboards:name=${MonitoringOverviewDashboard}")));
    // Alarms: dead letters, the queue's age, and one per function on its errors.
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let watches = |namespace: &str, metric: &str| {
        alarms
            .iter()
            .filter(|(_, a)| {
                a["Properties"]["Namespace"].as_str() == Some(namespace)
                    && a["Properties"]["MetricName"].as_str() == Some(metric)
            })
            .count()
    };
    assert_eq!(
        watches("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        1,
        "dead letters"
    );
    assert_eq!(
        watches("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        1,
        "queue age"
    );
    for (id, _) in FUNCTIONS {
        assert!(
            alarms.iter().any(
                |(_, a)| a["Properties"]["MetricName"].as_str() == Some("Errors")
                    && ref_target(&a["Properties"]["Dimensions"][0]["Value"]).as_deref()
                        == Some(id)
            ),
            "no errors alarm for {id}"
        );
    }
    // Each function knows the stack, the dimension its metrics carry.
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        ref_target(&globals["SOCKHOP_STACK_NAME"]).as_deref(),
        Some("AWS::StackName")
    );
}

/// The server API's keys are generated at deploy (40 letters and digits, as
/// Hotsock's), read by the http function alone, with Hotsock's console-URL
/// outputs; explicit keys stay an option and are empty by default.
#[test]
fn http_api_keys_are_generated_at_deploy_and_read_by_the_http_function_only() {
    let t = template();
    for n in [1, 2] {
        let secret = &resources(&t)[format!("HttpApiSecretKey{n}").as_str()];
        assert_eq!(secret["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
        let generate = &secret["Properties"]["GenerateSecretString"];
        assert_eq!(generate["PasswordLength"].as_u64(), Some(40));
        assert_eq!(generate["ExcludePunctuation"].as_bool(), Some(true));
        let url =
            sub_string(&t["Outputs"][format!("HttpApiSecretKey{n}ConsoleUrl").as_str()]["Value"])
                .expect("a console URL");
        assert!(
            url.contains("/secretsmanager/secret?name=${AWS::StackName}/http-api-secret-key-"),
            "{url}"
        );
        assert_eq!(
            t["Parameters"][format!("HttpApiKey{n}Parameter").as_str()]["Default"].as_str(),
            Some(""),
            "explicit keys are optional"
        );
    }
    let http = &resources(&t)["HttpFunction"];
    let env = &http["Properties"]["Environment"]["Variables"];
    assert_eq!(
        sub_string(&env["HTTP_API_KEY_SECRET_ARNS"]).as_deref(),
        Some("${HttpApiSecretKey1.Id},${HttpApiSecretKey2.Id}")
    );
    for (id, _) in FUNCTIONS.iter().filter(|(id, _)| *id != "HttpFunction") {
        let f = &resources(&t)[*id];
        let text = serde_yaml::to_string(&f["Properties"]).expect("yaml");
        assert!(
            !text.contains("HttpApiSecretKey") && !text.contains("HTTP_API_KEY"),
            "{id} sees the API keys"
        );
    }
}

/// Parameters that mean what Hotsock's mean carry Hotsock's names, so
/// infrastructure code written for Hotsock sets them unchanged.
#[test]
fn stack_parameters_carry_hotsocks_names() {
    let t = template();
    for name in [
        "SigningKey1MethodParameter",
        "SigningKey1EncodedParameter",
        "SigningKey1IDParameter",
        "SigningKey2MethodParameter",
        "SigningKey2EncodedParameter",
        "SigningKey2IDParameter",
        "TokenAudienceParameter",
        "TokenIssuerParameter",
        "PublishEventsToEventBridgeParameter",
        "PublishEventsToSNSParameter",
    ] {
        assert!(t["Parameters"].get(name).is_some(), "{name}");
    }
    let all: Vec<String> = t["Parameters"]
        .as_mapping()
        .expect("parameters")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    assert!(
        all.iter().all(|p| p.ends_with("Parameter")),
        "one naming scheme: {all:?}"
    );
}
