//! Field declarations of component types, and checking a component's fields against them.
//! One declaration serves three purposes: validation, defaults, and the generated reference
//! (`ecgflow components`, `docs/components.md`).

use std::collections::BTreeMap;

use toml::{Table, Value};

/// The type and allowed range of a field.
#[derive(Clone, Copy, Debug)]
pub enum FieldType {
    /// A number; bounds are inclusive unless `min_exclusive`.
    Float {
        min: f64,
        max: f64,
        min_exclusive: bool,
    },
    /// An integer within inclusive bounds.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// Free text (paths, names).
    Str,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

/// A field's default, or `Required` when the user must give it.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    Required,
    /// No value unless given (the component decides what absence means).
    Absent,
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(&'static str),
}

/// One field of a component type.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub default: Default,
    pub doc: &'static str,
}

impl FieldSpec {
    /// A float field with inclusive bounds.
    pub const fn float(name: &'static str, min: f64, max: f64, default: Default, doc: &'static str) -> Self {
        FieldSpec {
            name,
            ty: FieldType::Float {
                min,
                max,
                min_exclusive: false,
            },
            default,
            doc,
        }
    }
    /// A float field that must be strictly greater than `min`.
    pub const fn positive(name: &'static str, min: f64, max: f64, default: Default, doc: &'static str) -> Self {
        FieldSpec {
            name,
            ty: FieldType::Float {
                min,
                max,
                min_exclusive: true,
            },
            default,
            doc,
        }
    }
    pub const fn int(name: &'static str, min: i64, max: i64, default: Default, doc: &'static str) -> Self {
        FieldSpec {
            name,
            ty: FieldType::Int { min, max },
            default,
            doc,
        }
    }
    pub const fn boolean(name: &'static str, default: bool, doc: &'static str) -> Self {
        FieldSpec {
            name,
            ty: FieldType::Bool,
            default: Default::Bool(default),
            doc,
        }
    }
    pub const fn string(name: &'static str, default: Default, doc: &'static str) -> Self {
        FieldSpec {
            name,
            ty: FieldType::Str,
            default,
            doc,
        }
    }
    pub const fn choice(
        name: &'static str,
        choices: &'static [&'static str],
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        FieldSpec {
            name,
            ty: FieldType::Choice(choices),
            default: Default::Str(default),
            doc,
        }
    }

    /// The type and range in words, for the reference.
    pub fn describe_type(&self) -> String {
        match self.ty {
            FieldType::Float {
                min,
                max,
                min_exclusive,
            } => {
                let lo = if min_exclusive {
                    format!("> {min}")
                } else {
                    format!(">= {min}")
                };
                if max.is_finite() {
                    format!("number, {lo} and <= {max}")
                } else {
                    format!("number, {lo}")
                }
            }
            FieldType::Int { min, max } if max == i64::MAX => format!("integer, >= {min}"),
            FieldType::Int { min, max } => format!("integer, {min}..={max}"),
            FieldType::Bool => "boolean".to_owned(),
            FieldType::Str => "string".to_owned(),
            FieldType::Choice(c) => format!(
                "one of {}",
                c.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The default in words, for the reference.
    pub fn describe_default(&self) -> String {
        match self.default {
            Default::Required => "required".to_owned(),
            Default::Absent => "none".to_owned(),
            Default::Float(v) => format!("{v}"),
            Default::Int(v) => format!("{v}"),
            Default::Bool(v) => format!("{v}"),
            Default::Str(v) => format!("\"{v}\""),
        }
    }
}

/// A checked field value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(String),
}

/// A component's fields after checking, with defaults filled in.
#[derive(Clone, Debug, PartialEq, std::default::Default)]
pub struct Params {
    values: BTreeMap<&'static str, ParamValue>,
}

impl Params {
    /// The value of a float field. Panics only on a programming error (a field the
    /// component type does not declare), never on user input, which was checked before.
    pub fn f64(&self, name: &str) -> f64 {
        match self.values.get(name) {
            Some(ParamValue::Float(v)) => *v,
            other => panic!("bug: float field {name} read as {other:?}"),
        }
    }
    pub fn i64(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(ParamValue::Int(v)) => *v,
            other => panic!("bug: integer field {name} read as {other:?}"),
        }
    }
    /// An integer field whose declared range is non-negative.
    pub fn usize(&self, name: &str) -> usize {
        usize::try_from(self.i64(name)).unwrap_or(usize::MAX)
    }
    pub fn bool(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(ParamValue::Bool(v)) => *v,
            other => panic!("bug: boolean field {name} read as {other:?}"),
        }
    }
    pub fn str(&self, name: &str) -> &str {
        match self.values.get(name) {
            Some(ParamValue::Str(v)) => v,
            other => panic!("bug: string field {name} read as {other:?}"),
        }
    }
    /// A field declared with `Default::Absent`, if given.
    pub fn opt_str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(ParamValue::Str(v)) => Some(v),
            _ => None,
        }
    }
    pub fn opt_f64(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(ParamValue::Float(v)) => Some(*v),
            _ => None,
        }
    }
}

/// Checks fields against their declarations: unknown fields, missing required ones, wrong
/// types and values out of range are reported as `(field, message)`.
pub fn check_fields(specs: &[FieldSpec], fields: &Table) -> (Params, Vec<(String, String)>) {
    let mut problems = Vec::new();
    for name in fields.keys() {
        if !specs.iter().any(|s| s.name == name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
            let hint = if known.is_empty() {
                "this type has no fields besides type and inputs".to_owned()
            } else {
                format!("known fields: {}", known.join(", "))
            };
            problems.push((name.clone(), format!("unknown field ({hint})")));
        }
    }
    let mut params = Params::default();
    for spec in specs {
        let value = match fields.get(spec.name) {
            Some(v) => v,
            None => {
                let default = match spec.default {
                    Default::Required => {
                        problems.push((spec.name.to_owned(), format!("missing required field ({})", spec.doc)));
                        continue;
                    }
                    Default::Absent => continue,
                    Default::Float(v) => ParamValue::Float(v),
                    Default::Int(v) => ParamValue::Int(v),
                    Default::Bool(v) => ParamValue::Bool(v),
                    Default::Str(v) => ParamValue::Str(v.to_owned()),
                };
                params.values.insert(spec.name, default);
                continue;
            }
        };
        match check_value(spec, value) {
            Ok(v) => {
                params.values.insert(spec.name, v);
            }
            Err(message) => problems.push((spec.name.to_owned(), message)),
        }
    }
    (params, problems)
}

fn check_value(spec: &FieldSpec, value: &Value) -> Result<ParamValue, String> {
    let shown = value.to_string();
    match spec.ty {
        FieldType::Float {
            min,
            max,
            min_exclusive,
        } => {
            let v = match value {
                Value::Float(f) => *f,
                Value::Integer(i) => *i as f64,
                _ => return Err(format!("expected a number, got {shown}")),
            };
            let too_low = if min_exclusive { v <= min } else { v < min };
            if !v.is_finite() || too_low || v > max {
                return Err(format!("{shown} is out of range (expected {})", spec.describe_type()));
            }
            Ok(ParamValue::Float(v))
        }
        FieldType::Int { min, max } => match value {
            Value::Integer(i) if (min..=max).contains(i) => Ok(ParamValue::Int(*i)),
            Value::Integer(_) => Err(format!("{shown} is out of range (expected {})", spec.describe_type())),
            _ => Err(format!("expected an integer, got {shown}")),
        },
        FieldType::Bool => value
            .as_bool()
            .map(ParamValue::Bool)
            .ok_or_else(|| format!("expected true or false, got {shown}")),
        FieldType::Str => match value {
            Value::String(s) => Ok(ParamValue::Str(s.clone())),
            // Lists of names are accepted where a string list makes sense (records, leads).
            Value::Array(items) if items.iter().all(Value::is_str) => Ok(ParamValue::Str(
                items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            )),
            Value::Integer(i) => Ok(ParamValue::Str(i.to_string())),
            _ => Err(format!("expected a string, got {shown}")),
        },
        FieldType::Choice(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => Ok(ParamValue::Str(s.to_owned())),
            _ => Err(format!("{shown} is not one of {}", choices.join(", "))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FieldSpec] = &[
        FieldSpec::positive("low_hz", 0.0, f64::INFINITY, Default::Float(0.5), "low cut-off"),
        FieldSpec::int("before", 0, 100_000, Default::Int(90), "samples before"),
        FieldSpec::choice("mode", &["causal", "zero_phase"], "causal", "filter mode"),
        FieldSpec::string("path", Default::Required, "output path"),
    ];

    #[test]
    fn fills_defaults_and_reports_each_problem() {
        let ok: Table = "path = 'x'".parse().unwrap();
        let (p, problems) = check_fields(SPECS, &ok);
        assert!(problems.is_empty());
        assert_eq!(p.f64("low_hz"), 0.5);
        assert_eq!(p.usize("before"), 90);
        assert_eq!(p.str("mode"), "causal");

        let bad: Table = "low_hz = -1\nbefore = -3\nmode = 'x'\ncolour = 1".parse().unwrap();
        let (_, problems) = check_fields(SPECS, &bad);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["colour", "low_hz", "before", "mode", "path"]);
        assert!(problems[0].1.contains("unknown field"));
        assert!(problems[4].1.contains("missing"));
    }
}
