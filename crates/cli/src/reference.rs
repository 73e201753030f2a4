//! `flightdeck reference`: the InferenceStack field reference in Markdown,
//! generated from the CRD's schema, so the README teaches exactly what
//! `kubectl explain` does and cannot drift from the types.

use std::path::PathBuf;

use clap::Args;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

use crate::error::CliError;

#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// Rewrite the generated section of this file.
    #[arg(long, conflicts_with = "check")]
    pub write: bool,
    /// Fail when the generated section of this file is out of date.
    #[arg(long)]
    pub check: bool,
    /// The file holding the generated section.
    #[arg(long, default_value = "README.md")]
    pub readme: PathBuf,
}

pub fn run(args: &ReferenceArgs) -> Result<(), CliError> {
    let reference = markdown(&crate::crd::crd()?);
    if !args.write && !args.check {
        print!("{reference}");
        return Ok(());
    }
    let readme = std::fs::read_to_string(&args.readme).map_err(|source| CliError::Read {
        path: args.readme.clone(),
        source,
    })?;
    let spliced = splice(&readme, &reference).ok_or_else(|| CliError::NoReferenceMarkers {
        path: args.readme.clone(),
        begin: BEGIN_MARKER,
        end: END_MARKER,
    })?;
    if args.check {
        return if spliced == readme {
            Ok(())
        } else {
            Err(CliError::StaleReference {
                path: args.readme.clone(),
            })
        };
    }
    std::fs::write(&args.readme, spliced).map_err(|source| CliError::Write {
        path: args.readme.clone(),
        source,
    })
}

/// Markers between which the README holds the generated reference.
pub const BEGIN_MARKER: &str = "<!-- BEGIN GENERATED: flightdeck reference -->";
pub const END_MARKER: &str = "<!-- END GENERATED: flightdeck reference -->";

/// One Markdown section per served version: a table of every field path.
pub fn markdown(crd: &CustomResourceDefinition) -> String {
    let mut out = String::new();
    for version in &crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            continue;
        };
        out.push_str(&format!(
            "### `{}/{}` {}\n\n",
            crd.spec.group, version.name, crd.spec.names.kind
        ));
        out.push_str("| field | type | description |\n| --- | --- | --- |\n");
        let mut rows = Vec::new();
        for section in ["spec", "status"] {
            if let Some(props) = schema.properties.as_ref().and_then(|p| p.get(section)) {
                walk(section, props, &mut rows);
            }
        }
        for (path, kind, description) in rows {
            out.push_str(&format!("| `{path}` | {kind} | {description} |\n"));
        }
        out.push('\n');
    }
    out
}

fn walk(path: &str, schema: &JSONSchemaProps, rows: &mut Vec<(String, String, String)>) {
    rows.push((path.to_owned(), type_of(schema), describe(schema)));
    // Embedded Kubernetes types (tolerations, affinity, resources) are
    // documented upstream; one row for them keeps the table readable.
    if path.ends_with("affinity")
        || path.ends_with("resources")
        || path.ends_with("tolerations")
        || path.ends_with(".env")
    {
        return;
    }
    if let Some(props) = &schema.properties {
        for (name, child) in props {
            walk(&format!("{path}.{name}"), child, rows);
        }
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = schema.items.as_ref() {
        if item.properties.is_some() {
            walk(&format!("{path}[]"), item, rows);
        }
    }
    if let Some(JSONSchemaPropsOrBool::Schema(value)) = schema.additional_properties.as_ref() {
        if value.properties.is_some() {
            walk(&format!("{path}.<name>"), value, rows);
        }
    }
}

fn type_of(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "int-or-string".to_owned();
    }
    let base = schema.type_.clone().unwrap_or_else(|| "object".to_owned());
    let mut kind = match (
        base.as_str(),
        schema.items.as_ref(),
        schema.additional_properties.as_ref(),
    ) {
        ("array", Some(JSONSchemaPropsOrArray::Schema(item)), _) => {
            format!(
                "[]{}",
                item.type_.clone().unwrap_or_else(|| "object".to_owned())
            )
        }
        ("object", _, Some(JSONSchemaPropsOrBool::Schema(value))) => {
            format!(
                "map[string]{}",
                value.type_.clone().unwrap_or_else(|| "object".to_owned())
            )
        }
        _ => base,
    };
    if let Some(values) = &schema.enum_ {
        let names: Vec<String> = values
            .iter()
            .map(|v| {
                v.0.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.0.to_string())
            })
            .collect();
        kind = format!("{kind} ({})", names.join(" \\| "));
    }
    if let Some(min) = schema.minimum {
        kind = format!("{kind}, ≥ {min}");
    }
    if let Some(max) = schema.maximum {
        kind = format!("{kind}, ≤ {max}");
    }
    kind
}

fn describe(schema: &JSONSchemaProps) -> String {
    let text = schema.description.clone().unwrap_or_default();
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line = line.replace('|', "\\|");
    if let Some(default) = &schema.default {
        line = format!("{line} Default: `{}`.", default.0);
    }
    line.trim().to_owned()
}

/// Replaces the text between the markers in `readme` with `reference`.
pub fn splice(readme: &str, reference: &str) -> Option<String> {
    let start = readme.find(BEGIN_MARKER)? + BEGIN_MARKER.len();
    let end = readme.find(END_MARKER)?;
    if end < start {
        return None;
    }
    Some(format!(
        "{}\n\n{}{}",
        &readme[..start],
        reference,
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_between_markers() {
        let readme = format!("intro\n{BEGIN_MARKER}\nold\n{END_MARKER}\noutro\n");
        let spliced = splice(&readme, "new\n").expect("markers");
        assert!(spliced.starts_with("intro\n"));
        assert!(spliced.contains("new\n"));
        assert!(!spliced.contains("old"));
        assert!(spliced.ends_with(&format!("{END_MARKER}\noutro\n")));
    }

    #[test]
    fn splice_without_markers_is_none() {
        assert!(splice("no markers", "x").is_none());
    }
}
