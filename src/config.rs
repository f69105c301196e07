//! Reading pipeline files: TOML in the Vector style (`[sources.NAME]`, `[transforms.NAME]`,
//! `[sinks.NAME]`), `${VAR}` / `${VAR:-default}` expansion in string values, and
//! `--set section.NAME.FIELD=VALUE` overrides from the command line.

use std::path::{Path, PathBuf};

use thiserror::Error;
use toml::{Table, Value};

/// Where `ECGFLOW_DATA` points when the environment does not say.
pub const DEFAULT_DATA_DIR: &str = "../shared/data";

/// The role of a component in the graph, which is also its section in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Source,
    Transform,
    Sink,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Source, Role::Transform, Role::Sink];

    /// The TOML section holding components of this role.
    pub fn section(self) -> &'static str {
        match self {
            Role::Source => "sources",
            Role::Transform => "transforms",
            Role::Sink => "sinks",
        }
    }
}

/// One component as written in the file, before its fields are checked.
#[derive(Clone, Debug)]
pub struct ComponentDecl {
    pub role: Role,
    pub name: String,
    /// The `type` field, if present and a string.
    pub type_name: Option<String>,
    /// The `inputs` field (empty for sources or when absent).
    pub inputs: Vec<String>,
    /// Every other field, as written (after expansion and overrides).
    pub fields: Table,
}

impl ComponentDecl {
    /// The name used in messages, e.g. `transforms.clean`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.role.section(), self.name)
    }
}

/// What a failing stream (a damaged record, a step that errs on its data) does to a run:
/// the top-level `on_error` key of a pipeline file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Drop the stream from every output, report it by name, and go on with the others.
    #[default]
    Skip,
    /// Stop the run at once; no output file is completed.
    Fail,
}

/// A pipeline file, parsed into components.
#[derive(Clone, Debug)]
pub struct PipelineFile {
    pub path: PathBuf,
    pub on_error: OnError,
    pub components: Vec<ComponentDecl>,
}

/// A problem found in a pipeline, located as precisely as possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `sources.NAME`, `transforms.NAME`, `sinks.NAME`, or empty for the whole file.
    pub component: String,
    /// The field at fault, when there is one.
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(component: impl Into<String>, field: Option<&str>, message: impl Into<String>) -> Self {
        Problem {
            component: component.into(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.component, &self.field) {
            (c, Some(field)) if c.is_empty() => write!(f, "{field}: {}", self.message),
            (c, _) if c.is_empty() => write!(f, "{}", self.message),
            (c, Some(field)) => write!(f, "{c}.{field}: {}", self.message),
            (c, None) => write!(f, "{c}: {}", self.message),
        }
    }
}

/// Errors that stop a pipeline file from being read at all.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: {problem}")]
    Structure { path: PathBuf, problem: Problem },
    #[error("bad --set {arg:?}: {message}")]
    Override { arg: String, message: String },
}

/// Reads and parses a pipeline file, applying `--set` overrides and `${VAR}` expansion.
pub fn load(path: &Path, overrides: &[String]) -> Result<PipelineFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, overrides)
}

/// Parses pipeline text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<PipelineFile, ConfigError> {
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Toml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    for arg in overrides {
        apply_override(&mut table, arg)?;
    }
    let structure = |problem| ConfigError::Structure {
        path: path.to_owned(),
        problem,
    };

    let mut components = Vec::new();
    let mut on_error = OnError::default();
    for (key, value) in &table {
        if key == "on_error" {
            on_error = match value.as_str() {
                Some("skip") => OnError::Skip,
                Some("fail") => OnError::Fail,
                _ => {
                    return Err(structure(Problem::new(
                        "",
                        Some("on_error"),
                        format!("on_error = {value} must be \"skip\" or \"fail\""),
                    )))
                }
            };
            continue;
        }
        let Some(role) = Role::ALL.into_iter().find(|r| r.section() == key) else {
            return Err(structure(Problem::new(
                "",
                None,
                format!("unknown section [{key}]; a pipeline has on_error, [sources.NAME], [transforms.NAME] and [sinks.NAME]"),
            )));
        };
        let Value::Table(section) = value else {
            return Err(structure(Problem::new(
                key.as_str(),
                None,
                "must be a table of components",
            )));
        };
        for (name, body) in section {
            let full = format!("{key}.{name}");
            let Value::Table(body) = body else {
                return Err(structure(Problem::new(
                    full,
                    None,
                    "must be a table with a `type` field",
                )));
            };
            let mut fields = body.clone();
            expand_table(&mut fields)
                .map_err(|(field, message)| structure(Problem::new(&full, Some(&field), message)))?;
            let type_name = match fields.remove("type") {
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err(structure(Problem::new(full, Some("type"), "must be a string"))),
                None => None,
            };
            let inputs = match fields.remove("inputs") {
                None => Vec::new(),
                Some(Value::Array(items)) => {
                    let mut inputs = Vec::new();
                    for item in items {
                        match item {
                            Value::String(s) => inputs.push(s),
                            _ => {
                                return Err(structure(Problem::new(
                                    full,
                                    Some("inputs"),
                                    "must be a list of component names",
                                )))
                            }
                        }
                    }
                    inputs
                }
                Some(Value::String(s)) => vec![s],
                Some(_) => {
                    return Err(structure(Problem::new(
                        full,
                        Some("inputs"),
                        "must be a list of component names",
                    )))
                }
            };
            if role == Role::Source && !inputs.is_empty() {
                return Err(structure(Problem::new(
                    full,
                    Some("inputs"),
                    "a source takes no inputs",
                )));
            }
            components.push(ComponentDecl {
                role,
                name: name.clone(),
                type_name,
                inputs,
                fields,
            });
        }
    }
    Ok(PipelineFile {
        path: path.to_owned(),
        on_error,
        components,
    })
}

/// Applies one `section.NAME.FIELD=VALUE` override. The value is read as TOML when it parses
/// (numbers, booleans, lists, quoted strings) and as a bare string otherwise.
fn apply_override(table: &mut Table, arg: &str) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Override {
        arg: arg.to_owned(),
        message: message.to_owned(),
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| err("expected section.NAME.FIELD=VALUE"))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts == ["on_error"] {
        table.insert("on_error".to_owned(), parse_value(raw.trim()));
        return Ok(());
    }
    let [section, name, field] = parts.as_slice() else {
        return Err(err(
            "the key must be on_error or have three parts: section.NAME.FIELD, e.g. sources.ecg.duration_s",
        ));
    };
    if !Role::ALL.iter().any(|r| r.section() == *section) {
        return Err(err("the section must be sources, transforms or sinks"));
    }
    let value = parse_value(raw.trim());
    let component = table
        .get_mut(*section)
        .and_then(Value::as_table_mut)
        .and_then(|s| s.get_mut(*name))
        .and_then(Value::as_table_mut)
        .ok_or_else(|| err(&format!("the pipeline has no component {section}.{name}")))?;
    component.insert((*field).to_owned(), value);
    Ok(())
}

/// Reads a command-line value as a TOML value, falling back to a plain string.
pub fn parse_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    match doc.parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn expand_table(table: &mut Table) -> Result<(), (String, String)> {
    for (field, value) in table.iter_mut() {
        expand_value(value).map_err(|m| (field.clone(), m))?;
    }
    Ok(())
}

fn expand_value(value: &mut Value) -> Result<(), String> {
    match value {
        Value::String(s) => *s = expand_vars(s, |name| std::env::var(name).ok())?,
        Value::Array(items) => {
            for item in items {
                expand_value(item)?;
            }
        }
        Value::Table(t) => {
            for (_, v) in t.iter_mut() {
                expand_value(v)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands `${VAR}` and `${VAR:-default}`. `ECGFLOW_DATA` defaults to [`DEFAULT_DATA_DIR`];
/// any other unset variable without a default is an error. `$$` is a literal `$`.
pub fn expand_vars(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad variable name {name:?} in {text:?}"));
            }
            let value = match lookup(name).filter(|v| !v.is_empty()) {
                Some(v) => v,
                None => match default {
                    Some(d) => d.to_owned(),
                    None if name == "ECGFLOW_DATA" => DEFAULT_DATA_DIR.to_owned(),
                    None => {
                        return Err(format!(
                            "environment variable {name} is not set (write ${{{name}:-default}})"
                        ))
                    }
                },
            };
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOME_X").then(|| "/home/x".to_owned())
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand_vars("${HOME_X}/a", env).unwrap(), "/home/x/a");
        assert_eq!(expand_vars("${NOPE:-d}/a", env).unwrap(), "d/a");
        assert_eq!(
            expand_vars("${ECGFLOW_DATA}/mitdb", env).unwrap(),
            "../shared/data/mitdb"
        );
        assert_eq!(expand_vars("cost $$5 $x", env).unwrap(), "cost $5 $x");
        assert!(expand_vars("${NOPE}", env).unwrap_err().contains("NOPE"));
        assert!(expand_vars("${NOPE", env).is_err());
    }

    #[test]
    fn overrides_replace_fields() {
        let text = "[sources.a]\ntype = \"synthetic\"\nstreams = 1\n[sinks.b]\ntype = \"console\"\ninputs = [\"a\"]\n";
        let file = parse(
            text,
            Path::new("x.toml"),
            &["sources.a.streams=3".into(), "sinks.b.path=out/x y".into()],
        )
        .unwrap();
        let a = &file.components.iter().find(|c| c.name == "a").unwrap().fields;
        assert_eq!(a["streams"], Value::Integer(3));
        let b = &file.components.iter().find(|c| c.name == "b").unwrap();
        assert_eq!(b.fields["path"], Value::String("out/x y".into()));
        assert_eq!(b.inputs, vec!["a".to_owned()]);
        let err = parse(text, Path::new("x.toml"), &["sources.zz.streams=3".into()]).unwrap_err();
        assert!(err.to_string().contains("sources.zz"));
    }
}
