//! A checker for the JSON Schema subset openapi.yaml uses (`$ref`, `allOf`, `type`, `nullable`,
//! `enum`, `properties`, `required`, `items`, `minimum`, `maximum`, `minLength`, `maxLength`, and
//! `pattern` as one character class: `[^...]` or `^[...]+$`). It refuses any other keyword rather than ignore
//! it ([`assert_understood`]), and reads objects closed: a property the schema does not declare
//! is an error.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Keywords the checker implements, or that only annotate.
pub const KEYWORDS: &[&str] = &[
    "$ref",
    "allOf",
    "type",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "description",
    "default",
];

/// Validates JSON values against the schemas of one OpenAPI document.
pub struct Checker<'a> {
    doc: &'a Value,
}

impl<'a> Checker<'a> {
    /// A checker for the schemas of `doc` (an OpenAPI document: `$ref`s point into
    /// `#/components/schemas/`).
    pub fn new(doc: &'a Value) -> Checker<'a> {
        Checker { doc }
    }

    /// Follows `$ref`s to `#/components/schemas/...`.
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                assert_eq!(schema.as_object().unwrap().len(), 1, "$ref with siblings");
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("$ref {r} outside components/schemas"));
                let target = &self.doc["components"]["schemas"][name];
                assert!(target.is_object(), "$ref to missing schema {name}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Where `value` breaks `schema`, read as JSON Schema (objects open).
    pub fn errors(&self, schema: &'a Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "$", &mut out);
        out
    }

    fn check(&self, schema: &'a Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let s = schema.as_object().expect("a schema is an object");
        for k in s.keys() {
            assert!(
                KEYWORDS.contains(&k.as_str()),
                "the checker does not implement {k:?}"
            );
        }
        if value.is_null() && s.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(sub, value, at, out);
        }
        if let Some(t) = s.get("type") {
            let ok = match t.as_str().expect("type is one name (OpenAPI 3.0)") {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                other => panic!("unknown type {other}"),
            };
            if !ok {
                out.push(format!("{at}: {value} is not of type {t}"));
                return;
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(value)
        {
            out.push(format!("{at}: {value} is not one of {e:?}"));
        }
        if let Some(text) = value.as_str() {
            let chars = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && chars < min
            {
                out.push(format!("{at}: {chars} characters, fewer than {min}"));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && chars > max
            {
                out.push(format!("{at}: {chars} characters, more than {max}"));
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && !pattern_matches(p, text)
            {
                out.push(format!("{at}: {text:?} does not match {p}"));
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                out.push(format!("{at}: {n} < {min}"));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                out.push(format!("{at}: {n} > {max}"));
            }
        }
        if let Some(o) = value.as_object() {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !o.contains_key(r) {
                    out.push(format!("{at}: no {r:?}"));
                }
            }
            for (k, sub) in s
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(v) = o.get(k) {
                    self.check(sub, v, &format!("{at}.{k}"), out);
                }
            }
        }
        if let (Some(items), Some(a)) = (s.get("items"), value.as_array()) {
            for (i, v) in a.iter().enumerate() {
                self.check(items, v, &format!("{at}[{i}]"), out);
            }
        }
    }

    /// The property schemas a schema declares, through `$ref` and `allOf`; `None` when it says
    /// nothing about objects (any value).
    fn declared(&self, schema: &'a Value) -> Option<BTreeMap<&'a str, Vec<&'a Value>>> {
        let s = self.resolve(schema);
        let mut props: Option<BTreeMap<&str, Vec<&Value>>> = None;
        if s.get("type") == Some(&json!("object")) || s.get("properties").is_some() {
            props.get_or_insert_default();
        }
        for (k, sub) in s
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            props
                .get_or_insert_default()
                .entry(k)
                .or_default()
                .push(sub);
        }
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (k, subs) in self.declared(sub).into_iter().flatten() {
                props
                    .get_or_insert_default()
                    .entry(k)
                    .or_default()
                    .extend(subs);
            }
        }
        props
    }

    /// Properties in `value` that its schema does not declare (answers are read closed).
    pub fn undeclared(&self, schema: &'a Value, value: &Value, at: &str, out: &mut Vec<String>) {
        if let (Some(items), Some(a)) = (self.resolve(schema).get("items"), value.as_array()) {
            for (i, v) in a.iter().enumerate() {
                self.undeclared(items, v, &format!("{at}[{i}]"), out);
            }
        }
        let (Some(o), Some(props)) = (value.as_object(), self.declared(schema)) else {
            return;
        };
        for (k, v) in o {
            match props.get(k.as_str()) {
                None => out.push(format!("{at}: property {k:?} is not in the schema")),
                Some(subs) => {
                    for sub in subs {
                        self.undeclared(sub, v, &format!("{at}.{k}"), out);
                    }
                }
            }
        }
    }
}

/// Asserts `schema` and its subschemas use only keywords the checker implements.
pub fn assert_understood(schema: &Value, at: &str) {
    let s = schema
        .as_object()
        .unwrap_or_else(|| panic!("{at}: a schema is an object"));
    for (k, v) in s {
        assert!(
            KEYWORDS.contains(&k.as_str()),
            "{at}: the checker does not implement {k:?}"
        );
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().unwrap() {
                    assert_understood(sub, &format!("{at}.{name}"));
                }
            }
            "items" => assert_understood(v, &format!("{at}[]")),
            "allOf" => {
                for (i, sub) in v.as_array().unwrap().iter().enumerate() {
                    assert_understood(sub, &format!("{at}/allOf/{i}"));
                }
            }
            _ => {}
        }
    }
}

/// The characters a pattern of the form `[^...]` excludes (inclusive ranges): the pattern matches
/// a string holding any other character.
pub fn negated_class(pattern: &str) -> Vec<(char, char)> {
    let inner = pattern
        .strip_prefix("[^")
        .and_then(|p| p.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a [^...] pattern: {pattern}"));
    class_ranges(inner, pattern)
}

/// The characters a pattern of the form `^[...]+$` allows (inclusive ranges): the pattern
/// matches a non-empty string made only of them.
pub fn anchored_class(pattern: &str) -> Vec<(char, char)> {
    let inner = pattern
        .strip_prefix("^[")
        .and_then(|p| p.strip_suffix("]+$"))
        .unwrap_or_else(|| panic!("not a ^[...]+$ pattern: {pattern}"));
    class_ranges(inner, pattern)
}

/// The ranges of a character class's inside (`a-z`, single characters, `\t \n \f \r \xHH
/// \uHHHH` escapes).
fn class_ranges(inner: &str, pattern: &str) -> Vec<(char, char)> {
    let mut chars = inner.chars().peekable();
    let atom = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> char {
        let c = chars.next().unwrap();
        if c != '\\' {
            assert!(
                c != '[' && c != ']' && c != '^',
                "unescaped {c} in {pattern}"
            );
            return c;
        }
        let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
            let digits: String = chars.by_ref().take(n).collect();
            char::from_u32(u32::from_str_radix(&digits, 16).unwrap()).unwrap()
        };
        match chars.next().unwrap() {
            't' => '\t',
            'n' => '\n',
            'f' => '\x0C',
            'r' => '\r',
            'x' => hex(chars, 2),
            'u' => hex(chars, 4),
            other => panic!("escape \\{other} in {pattern}"),
        }
    };
    let mut ranges = Vec::new();
    while chars.peek().is_some() {
        let lo = atom(&mut chars);
        let hi = if chars.peek() == Some(&'-') {
            chars.next();
            atom(&mut chars)
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
    ranges
}

/// Whether `text` matches `pattern`, one of the two forms the spec uses: `[^...]` (holds a
/// character outside the class) or `^[...]+$` (only characters of the class, at least one).
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let within =
        |ranges: &[(char, char)], c: char| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c));
    if pattern.starts_with("[^") {
        let excluded = negated_class(pattern);
        text.chars().any(|c| !within(&excluded, c))
    } else {
        let allowed = anchored_class(pattern);
        !text.is_empty() && text.chars().all(|c| within(&allowed, c))
    }
}
