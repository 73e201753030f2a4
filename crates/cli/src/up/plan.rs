//! What `up` runs, derived from the stack with the operator's own builders.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use flightdeck_api::v1alpha1::{ApplicationSpec, Device, Engine, ValidStack};
use flightdeck_protocol::gateway_config::GatewayConfig;
use flightdeck_protocol::reader_env;

use super::UpError;
use crate::error::CliError;

/// One application as local processes need it.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalApplication {
    pub name: String,
    pub engine: Engine,
    pub device: Device,
    pub model_name: String,
    pub served_model_name: String,
    pub replicas: u32,
    /// The reader container's environment as the operator builds it.
    pub reader_env: Vec<(String, String)>,
    /// The application as the stack wrote it: the operator's engine command
    /// line is built from it.
    pub spec: ApplicationSpec,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LocalPlan {
    pub gateway_config: GatewayConfig,
    pub listen: SocketAddr,
    pub applications: Vec<LocalApplication>,
}

/// Reads and validates the stack exactly as `flightdeck render` does.
pub fn read_stack(path: &Path) -> Result<ValidStack, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let stack = crate::render::parse(path, &text, None)?;
    crate::render::validated(path, &stack)
}

impl LocalPlan {
    pub fn new(stack: &ValidStack, listen: SocketAddr) -> Result<Self, UpError> {
        let gateway_config = flightdeck_build::gateway_config(stack);
        let applications = stack
            .spec()
            .applications
            .iter()
            .map(|(name, app)| {
                let reader_env = flightdeck_build::reader_env(stack, name)
                    .map_err(|err| UpError::Build(err.to_string()))?;
                Ok(LocalApplication {
                    name: name.clone(),
                    engine: app.engine,
                    device: app.reader_config.device,
                    model_name: app.reader_config.model_name.clone(),
                    served_model_name: app.reader_config.served_model_name().to_owned(),
                    replicas: u32::try_from(app.replicas).unwrap_or(0),
                    reader_env,
                    spec: app.clone(),
                })
            })
            .collect::<Result<Vec<_>, UpError>>()?;
        Ok(Self {
            gateway_config,
            listen,
            applications,
        })
    }

    pub fn models(&self) -> Vec<&str> {
        self.gateway_config
            .models
            .keys()
            .map(String::as_str)
            .collect()
    }

    pub fn write_gateway_config(&self, path: &Path) -> Result<(), UpError> {
        let json = serde_json::to_vec_pretty(&self.gateway_config)
            .map_err(|err| UpError::Build(err.to_string()))?;
        std::fs::write(path, json).map_err(|source| UpError::Io {
            context: format!("writing {}", path.display()),
            source,
        })
    }

    pub fn gateway_env(
        &self,
        config: &Path,
        reader_port: u16,
        token: &str,
    ) -> Vec<(String, String)> {
        vec![
            ("FLIGHTDECK_LISTEN".to_owned(), self.listen.to_string()),
            (
                "FLIGHTDECK_READER_LISTEN".to_owned(),
                format!("127.0.0.1:{reader_port}"),
            ),
            (
                "FLIGHTDECK_GATEWAY_CONFIG".to_owned(),
                config.display().to_string(),
            ),
            ("FLIGHTDECK_READER_TOKEN".to_owned(), token.to_owned()),
        ]
    }

    /// The operator's reader environment, with the in-cluster addresses
    /// swapped for this machine's: the replica's own engine port, the local
    /// gateway instead of the headless Service, the token inline.
    pub fn reader_env(
        &self,
        app: &LocalApplication,
        engine_port: u16,
        gateway_reader_port: u16,
        admin_port: u16,
        token: &str,
    ) -> Vec<(String, String)> {
        let local: BTreeSet<&str> = [
            reader_env::GATEWAY_SERVICE,
            reader_env::GATEWAY_URLS,
            reader_env::ENGINE_URL,
            reader_env::READER_TOKEN,
            reader_env::ADMIN_LISTEN,
        ]
        .into_iter()
        .collect();
        let mut env: Vec<(String, String)> = app
            .reader_env
            .iter()
            .filter(|(name, _)| !local.contains(name.as_str()))
            .cloned()
            .collect();
        env.push((
            reader_env::GATEWAY_URLS.to_owned(),
            format!("http://127.0.0.1:{gateway_reader_port}"),
        ));
        env.push((
            reader_env::ENGINE_URL.to_owned(),
            format!("http://127.0.0.1:{engine_port}"),
        ));
        env.push((reader_env::READER_TOKEN.to_owned(), token.to_owned()));
        env.push((
            reader_env::ADMIN_LISTEN.to_owned(),
            format!("127.0.0.1:{admin_port}"),
        ));
        env
    }
}

/// A fresh reader token, as the operator generates one for its Secret.
pub fn random_token() -> Result<String, UpError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|err| UpError::Build(format!("random token: {err}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
