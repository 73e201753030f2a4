//! Name limits that keep every derived Kubernetes name valid.
//!
//! The operator names children after the stack (`S-gateway-readers`) and the
//! application (`S-A-model-cache`). Service names and label values may hold at
//! most 63 characters, so the stack and application names are capped such
//! that the longest derived name still fits.

/// A DNS-1123 label: lower-case alphanumerics and '-', alphanumeric at both
/// ends. Consumer groups and application names must match it.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Longest DNS label (and label value) Kubernetes accepts.
pub const DNS_LABEL_MAX_LEN: usize = 63;

/// Longest stack name: `S-gateway-readers` (the headless Service) must stay a
/// 63-character DNS label.
pub const STACK_NAME_MAX_LEN: usize = DNS_LABEL_MAX_LEN - "-gateway-readers".len();

/// Longest application name (the key in `spec.applications`). Together with
/// the stack name it must also leave room for `S-A-model-cache`; that combined
/// limit is checked by [`super::validate()`].
pub const APPLICATION_NAME_MAX_LEN: usize = 40;

/// Suffix of the per-application model cache PVC; the longest per-application
/// name.
pub(crate) const LONGEST_APPLICATION_SUFFIX: &str = "-model-cache";

/// Whether `name` is a DNS-1123 label (RFC 1123), at most 63 characters.
pub(crate) fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= DNS_LABEL_MAX_LEN
        && bytes.iter().all(allowed)
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
}

/// Whether `name` is a DNS-1035 label: a DNS-1123 label that starts with a
/// letter. Service names must be one, and the stack name prefixes them.
pub(crate) fn is_dns1035_label(name: &str) -> bool {
    is_dns_label(name) && name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("llama-1b"));
        assert!(is_dns_label("0abc"));
        assert!(!is_dns_label("Llama"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_label(&"a".repeat(63)));
        assert!(!is_dns1035_label("0abc"));
        assert!(is_dns1035_label("demo"));
    }

    #[test]
    fn limits_leave_room_for_derived_names() {
        assert_eq!(STACK_NAME_MAX_LEN, 47);
        assert_eq!(
            format!("{}-gateway-readers", "s".repeat(STACK_NAME_MAX_LEN)).len(),
            DNS_LABEL_MAX_LEN
        );
    }
}
