//! Pinning the project's own image references to one registry and version.
//!
//! `config/manager` names the operator, gateway and reader images with the
//! default registry and the current version; the bundle must name the images
//! of the version being released, in the registry being released to.

/// Images this project builds; only references to these are rewritten, so a
/// user's own images in `config/` are left alone.
const OWN_IMAGES: [&str; 3] = [
    "flightdeck-operator",
    "flightdeck-gateway",
    "flightdeck-reader",
];

/// `value` with a reference to one of our images replaced by
/// `{registry}/{image}:{version}`. Handles a bare reference and a
/// `--flag=reference` argument; anything else comes back unchanged.
pub fn pin(value: &str, registry: &str, version: &str) -> String {
    let (prefix, reference) = match value.split_once('=') {
        Some((flag, rest)) if flag.starts_with("--") => (format!("{flag}="), rest),
        _ => (String::new(), value),
    };
    match own_image_name(reference) {
        Some(name) => format!("{prefix}{registry}/{name}:{version}"),
        None => value.to_string(),
    }
}

/// The image name (last path segment, without tag or digest) when
/// `reference` is one of [`OWN_IMAGES`].
pub fn own_image_name(reference: &str) -> Option<&'static str> {
    if reference.contains(char::is_whitespace) || !reference.contains('/') {
        return None;
    }
    let last = reference.rsplit('/').next()?;
    let name = last.split(['@', ':']).next()?;
    OWN_IMAGES.iter().copied().find(|own| *own == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_bare_references_and_flag_values() {
        assert_eq!(
            pin(
                "ghcr.io/flightdeck-dev/flightdeck-operator:0.1.0",
                "r.example/x",
                "1.2.3"
            ),
            "r.example/x/flightdeck-operator:1.2.3"
        );
        assert_eq!(
            pin(
                "--reader-image=ghcr.io/flightdeck-dev/flightdeck-reader@sha256:ab",
                "r",
                "2.0.0"
            ),
            "--reader-image=r/flightdeck-reader:2.0.0"
        );
    }

    #[test]
    fn leaves_other_values_alone() {
        for value in [
            "--admin-listen=0.0.0.0:8080",
            "docker.io/vllm/vllm-openai:v0.6.0",
            "flightdeck-operator",
            "--watches=/etc/flightdeck/watches.yaml",
        ] {
            assert_eq!(pin(value, "r", "1.0.0"), value);
        }
    }
}
