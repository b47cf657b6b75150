//! The configuration reference (`docs/configuration.md`), generated from the settings structs (their
//! doc comments and `Default`) and from the topic key table, so it cannot drift from the code.

use crate::settings::Settings;

/// The source the broker settings are declared in; its doc comments are the reference's text.
const SETTINGS_SOURCE: &str = include_str!("settings.rs");

/// One documented field of a settings struct.
#[derive(Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub doc: String,
}

/// The fields of `pub struct <name>` in `source`, each with its `///` comment joined into one line.
pub fn fields(source: &str, name: &str) -> Vec<Field> {
    let start = format!("pub struct {name} {{");
    let mut out = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    let mut inside = false;
    for line in source.lines().map(str::trim) {
        if !inside {
            inside = line == start;
            continue;
        }
        if line == "}" {
            break;
        }
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim());
        } else if let Some((field, _)) = line.strip_prefix("pub ").and_then(|l| l.split_once(':')) {
            out.push(Field { name: field.trim().to_string(), doc: doc.join(" ") });
            doc.clear();
        }
    }
    out
}

fn default_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "unset".into(),
        Some(serde_json::Value::String(s)) => format!("`{s}`"),
        Some(other) => format!("`{other}`"),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The whole reference as Markdown.
pub fn markdown() -> String {
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the code by `floe config reference` (a test fails when this file and the code differ).\n\n\
         ## Broker settings (`floe serve`)\n\n\
         Each setting comes from, in order (later wins): its default, the TOML file given to `--config`, \
         the environment variable `FLOE_<KEY>` (`FLOE_STORAGE__<KEY>` for `[storage]`, `FLOE_TLS__<KEY>` for `[tls]`), then a command-line flag \
         (`floe serve --help`). Durations take units (`250ms`, `5s`, `1h`), sizes too (`64MiB`, `2GiB`).\n\n\
         | key | environment | default | meaning |\n| --- | --- | --- | --- |\n",
    );
    const TABLES: [(&str, &str, &str); 2] = [("storage", "StorageSettings", "the storage engine"), ("tls", "TlsSettings", "TLS of the Kafka listeners")];
    for f in fields(SETTINGS_SOURCE, "Settings").iter().filter(|f| !TABLES.iter().any(|(t, _, _)| *t == f.name)) {
        out += &format!("| `{}` | `FLOE_{}` | {} | {} |\n", f.name, f.name.to_uppercase(), default_text(defaults.get(&f.name)), cell(&f.doc));
    }
    for (table, ty, what) in TABLES {
        out += &format!("\n### `[{table}]`: {what}\n\n| key | environment | default | meaning |\n| --- | --- | --- | --- |\n");
        let values = defaults.get(table);
        for f in fields(SETTINGS_SOURCE, ty) {
            out += &format!(
                "| `{}` | `FLOE_{}__{}` | {} | {} |\n",
                f.name,
                table.to_uppercase(),
                f.name.to_uppercase(),
                default_text(values.and_then(|s| s.get(&f.name))),
                cell(&f.doc)
            );
        }
    }
    out += "\n## Topic configs\n\n\
            Set at create time (`floe topic create --config k=v`, any Kafka admin client) or live with \
            IncrementalAlterConfigs (`floe topic alter`). Unknown keys and bad values are refused with INVALID_CONFIG.\n\n\
            | key | default | values | meaning |\n| --- | --- | --- | --- |\n";
    for (name, default, values, doc) in crate::topic_config::reference() {
        out += &format!("| `{name}` | {} | {} | {} |\n", default.map_or("unset".into(), |d| format!("`{d}`")), cell(&values), cell(doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_documented_and_every_documented_field_is_a_setting() {
        let defaults = serde_json::to_value(Settings::default()).expect("json");
        let top = fields(SETTINGS_SOURCE, "Settings");
        let keys: Vec<&String> = defaults.as_object().expect("object").keys().collect();
        assert_eq!(top.len(), keys.len(), "the parser sees every field of Settings");
        for f in &top {
            assert!(defaults.get(&f.name).is_some(), "{} is not a setting", f.name);
            assert!(!f.doc.is_empty(), "the setting {} has no doc comment", f.name);
        }
        for (table, ty) in [("storage", "StorageSettings"), ("tls", "TlsSettings")] {
            let fs = fields(SETTINGS_SOURCE, ty);
            assert_eq!(fs.len(), defaults[table].as_object().map_or(0, |o| o.len()), "the parser sees every field of {ty}");
            for f in fs {
                assert!(defaults[table].get(&f.name).is_some(), "{table}.{} is not a setting", f.name);
                assert!(!f.doc.is_empty(), "the setting {table}.{} has no doc comment", f.name);
            }
        }
    }

    #[test]
    fn docs_configuration_md_is_what_the_code_generates() {
        // The crate's directory at run time, not as compiled (a shared target dir may hold a
        // binary built in another clone).
        let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = format!("{crate_dir}/../docs/configuration.md");
        let path = path.as_str();
        let want = markdown();
        if std::env::var_os("FLOE_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write");
        }
        let got = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            got == want,
            "docs/configuration.md is stale: run `cargo run --bin floe -- config reference > docs/configuration.md` (or FLOE_UPDATE_DOCS=1 cargo test)"
        );
    }

    #[test]
    fn doc_comments_split_across_lines_become_one_line() {
        let src = "pub struct S {\n    /// One\n    /// two.\n    pub a: u32,\n    pub b: Option<String>,\n}\n";
        assert_eq!(fields(src, "S"), vec![Field { name: "a".into(), doc: "One two.".into() }, Field { name: "b".into(), doc: String::new() }]);
    }
}
