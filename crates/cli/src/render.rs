//! `flightdeck render -f stack.yaml`: every object the operator would apply
//! for a stack, as YAML, without a cluster.
//!
//! The stack is validated first (errors name the field path, exit code 1).
//! Objects get a placeholder uid owner so owner references render, and a
//! placeholder reader token: the operator generates the real one.

use std::path::{Path, PathBuf};

use clap::Args;
use flightdeck_api::v1alpha1::{validate, InferenceStack, ValidStack};
use flightdeck_build::{self as build, BuildContext, StackObjects};
use serde::Serialize;

use crate::error::CliError;
use crate::output::print_stdout;

/// The uid rendered objects' owner references point at.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";
/// The reader token rendered into the Secret (the operator generates a
/// random one per stack).
pub const PLACEHOLDER_TOKEN: &str = "rendered-offline-placeholder-token";

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The InferenceStack file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Namespace of the stack; defaults to the file's metadata.namespace,
    /// else `default`.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Gateway image, as the operator's --gateway-image.
    #[arg(long, default_value = build::DEFAULT_GATEWAY_IMAGE)]
    pub gateway_image: String,
    /// Reader image, as the operator's --reader-image.
    #[arg(long, default_value = build::DEFAULT_READER_IMAGE)]
    pub reader_image: String,
}

pub fn run(args: &RenderArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.file).map_err(|source| CliError::Read {
        path: args.file.clone(),
        source,
    })?;
    let stack = parse(&args.file, &text, args.namespace.as_deref())?;
    let ctx = BuildContext {
        gateway_image: args.gateway_image.clone(),
        reader_image: args.reader_image.clone(),
        reader_token: PLACEHOLDER_TOKEN.to_owned(),
    };
    print_stdout(&render(&args.file, &stack, &ctx)?)
}

/// Reads one InferenceStack from `text`, places it in a namespace and gives
/// it the placeholder uid.
pub fn parse(path: &Path, text: &str, namespace: Option<&str>) -> Result<InferenceStack, CliError> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|source| CliError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    if value.is_null() {
        return Err(CliError::Empty {
            path: path.to_path_buf(),
        });
    }
    let kind = value
        .get("kind")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("InferenceStack");
    if kind != "InferenceStack" {
        return Err(CliError::WrongKind {
            path: path.to_path_buf(),
            kind: kind.to_owned(),
        });
    }
    let mut stack: InferenceStack =
        serde_yaml::from_value(value).map_err(|source| CliError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    if let Some(namespace) = namespace {
        stack.metadata.namespace = Some(namespace.to_owned());
    } else if stack.metadata.namespace.is_none() {
        stack.metadata.namespace = Some("default".to_owned());
    }
    stack.metadata.uid = Some(PLACEHOLDER_UID.to_owned());
    Ok(stack)
}

/// Validates the stack read from `path`; the errors name every field path.
pub fn validated(path: &Path, stack: &InferenceStack) -> Result<ValidStack, CliError> {
    validate(stack).map_err(|errors| CliError::Invalid {
        path: path.to_path_buf(),
        name: stack.metadata.name.clone().unwrap_or_default(),
        errors: errors.iter().map(|error| format!("  {error}")).collect(),
    })
}

/// Validates and builds the stack and returns a multi-document YAML stream,
/// in the order the operator applies the objects: what the pods use first
/// (ServiceAccount, Secret, ConfigMap, Services, model caches), then the
/// Deployments, then the Ingress in front of the Service.
pub fn render(path: &Path, stack: &InferenceStack, ctx: &BuildContext) -> Result<String, CliError> {
    let stack = validated(path, stack)?;
    let objects = build::build(&stack, ctx).map_err(|source| CliError::Build {
        name: stack.name().to_owned(),
        source,
    })?;
    let StackObjects {
        service_account,
        reader_token,
        gateway_config,
        gateway_deployment,
        gateway_service,
        gateway_readers_service,
        gateway_ingress,
        applications,
    } = objects;
    let mut out = Documents::default();
    out.push("ServiceAccount", &service_account)?;
    out.push("Secret", &reader_token)?;
    out.push("ConfigMap", &gateway_config)?;
    out.push("Service", &gateway_service)?;
    out.push("Service", &gateway_readers_service)?;
    for claim in applications
        .values()
        .filter_map(|app| app.model_cache.as_ref())
    {
        out.push("PersistentVolumeClaim", claim)?;
    }
    out.push("Deployment", &gateway_deployment)?;
    for application in applications.values() {
        out.push("Deployment", &application.deployment)?;
    }
    if let Some(ingress) = &gateway_ingress {
        out.push("Ingress", ingress)?;
    }
    Ok(out.text)
}

/// A YAML stream with `---` between documents.
#[derive(Default)]
struct Documents {
    text: String,
}

impl Documents {
    fn push<K>(&mut self, what: &str, object: &K) -> Result<(), CliError>
    where
        K: k8s_openapi::Resource + Serialize,
    {
        // k8s-openapi types serialise apiVersion and kind themselves.
        let yaml = serde_yaml::to_string(object).map_err(|source| CliError::Yaml {
            what: what.to_owned(),
            source,
        })?;
        self.text.push_str("---\n");
        self.text.push_str(&yaml);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
