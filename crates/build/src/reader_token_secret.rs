//! `S-reader-token`: the token readers present to the gateway's pull API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

use crate::labels::Component;
use crate::meta::StackRef;
use crate::names;

/// The Secret holding `token` under key `token`. The reconciler passes the
/// token already stored (so applying never rotates it) or a fresh one.
pub fn reader_token_secret(owner: &StackRef, token: &str) -> Secret {
    Secret {
        metadata: owner.metadata(
            names::reader_token_secret(&owner.name),
            Component::Config,
            None,
        ),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            names::READER_TOKEN_KEY.to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}
