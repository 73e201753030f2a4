//! OLM v1 packaging: `flightdeck bundle` writes the registry+v1 bundle
//! (ClusterServiceVersion, annotations, bundle Dockerfile) from `config/`, and
//! `flightdeck catalog` renders the file-based catalog from the semver
//! template. `opm` is not available where the project is built, so both
//! renderers are ours; they follow the published formats and are checked by
//! `tests/packaging/run.sh`.

mod annotations;
mod bundle;
mod catalog;
mod csv;
mod error;
mod fbc;
mod files;
mod images;
mod kustomize;
mod semver_template;
mod yaml;

pub use bundle::{run_bundle, BundleArgs};
pub use catalog::{run_catalog, CatalogArgs};
pub use error::OlmError;

/// The OLM package name of the operator: the bundle annotations, the CSV name
/// prefix and every catalog blob use it.
pub const PACKAGE_NAME: &str = "flightdeck-operator";

/// Where the project's images are published unless `--image-registry` says
/// otherwise (the Makefile's `IMAGE_REGISTRY`).
pub const DEFAULT_IMAGE_REGISTRY: &str = "ghcr.io/flightdeck-dev";

/// The bundle image of `version` in `registry`; the semver template lists
/// images of this form.
pub fn bundle_image(registry: &str, version: &semver::Version) -> String {
    format!("{registry}/{PACKAGE_NAME}-bundle:v{version}")
}
