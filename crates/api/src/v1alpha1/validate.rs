//! Validation of an `InferenceStack` beyond what the CRD schema enforces.
//!
//! The schema's enums, minimums and patterns hold on every API server, but
//! CEL rules are dropped by old ones (1.20 among them) and a schema cannot
//! relate two fields (the stack name and an application name together form
//! child names). [`validate`] checks all of it, so the operator can report a
//! `Degraded` condition and `flightdeck render` can fail early, both with a
//! field path a user can find in their YAML.
//!
//! A stack that passes comes back as a [`ValidStack`]: the builders take only
//! that, so they never re-check what validation guarantees (a name, a
//! namespace and a uid for owner references).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::application::{
    ApplicationSpec, Device, Engine, Task, DRAIN_TIMEOUT_SECONDS_RANGE, NVIDIA_GPU,
    STARTUP_TIMEOUT_SECONDS_RANGE,
};
use super::gateway::GatewaySpec;
use super::names::{
    is_dns1035_label, is_dns_label, APPLICATION_NAME_MAX_LEN, DNS_LABEL_MAX_LEN,
    LONGEST_APPLICATION_SUFFIX, STACK_NAME_MAX_LEN,
};
use super::spec::{InferenceStack, InferenceStackSpec};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.applications.llama-1b.readerConfig.maxBatchSize`.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl FieldError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A stack that passed [`validate`]: what the builders consume. Only
/// `validate` makes one, so holding one means the name is a valid DNS-1035
/// label of bounded length, the namespace and uid are set, and the spec
/// breaks none of the rules checked here.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidStack {
    name: String,
    namespace: String,
    uid: String,
    spec: InferenceStackSpec,
}

impl ValidStack {
    /// `metadata.name`; every child's name derives from it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.namespace`; every child lives there.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `metadata.uid`, assigned by the API server; owner references point at it.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The validated spec.
    pub fn spec(&self) -> &InferenceStackSpec {
        &self.spec
    }
}

/// Checks the whole stack and returns every problem found (not just the
/// first), in a stable order; or the stack, validated.
pub fn validate(stack: &InferenceStack) -> Result<ValidStack, Vec<FieldError>> {
    let mut errors = Vec::new();
    let metadata = &stack.metadata;
    let stack_name = metadata.name.clone().unwrap_or_default();
    validate_stack_name(&stack_name, &mut errors);
    let namespace = required(
        &mut errors,
        "metadata.namespace",
        "is required: every object of the stack lives in the stack's namespace",
        metadata.namespace.as_deref(),
    );
    let uid = required(
        &mut errors,
        "metadata.uid",
        "is required (the API server assigns it): owner references point at it",
        metadata.uid.as_deref(),
    );
    validate_gateway(&stack.spec.gateway, &mut errors);
    for (name, app) in &stack.spec.applications {
        validate_application(&stack_name, name, app, &mut errors);
    }
    validate_shared_groups(stack, &mut errors);
    validate_shared_models(stack, &mut errors);
    match (namespace, uid) {
        (Some(namespace), Some(uid)) if errors.is_empty() => Ok(ValidStack {
            name: stack_name,
            namespace,
            uid,
            spec: stack.spec.clone(),
        }),
        _ => Err(errors),
    }
}

/// A metadata field that must be set and non-empty; reports it otherwise.
fn required(
    errors: &mut Vec<FieldError>,
    path: &str,
    message: &str,
    value: Option<&str>,
) -> Option<String> {
    match value {
        Some(value) if !value.is_empty() => Some(value.to_owned()),
        _ => {
            errors.push(FieldError::new(path, message));
            None
        }
    }
}

fn validate_stack_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.is_empty() {
        errors.push(FieldError::new("metadata.name", "is required"));
    } else if !is_dns1035_label(name) || name.len() > STACK_NAME_MAX_LEN {
        errors.push(FieldError::new(
            "metadata.name",
            format!(
                "must be a DNS-1035 label (lower-case letter first, then lower-case alphanumerics or '-') \
                 of at most {STACK_NAME_MAX_LEN} characters, so that '<name>-gateway-readers' is a valid Service name"
            ),
        ));
    }
}

fn validate_gateway(gateway: &GatewaySpec, errors: &mut Vec<FieldError>) {
    let path = "spec.gateway";
    min(errors, &format!("{path}.replicas"), gateway.replicas, 0);
    non_empty_opt(errors, &format!("{path}.image"), gateway.image.as_deref());
    if !(1..=65535).contains(&gateway.service.port) {
        errors.push(FieldError::new(
            format!("{path}.service.port"),
            format!("must be between 1 and 65535, got {}", gateway.service.port),
        ));
    }
    if let Some(ingress) = &gateway.ingress {
        if !is_host_name(&ingress.host) {
            errors.push(FieldError::new(
                format!("{path}.ingress.host"),
                format!(
                    "must be a DNS host name such as llm.example.com (a leading '*.' is allowed), got {:?}",
                    ingress.host
                ),
            ));
        }
        non_empty_opt(
            errors,
            &format!("{path}.ingress.className"),
            ingress.class_name.as_deref(),
        );
        if let Some(tls) = &ingress.tls {
            non_empty(
                errors,
                &format!("{path}.ingress.tls.secretName"),
                &tls.secret_name,
            );
        }
    }
    min(
        errors,
        &format!("{path}.queue.maxDepth"),
        gateway.queue.max_depth,
        1,
    );
    min(
        errors,
        &format!("{path}.queue.requestTimeoutSeconds"),
        gateway.queue.request_timeout_seconds,
        1,
    );
    min(
        errors,
        &format!("{path}.queue.maxRedeliveries"),
        gateway.queue.max_redeliveries,
        0,
    );
    if let Some(keys) = &gateway.api_keys {
        non_empty(
            errors,
            &format!("{path}.apiKeys.secretName"),
            &keys.secret_name,
        );
    }
    if let Some(drain) = gateway.drain_timeout_seconds {
        in_range(
            errors,
            &format!("{path}.drainTimeoutSeconds"),
            drain,
            &DRAIN_TIMEOUT_SECONDS_RANGE,
        );
    }
}

fn validate_application(
    stack_name: &str,
    name: &str,
    app: &ApplicationSpec,
    errors: &mut Vec<FieldError>,
) {
    let path = format!("spec.applications.{name}");
    if !is_dns_label(name) || name.len() > APPLICATION_NAME_MAX_LEN {
        errors.push(FieldError::new(
            path.clone(),
            format!(
                "application names must be DNS-1123 labels (lower-case alphanumerics and '-') of at most \
                 {APPLICATION_NAME_MAX_LEN} characters"
            ),
        ));
    } else {
        let longest = stack_name.len() + 1 + name.len() + LONGEST_APPLICATION_SUFFIX.len();
        if longest > DNS_LABEL_MAX_LEN {
            errors.push(FieldError::new(
                path.clone(),
                format!(
                    "stack and application names are too long together: '{stack_name}-{name}{LONGEST_APPLICATION_SUFFIX}' \
                     has {longest} characters, at most {DNS_LABEL_MAX_LEN} are allowed"
                ),
            ));
        }
    }
    non_empty_opt(errors, &format!("{path}.image"), app.image.as_deref());
    min(errors, &format!("{path}.replicas"), app.replicas, 0);

    let mut seen = BTreeSet::new();
    for (index, group) in app.consumer_groups.iter().enumerate() {
        let group_path = format!("{path}.consumerGroups[{index}]");
        if !is_dns_label(group) {
            errors.push(FieldError::new(
                group_path,
                format!("consumer groups must be DNS-1123 labels (lower-case alphanumerics and '-', at most 63 characters), got {group:?}"),
            ));
        } else if !seen.insert(group.as_str()) {
            errors.push(FieldError::new(
                group_path,
                format!("duplicate consumer group {group:?}"),
            ));
        }
    }

    let reader = &app.reader_config;
    let rc = format!("{path}.readerConfig");
    non_empty(errors, &format!("{rc}.modelName"), &reader.model_name);
    non_empty_opt(
        errors,
        &format!("{rc}.servedModelName"),
        reader.served_model_name.as_deref(),
    );
    if !(1..=4096).contains(&reader.max_batch_size) {
        errors.push(FieldError::new(
            format!("{rc}.maxBatchSize"),
            format!("must be between 1 and 4096, got {}", reader.max_batch_size),
        ));
    }
    if let Some(length) = reader.max_sequence_length {
        min(errors, &format!("{rc}.maxSequenceLength"), length, 1);
    }
    if !(1..=64).contains(&reader.tensor_parallel_size) {
        errors.push(FieldError::new(
            format!("{rc}.tensorParallelSize"),
            format!(
                "must be between 1 and 64, got {}",
                reader.tensor_parallel_size
            ),
        ));
    }
    if let Some(quantization) = &reader.quantization {
        let well_formed = quantization
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && quantization
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !well_formed || quantization.len() > 64 {
            errors.push(FieldError::new(
                format!("{rc}.quantization"),
                format!("must be a method name such as awq, gptq or fp8, got {quantization:?}"),
            ));
        } else if app.engine == Engine::Llamacpp {
            errors.push(FieldError::new(
                format!("{rc}.quantization"),
                "llama.cpp reads the quantization from the GGUF file; choose a quantized file in modelName \
                 (e.g. 'repo:Q4_K_M') instead",
            ));
        }
    }
    if reader.tensor_parallel_size > 1
        && (app.engine == Engine::Llamacpp || reader.device == Device::Cpu)
    {
        errors.push(FieldError::new(
            format!("{rc}.tensorParallelSize"),
            "tensor parallelism needs engine vllm, sglang or tgi on device cuda",
        ));
    }
    if reader.device == Device::Cpu
        && matches!(app.engine, Engine::Vllm | Engine::Sglang)
        && app.image.is_none()
    {
        errors.push(FieldError::new(
            format!("{rc}.device"),
            format!(
                "the default {} image is built for CUDA; set spec.applications.{name}.image to a CPU build, \
                 or use engine llamacpp or tgi for CPU",
                app.engine
            ),
        ));
    }
    in_range(
        errors,
        &format!("{rc}.startupTimeoutSeconds"),
        reader.startup_timeout_seconds,
        &STARTUP_TIMEOUT_SECONDS_RANGE,
    );
    if let Some(drain) = reader.drain_timeout_seconds {
        in_range(
            errors,
            &format!("{rc}.drainTimeoutSeconds"),
            drain,
            &DRAIN_TIMEOUT_SECONDS_RANGE,
        );
    }
    if reader.task == Task::Embed && app.engine == Engine::Tgi {
        errors.push(FieldError::new(
            format!("{rc}.task"),
            "TGI has no embeddings endpoint; serve task embed with engine vllm, sglang or llamacpp \
             (or Hugging Face's text-embeddings-inference outside Flightdeck)",
        ));
    }
    if reader.device == Device::Cuda {
        validate_gpus(&path, app, errors);
    }
    if let Some(cache) = &app.model_cache {
        if !is_quantity(&cache.size.0) {
            errors.push(FieldError::new(
                format!("{path}.modelCache.size"),
                format!(
                    "must be a storage quantity such as 20Gi, got {:?}",
                    cache.size.0
                ),
            ));
        }
        non_empty_opt(
            errors,
            &format!("{path}.modelCache.storageClassName"),
            cache.storage_class_name.as_deref(),
        );
    }
}

/// A consumer group is one queue: every reader pulling from it must be able
/// to answer every request in it, so all applications sharing a group must
/// serve the same model name.
fn validate_shared_groups(stack: &InferenceStack, errors: &mut Vec<FieldError>) {
    // group -> (first application using it, the model it serves)
    let mut owners: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for (name, app) in &stack.spec.applications {
        let model = app.reader_config.served_model_name();
        for group in app.effective_consumer_groups(name) {
            match owners.get(&group) {
                Some((first, first_model)) if *first_model != model => errors.push(FieldError::new(
                    format!("spec.applications.{name}.consumerGroups"),
                    format!(
                        "consumer group {group:?} is also used by application {first:?}, which serves model \
                         {first_model:?} (this one serves {model:?}); applications that share a group must \
                         serve the same model"
                    ),
                )),
                Some(_) => {}
                None => {
                    owners.insert(group, (name.as_str(), model));
                }
            }
        }
    }
}

/// GPUs written in `resources` must cover `tensorParallelSize` (the engine
/// fails at start with fewer), be whole numbers, and a request must equal
/// its limit (Kubernetes does not overcommit extended resources; it would
/// refuse the pod, which only the ReplicaSet's events would tell). No GPU at
/// all is fine: the builder requests `tensorParallelSize` of them.
fn validate_gpus(path: &str, app: &ApplicationSpec, errors: &mut Vec<FieldError>) {
    let Some(resources) = &app.resources else {
        return;
    };
    let wanted = i64::from(app.reader_config.tensor_parallel_size);
    let limit = gpu_count(path, "limits", resources.limits.as_ref(), wanted, errors);
    let request = gpu_count(
        path,
        "requests",
        resources.requests.as_ref(),
        wanted,
        errors,
    );
    if let (Some(limit), Some(request)) = (limit, request) {
        if limit != request {
            errors.push(FieldError::new(
                format!("{path}.resources.requests[\"{NVIDIA_GPU}\"]"),
                format!(
                    "must equal the limit ({limit}), got {request}: Kubernetes does not overcommit GPUs"
                ),
            ));
        }
    }
}

/// The `nvidia.com/gpu` entry of one resource list, when present and a
/// whole number; reports it when it is not one, or fewer than `wanted`.
fn gpu_count(
    path: &str,
    list_name: &str,
    list: Option<&BTreeMap<String, Quantity>>,
    wanted: i64,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    let quantity = list?.get(NVIDIA_GPU)?;
    let field = format!("{path}.resources.{list_name}[\"{NVIDIA_GPU}\"]");
    let Some(count) = whole_number(&quantity.0) else {
        errors.push(FieldError::new(
            field,
            format!(
                "must be a whole number of GPUs such as 2, got {:?}",
                quantity.0
            ),
        ));
        return None;
    };
    if count < wanted {
        errors.push(FieldError::new(
            field,
            format!(
                "must be at least readerConfig.tensorParallelSize ({wanted}), got {count}: the engine \
                 splits the model across {wanted} GPUs and fails to start with fewer"
            ),
        ));
    }
    Some(count)
}

/// A plain non-negative integer quantity (`2`, `+2`); GPUs come whole.
fn whole_number(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One served model name is one route in the gateway, with one task: an
/// engine started for embeddings does not generate, and the other way round,
/// so applications that share a name must agree on what it serves.
fn validate_shared_models(stack: &InferenceStack, errors: &mut Vec<FieldError>) {
    // served name -> (first application serving it, its task)
    let mut owners: BTreeMap<&str, (&str, Task)> = BTreeMap::new();
    for (name, app) in &stack.spec.applications {
        let model = app.reader_config.served_model_name();
        let task = app.reader_config.task;
        match owners.get(model) {
            Some((first, first_task)) if *first_task != task => errors.push(FieldError::new(
                format!("spec.applications.{name}.readerConfig.task"),
                format!(
                    "application {first:?} serves model {model:?} with task {}, this one with task {}; \
                     applications serving the same model name must have the same task (give one of \
                     them another servedModelName)",
                    first_task.as_str(),
                    task.as_str()
                ),
            )),
            Some(_) => {}
            None => {
                owners.insert(model, (name.as_str(), task));
            }
        }
    }
}

fn in_range(
    errors: &mut Vec<FieldError>,
    path: &str,
    value: i32,
    range: &std::ops::RangeInclusive<i32>,
) {
    if !range.contains(&value) {
        errors.push(FieldError::new(
            path,
            format!(
                "must be between {} and {}, got {value}",
                range.start(),
                range.end()
            ),
        ));
    }
}

fn min(errors: &mut Vec<FieldError>, path: &str, value: i32, minimum: i32) {
    if value < minimum {
        errors.push(FieldError::new(
            path,
            format!("must be at least {minimum}, got {value}"),
        ));
    }
}

fn non_empty(errors: &mut Vec<FieldError>, path: &str, value: &str) {
    if value.trim().is_empty() {
        errors.push(FieldError::new(path, "must not be empty"));
    }
}

fn non_empty_opt(errors: &mut Vec<FieldError>, path: &str, value: Option<&str>) {
    if let Some(value) = value {
        non_empty(errors, path, value);
    }
}

/// A DNS host name (RFC 1123 subdomain), optionally a `*.` wildcard, as the
/// Ingress API accepts.
fn is_host_name(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty() && host.len() <= 253 && host.split('.').all(is_dns_label)
}

/// A positive Kubernetes quantity: digits with an optional fraction and an
/// optional binary, decimal or exponent suffix (e.g. `20Gi`, `1.5T`, `5e9`).
fn is_quantity(value: &str) -> bool {
    let number_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(number_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.bytes().any(|b| b != b'0' && b != b'.');
    let exponent_ok = |exponent: &str| {
        let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let suffix_ok = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(exponent_ok);
    number_ok && suffix_ok
}

#[cfg(test)]
mod tests;
