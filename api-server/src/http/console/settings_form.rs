//! A plugin's settings form, generated from its manifest's JSON Schema, and the settings object read back
//! from the posted form. Pure functions (table-tested below); the page around them is
//! [`super::pages::providers`]. The server's own validation (the same as `PUT /plugins/{id}/config`) decides
//! what is accepted: the form only offers the right control for each property and sends what was typed.

use serde_json::{Map, Value};

/// What kind of control a property gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `boolean`.
    Checkbox,
    /// `integer` (with its bounds, when the schema has them).
    Integer { min: Option<i64>, max: Option<i64> },
    /// `number`.
    Number,
    /// `string` (`nullable`: empty means "not set", i.e. the default).
    Text { nullable: bool },
    /// One of fixed values: `(value, description)`.
    Choice { options: Vec<(String, String)>, nullable: bool },
    /// Anything else (objects, arrays): JSON typed by hand.
    Json,
}

/// One control of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Property name (the form field is `s.<name>`).
    pub name: String,
    /// What the schema says about it (its first paragraph).
    pub help: String,
    /// The control.
    pub kind: Kind,
    /// The current value as the control shows it ("" for none).
    pub value: String,
    /// For a checkbox: whether it is on.
    pub checked: bool,
}

impl Field {
    /// The HTML form field name.
    pub fn input_name(&self) -> String {
        format!("s.{}", self.name)
    }
}

/// `#/$defs/X` in `root`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => root.get("$defs").and_then(|d| d.get(name)).unwrap_or(schema),
        None => schema,
    }
}

/// The property's schema without a `null` alternative, and whether it had one.
fn non_null<'a>(root: &'a Value, property: &'a Value) -> (&'a Value, bool) {
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = property.get(key).and_then(Value::as_array) {
            let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
            if alternatives.iter().any(is_null) {
                let rest: Vec<&Value> = alternatives.iter().filter(|v| !is_null(v)).collect();
                if let [only] = rest.as_slice() {
                    return (resolve(root, only), true);
                }
            }
        }
    }
    let property = resolve(root, property);
    match property.get("type") {
        Some(Value::Array(types)) if types.iter().any(|t| t == "null") => (property, true),
        _ => (property, false),
    }
}

fn primary_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

/// The fixed values of a schema: `enum`, or `oneOf` of `const`s.
fn choices(schema: &Value) -> Option<Vec<(String, String)>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(values.iter().filter_map(Value::as_str).map(|v| (v.to_string(), String::new())).collect());
    }
    let alternatives = schema.get("oneOf").and_then(Value::as_array)?;
    alternatives
        .iter()
        .map(|a| {
            let value = a.get("const")?.as_str()?.to_string();
            Some((value, first_paragraph(a.get("description"))))
        })
        .collect()
}

fn first_paragraph(description: Option<&Value>) -> String {
    let text = description.and_then(Value::as_str).unwrap_or_default();
    text.split("\n\n").next().unwrap_or_default().replace('\n', " ")
}

fn kind_of(root: &Value, property: &Value) -> Kind {
    let (schema, nullable) = non_null(root, property);
    if let Some(options) = choices(schema) {
        return Kind::Choice { options, nullable };
    }
    match primary_type(schema) {
        Some("boolean") => Kind::Checkbox,
        Some("integer") => Kind::Integer {
            min: schema.get("minimum").and_then(Value::as_i64),
            max: schema.get("maximum").and_then(Value::as_i64),
        },
        Some("number") => Kind::Number,
        Some("string") => Kind::Text { nullable },
        _ => Kind::Json,
    }
}

/// The form of a settings schema, filled with `current` (the plugin's settings in the running document),
/// or with the schema's defaults where a setting is absent.
pub fn fields(schema: &Value, current: &Value) -> Vec<Field> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties
        .iter()
        .map(|(name, property)| {
            let kind = kind_of(schema, property);
            let value = current.get(name).or_else(|| property.get("default")).unwrap_or(&Value::Null);
            let shown = match (&kind, value) {
                (_, Value::Null) => String::new(),
                (Kind::Json, v) => v.to_string(),
                (_, Value::String(s)) => s.clone(),
                (_, v) => v.to_string(),
            };
            Field {
                name: name.clone(),
                help: first_paragraph(property.get("description")),
                checked: value.as_bool().unwrap_or(false),
                kind,
                value: shown,
            }
        })
        .collect()
}

/// The settings object a posted form stands for. `value(name)` is the form's value of `s.<name>` (`None`
/// when absent: an unticked checkbox). An empty optional (nullable) field is `null`; another empty field is
/// left out, so the schema's default applies; a value that is not what the property takes is sent as typed
/// (a string), for the server's validation to name.
pub fn settings(form: &[Field], value: impl Fn(&str) -> Option<String>) -> Value {
    let mut settings = Map::new();
    for field in form {
        let raw = value(&field.input_name());
        let typed = match (&field.kind, raw.as_deref().map(str::trim)) {
            (Kind::Checkbox, v) => Some(Value::Bool(v.is_some())),
            // An optional setting emptied on purpose is unset (null), even where its default is not.
            (Kind::Text { nullable: true } | Kind::Choice { nullable: true, .. }, Some("")) => Some(Value::Null),
            (_, None | Some("")) => None,
            (Kind::Integer { .. }, Some(v)) => {
                Some(v.parse::<i64>().map_or_else(|_| Value::String(v.into()), Value::from))
            }
            (Kind::Number, Some(v)) => Some(
                v.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Value::String(v.into()), Value::Number),
            ),
            (Kind::Json, Some(v)) => Some(serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.into()))),
            (Kind::Text { .. } | Kind::Choice { .. }, Some(v)) => Some(Value::String(v.into())),
        };
        if let Some(typed) = typed {
            settings.insert(field.name.clone(), typed);
        }
    }
    Value::Object(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$defs": {"Mode": {"oneOf": [
                {"const": "upload", "description": "Upload it.\n\nMore."},
                {"const": "contentUrl", "description": "A link."}]}},
            "type": "object",
            "properties": {
                "enabledThing": {"type": "boolean", "default": true, "description": "On or off."},
                "latencyMs": {"type": "integer", "minimum": 0, "maximum": 600000, "default": 1000,
                    "description": "Milliseconds.\nSecond line.\n\nDetails."},
                "ratio": {"type": "number"},
                "suffix": {"type": ["string", "null"], "default": "0002"},
                "name": {"type": "string", "default": ""},
                "mode": {"$ref": "#/$defs/Mode", "default": "upload"},
                "maybeMode": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}]},
                "region": {"type": "string", "enum": ["use1", "eu1"]},
                "extra": {"type": "object"}
            }
        })
    }

    #[test]
    fn each_property_gets_its_control() {
        let form = fields(&schema(), &json!({"latencyMs": 5, "maybeMode": "contentUrl"}));
        let by = |n: &str| form.iter().find(|f| f.name == n).unwrap().clone();
        assert_eq!(by("enabledThing").kind, Kind::Checkbox);
        assert!(by("enabledThing").checked, "the default");
        assert_eq!(by("latencyMs").kind, Kind::Integer { min: Some(0), max: Some(600000) });
        assert_eq!(by("latencyMs").value, "5", "the current value over the default");
        assert_eq!(by("latencyMs").help, "Milliseconds. Second line.");
        assert_eq!(by("ratio").kind, Kind::Number);
        assert_eq!(by("suffix").kind, Kind::Text { nullable: true });
        assert_eq!(by("suffix").value, "0002");
        assert_eq!(by("name").kind, Kind::Text { nullable: false });
        let modes = vec![("upload".to_string(), "Upload it.".to_string()), ("contentUrl".into(), "A link.".into())];
        assert_eq!(by("mode").kind, Kind::Choice { options: modes.clone(), nullable: false });
        assert_eq!(by("maybeMode").kind, Kind::Choice { options: modes, nullable: true });
        assert_eq!(by("maybeMode").value, "contentUrl");
        assert_eq!(
            by("region").kind,
            Kind::Choice {
                options: vec![("use1".into(), String::new()), ("eu1".into(), String::new())],
                nullable: false
            }
        );
        assert_eq!(by("extra").kind, Kind::Json);
        assert_eq!(fields(&json!({"type": "object"}), &json!({})), Vec::new());
    }

    #[test]
    fn a_posted_form_becomes_settings_and_bad_values_go_to_the_server_as_typed() {
        let form = fields(&schema(), &json!({}));
        for (posted, want) in [
            (vec![], json!({"enabledThing": false})),
            (vec![("s.enabledThing", "on"), ("s.latencyMs", " 250 ")], json!({"enabledThing": true, "latencyMs": 250})),
            (vec![("s.latencyMs", "soon")], json!({"enabledThing": false, "latencyMs": "soon"})),
            (vec![("s.ratio", "0.5")], json!({"enabledThing": false, "ratio": 0.5})),
            (vec![("s.suffix", ""), ("s.name", "x")], json!({"enabledThing": false, "suffix": null, "name": "x"})),
            (vec![("s.maybeMode", ""), ("s.name", "")], json!({"enabledThing": false, "maybeMode": null})),
            (vec![("s.mode", "contentUrl")], json!({"enabledThing": false, "mode": "contentUrl"})),
            (vec![("s.extra", "{\"a\": 1}")], json!({"enabledThing": false, "extra": {"a": 1}})),
            (vec![("s.extra", "{not json")], json!({"enabledThing": false, "extra": "{not json"})),
        ] {
            let got = settings(&form, |name| posted.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
            assert_eq!(got, want, "{posted:?}");
        }
    }
}
