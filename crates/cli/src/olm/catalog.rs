//! `flightdeck catalog`: the file-based catalog from the semver template.
//!
//! opm would pull every bundle image the template lists; here nothing can be
//! pulled, and published bundles must never change anyway. So an image that
//! already has an `olm.bundle` in the checked-in catalog keeps that blob
//! byte for byte, and the current bundle (bundle/, `make bundle`) is rendered
//! from its CSV. Any other image is an error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::bundle::CSV_FILE;
use super::files::{self, Generated};
use super::semver_template::{self, Versioned};
use super::{bundle_image, fbc, yaml, OlmError, DEFAULT_IMAGE_REGISTRY};

/// Arguments of `flightdeck catalog`.
#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// The semver template listing every published bundle image.
    #[arg(long, default_value = "catalog/operator_catalog.yaml")]
    pub template: PathBuf,
    /// The current bundle (written by `flightdeck bundle`).
    #[arg(long, default_value = "bundle")]
    pub bundle_dir: PathBuf,
    /// Registry of the current bundle image.
    #[arg(long, env = "IMAGE_REGISTRY", default_value = DEFAULT_IMAGE_REGISTRY)]
    pub image_registry: String,
    /// Image of the current bundle; defaults to
    /// `REGISTRY/flightdeck-operator-bundle:vVERSION`.
    #[arg(long)]
    pub bundle_image: Option<String>,
    /// The rendered catalog; also read for the published bundle blobs.
    #[arg(
        long,
        default_value = "catalog/configs/flightdeck-operator/catalog.yaml"
    )]
    pub output: PathBuf,
    /// Compare with the file on disk instead of writing; fails on drift.
    #[arg(long)]
    pub check: bool,
}

/// Renders the catalog and writes it (or checks it, with `--check`).
pub fn run_catalog(args: &CatalogArgs) -> Result<(), OlmError> {
    let generated = render(args)?;
    files::write_or_check(std::slice::from_ref(&generated), args.check, "make catalog")?;
    if !args.check {
        println!("wrote {}", generated.path.display());
    }
    Ok(())
}

/// The catalog file, rendered in memory.
pub fn render(args: &CatalogArgs) -> Result<Generated, OlmError> {
    let template_doc = yaml::single(&args.template, &files::read(&args.template)?)?;
    let template = semver_template::parse(&args.template, &template_doc)?;
    let published = published_bundles(args)?;
    let current = CurrentBundle::read(args)?;

    let mut blobs_by_image: BTreeMap<String, Value> = BTreeMap::new();
    for image in template.all_images() {
        let blob = if let Some(blob) = published.get(&image) {
            blob.clone()
        } else if image == current.image {
            current.blob.clone()
        } else {
            return Err(OlmError::invalid(
                &args.template,
                format!(
                    "bundle image {image} is neither in the published catalog {} nor the current bundle ({}); \
                     only the current version can be added",
                    args.output.display(),
                    current.image
                ),
            ));
        };
        blobs_by_image.insert(image, blob);
    }

    let mut per_archetype: [Vec<Versioned>; 3] = Default::default();
    for (slot, images) in per_archetype.iter_mut().zip(&template.images) {
        for image in images {
            let blob = &blobs_by_image[image];
            let version = fbc::bundle_version(blob).ok_or_else(|| {
                OlmError::invalid(
                    &args.output,
                    format!("the bundle blob of {image} has no olm.package version"),
                )
            })?;
            let name = yaml::str_at(blob, &["name"])
                .unwrap_or_default()
                .to_string();
            if slot.iter().any(|b| b.name == name) {
                return Err(OlmError::invalid(
                    &args.template,
                    format!("duplicate bundle {name}"),
                ));
            }
            slot.push(Versioned { name, version });
        }
    }
    let package = current.package.clone();
    for blob in blobs_by_image.values() {
        if yaml::str_at(blob, &["package"]) != Some(package.as_str()) {
            return Err(OlmError::invalid(
                &args.template,
                format!(
                    "bundle {} is not of package {package}",
                    yaml::str_at(blob, &["name"]).unwrap_or("?")
                ),
            ));
        }
    }
    if blobs_by_image.is_empty() {
        return Err(OlmError::invalid(
            &args.template,
            "the template lists no bundle",
        ));
    }

    let (channels, default_channel) = semver_template::channels(&template, &per_archetype);
    let mut blobs = vec![fbc::package(
        &package,
        &default_channel,
        current.description.as_deref(),
        current.icon.as_ref(),
    )];
    blobs.extend(channels.iter().map(|c| fbc::channel(&package, c)));
    let mut bundles: Vec<&Value> = blobs_by_image.values().collect();
    bundles.sort_by_key(|b| fbc::bundle_version(b));
    blobs.extend(bundles.into_iter().cloned());

    let header = format!(
        "# Generated by `flightdeck catalog` (make catalog) from {}; do not edit.\n\
         # Published olm.bundle entries are never removed or changed.\n",
        args.template.display()
    );
    Ok(Generated {
        path: args.output.clone(),
        contents: fbc::to_yaml_stream(&header, &blobs)?,
    })
}

/// `olm.bundle` blobs of the checked-in catalog, by image.
fn published_bundles(args: &CatalogArgs) -> Result<BTreeMap<String, Value>, OlmError> {
    let text = match std::fs::read_to_string(&args.output) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(OlmError::Read {
                path: args.output.clone(),
                source,
            })
        }
    };
    Ok(yaml::documents(&args.output, &text)?
        .into_iter()
        .filter(|blob| yaml::str_at(blob, &["schema"]) == Some("olm.bundle"))
        .filter_map(|blob| Some((yaml::str_at(&blob, &["image"])?.to_string(), blob)))
        .collect())
}

/// The bundle in `bundle/`, as a catalog blob.
struct CurrentBundle {
    image: String,
    package: String,
    blob: Value,
    description: Option<String>,
    icon: Option<Value>,
}

impl CurrentBundle {
    fn read(args: &CatalogArgs) -> Result<Self, OlmError> {
        let csv_path = args.bundle_dir.join("manifests").join(CSV_FILE);
        let csv = yaml::single(&csv_path, &files::read(&csv_path)?)?;
        let annotations_path = args.bundle_dir.join("metadata/annotations.yaml");
        let annotations = yaml::single(&annotations_path, &files::read(&annotations_path)?)?;
        let package = annotations
            .pointer("/annotations/operators.operatorframework.io.bundle.package.v1")
            .and_then(Value::as_str)
            .ok_or_else(|| OlmError::invalid(&annotations_path, "no bundle package annotation"))?
            .to_string();
        let name = yaml::str_at(&csv, &["metadata", "name"])
            .ok_or_else(|| OlmError::invalid(&csv_path, "the CSV has no name"))?;
        let raw_version = yaml::str_at(&csv, &["spec", "version"])
            .ok_or_else(|| OlmError::invalid(&csv_path, "the CSV has no spec.version"))?;
        let version = semver::Version::parse(raw_version).map_err(|source| OlmError::Version {
            version: raw_version.to_string(),
            context: csv_path.display().to_string(),
            source,
        })?;
        let image = args
            .bundle_image
            .clone()
            .unwrap_or_else(|| bundle_image(&args.image_registry, &version));

        let crd_entries = ["owned", "required"]
            .iter()
            .filter_map(|list| csv.pointer(&format!("/spec/customresourcedefinitions/{list}")))
            .filter_map(Value::as_array)
            .flatten();
        let mut gvks = Vec::new();
        for crd in crd_entries {
            let field = |f: &str| yaml::str_at(crd, &[f]).unwrap_or_default().to_string();
            let group = field("name")
                .split_once('.')
                .map(|(_, g)| g.to_string())
                .unwrap_or_default();
            gvks.push((group, field("version"), field("kind")));
        }
        gvks.sort();
        gvks.dedup();
        let related: Vec<(String, String)> = csv
            .pointer("/spec/relatedImages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    yaml::str_at(r, &["name"]).unwrap_or_default().to_string(),
                    yaml::str_at(r, &["image"]).unwrap_or_default().to_string(),
                )
            })
            .collect();
        let blob = fbc::bundle(&fbc::BundleFacts {
            name,
            package: &package,
            image: &image,
            version: &version,
            gvks: &gvks,
            related_images: &related,
        });
        let icon = csv.pointer("/spec/icon/0").map(
            |icon| json!({ "base64data": icon["base64data"], "mediatype": icon["mediatype"] }),
        );
        Ok(Self {
            image,
            package,
            blob,
            description: yaml::str_at(&csv, &["metadata", "annotations", "description"])
                .map(str::to_string),
            icon,
        })
    }
}
