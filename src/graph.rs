//! Validating a pipeline into a graph: component types and fields, inputs, cycles, port
//! kinds, and checks that need the upstream (e.g. the sampling rate). Every problem is
//! reported, each naming its component and field.

use std::collections::{BTreeMap, HashMap};

use crate::components::{self, fields::check_fields, ComponentSpec, Output, Params, PortKind, Upstream};
use crate::config::{ComponentDecl, OnError, PipelineFile, Problem, Role};

/// A checked component.
#[derive(Clone)]
pub struct Node {
    pub decl: ComponentDecl,
    pub spec: &'static ComponentSpec,
    pub params: Params,
    /// The kind this component emits (`None` for sinks).
    pub output: Option<PortKind>,
    /// The sampling rate it emits, when known before running.
    pub fs: Option<f64>,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.decl.name
    }
    pub fn full_name(&self) -> String {
        self.decl.full_name()
    }
}

/// A valid pipeline: components in an order where every input comes before its users.
#[derive(Clone)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub on_error: OnError,
}

impl Graph {
    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// Graphviz DOT: one node per component labelled with its name and type, edges
    /// labelled with their port kind.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph pipeline {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
        for node in &self.nodes {
            let shape = match node.decl.role {
                Role::Source => "invhouse",
                Role::Transform => "box",
                Role::Sink => "house",
            };
            out.push_str(&format!(
                "  {} [label=\"{}\\n({})\", shape={shape}];\n",
                quote(node.name()),
                escape(node.name()),
                escape(node.spec.type_name)
            ));
        }
        for node in &self.nodes {
            for input in &node.decl.inputs {
                let kind = self.node(input).and_then(|n| n.output).map_or("?", PortKind::name);
                out.push_str(&format!(
                    "  {} -> {} [label=\"{kind}\"];\n",
                    quote(input),
                    quote(node.name())
                ));
            }
        }
        out.push_str("}\n");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// Checks a pipeline file; returns the graph or every problem found.
pub fn validate(file: &PipelineFile) -> Result<Graph, Vec<Problem>> {
    let mut problems = Vec::new();
    let decls = &file.components;

    // Names are shared by all sections, since inputs refer to them without a section.
    let mut by_name: HashMap<&str, &ComponentDecl> = HashMap::new();
    for decl in decls {
        if let Some(other) = by_name.insert(&decl.name, decl) {
            problems.push(Problem::new(
                decl.full_name(),
                None,
                format!(
                    "the name {:?} is also used by {}; component names must be unique",
                    decl.name,
                    other.full_name()
                ),
            ));
        }
    }
    if !decls.iter().any(|d| d.role == Role::Source) {
        problems.push(Problem::new("", None, "the pipeline has no source ([sources.NAME])"));
    }
    if !decls.iter().any(|d| d.role == Role::Sink) {
        problems.push(Problem::new("", None, "the pipeline has no sink ([sinks.NAME])"));
    }

    // Types and fields.
    let mut checked: BTreeMap<&str, (&'static ComponentSpec, Params)> = BTreeMap::new();
    for decl in decls {
        let full = decl.full_name();
        let Some(type_name) = &decl.type_name else {
            problems.push(Problem::new(
                full,
                Some("type"),
                format!("missing required field (one of: {})", type_names(decl.role)),
            ));
            continue;
        };
        let Some(spec) = components::find(decl.role, type_name) else {
            problems.push(Problem::new(
                full,
                Some("type"),
                format!(
                    "unknown {} type {type_name:?} (known: {})",
                    role_word(decl.role),
                    type_names(decl.role)
                ),
            ));
            continue;
        };
        let (params, field_problems) = check_fields(spec.fields, &decl.fields);
        let clean = field_problems.is_empty();
        problems.extend(
            field_problems
                .into_iter()
                .map(|(f, m)| Problem::new(&full, Some(&f), m)),
        );
        if clean {
            checked.insert(&decl.name, (spec, params));
        }
    }

    // Inputs.
    for decl in decls.iter().filter(|d| d.role != Role::Source) {
        if decl.inputs.is_empty() {
            problems.push(Problem::new(
                decl.full_name(),
                Some("inputs"),
                "missing required field (the components it reads from)",
            ));
        }
        for input in &decl.inputs {
            match by_name.get(input.as_str()) {
                None => problems.push(Problem::new(
                    decl.full_name(),
                    Some("inputs"),
                    format!("input {input:?} is not a source or transform of this pipeline"),
                )),
                Some(d) if d.role == Role::Sink => problems.push(Problem::new(
                    decl.full_name(),
                    Some("inputs"),
                    format!("input {input:?} is a sink ({}); sinks have no output", d.full_name()),
                )),
                Some(_) => {}
            }
        }
    }

    // Order (Kahn's algorithm); whatever cannot be ordered lies on or after a cycle.
    let order = topological_order(decls);
    if order.len() < decls.len() {
        for decl in decls {
            if !order.contains(&decl.name.as_str()) {
                if let Some(cycle) = find_cycle(decls, &decl.name) {
                    problems.push(Problem::new(
                        decl.full_name(),
                        Some("inputs"),
                        format!("cycle: {}", cycle.join(" -> ")),
                    ));
                }
            }
        }
    }

    // Port kinds and upstream facts, in order.
    let mut nodes: Vec<Node> = Vec::new();
    for name in &order {
        let decl = by_name[name];
        let Some((spec, params)) = checked.get(name) else {
            continue;
        };
        let inputs: Vec<&Node> = decl
            .inputs
            .iter()
            .filter_map(|i| nodes.iter().find(|n| n.name() == i))
            .collect();
        if inputs.len() != decl.inputs.len() {
            continue; // an input already failed
        }
        let full = decl.full_name();
        let mut in_kind: Option<PortKind> = None;
        let mut ok = true;
        for input in &inputs {
            let Some(kind) = input.output else { continue };
            if !spec.accepts.contains(&kind) {
                ok = false;
                problems.push(Problem::new(
                    &full,
                    Some("inputs"),
                    format!(
                        "port type mismatch: {} emits {}, but {} {:?} accepts {}",
                        input.full_name(),
                        kind.name(),
                        role_word(decl.role),
                        spec.type_name,
                        spec.accepts.iter().map(|k| k.name()).collect::<Vec<_>>().join(" or ")
                    ),
                ));
            } else if (kind == PortKind::Events && in_kind.is_some()) || spec.accepts == PortKind::ALL {
                // Events travel with their streams on any edge, and a component that takes
                // every kind (the console, the monitor page) takes them mixed.
            } else if let Some(prev) = in_kind.filter(|&p| p != kind && p != PortKind::Events) {
                ok = false;
                problems.push(Problem::new(
                    &full,
                    Some("inputs"),
                    format!(
                        "inputs carry different kinds ({} and {}); merge only like with like",
                        prev.name(),
                        kind.name()
                    ),
                ));
            } else {
                in_kind = Some(kind);
            }
        }
        let rates: Vec<f64> = inputs.iter().filter_map(|n| n.fs).collect();
        if rates.windows(2).any(|w| w[0] != w[1]) {
            ok = false;
            problems.push(Problem::new(
                &full,
                Some("inputs"),
                format!("inputs have different sampling rates: {rates:?} Hz"),
            ));
        }
        let fs_in = if decl.role == Role::Source {
            None
        } else {
            rates.first().copied()
        };
        let upstream = Upstream {
            fs: fs_in,
            kind: in_kind,
        };
        let own = (spec.check)(params, &upstream);
        ok &= own.is_empty();
        problems.extend(own.into_iter().map(|(f, m)| Problem::new(&full, Some(&f), m)));
        if !ok {
            continue;
        }
        let output = match spec.output {
            Output::None => None,
            Output::Kind(k) => Some(k),
            Output::SameAsInput => in_kind,
        };
        nodes.push(Node {
            decl: decl.clone(),
            spec,
            params: params.clone(),
            output,
            fs: (spec.output_fs)(params, fs_in),
        });
    }

    if problems.is_empty() {
        Ok(Graph {
            nodes,
            on_error: file.on_error,
        })
    } else {
        Err(problems)
    }
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Source => "source",
        Role::Transform => "transform",
        Role::Sink => "sink",
    }
}

fn type_names(role: Role) -> String {
    components::registry()
        .iter()
        .filter(|s| s.role == role)
        .map(|s| s.type_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Component names in an order where inputs come first; components on a cycle (or fed by
/// one) are left out. Unknown inputs are ignored here (reported elsewhere).
fn topological_order(decls: &[ComponentDecl]) -> Vec<&str> {
    let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    // Repeatedly take, in file order (for stable messages and output), every component
    // whose inputs are all placed; what never becomes ready lies on or after a cycle.
    let mut ordered: Vec<&str> = Vec::new();
    loop {
        let before = ordered.len();
        for d in decls {
            let n = d.name.as_str();
            let ready = d
                .inputs
                .iter()
                .all(|i| !names.contains(&i.as_str()) || ordered.contains(&i.as_str()));
            if ready && !ordered.contains(&n) {
                ordered.push(n);
            }
        }
        if ordered.len() == before {
            return ordered;
        }
    }
}

/// A cycle through `start`, as the list of names from `start` back to it.
fn find_cycle<'a>(decls: &'a [ComponentDecl], start: &'a str) -> Option<Vec<&'a str>> {
    fn walk<'a>(decls: &'a [ComponentDecl], start: &str, at: &'a str, path: &mut Vec<&'a str>) -> bool {
        let Some(decl) = decls.iter().find(|d| d.name == at) else {
            return false;
        };
        for input in &decl.inputs {
            if input == start {
                return true;
            }
            if !path.contains(&input.as_str()) {
                path.push(input);
                if walk(decls, start, input, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    if walk(decls, start, start, &mut path) {
        // `path` follows inputs backwards; show it in the direction data flows.
        path.reverse();
        path.insert(0, start);
        Some(path)
    } else {
        None
    }
}
