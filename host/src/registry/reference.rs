//! `oci://registry/repository:tag` and `oci://registry/repository@sha256:…`,
//! the way components are named in a registry.

use std::fmt;

/// The scheme a component reference starts with.
pub(crate) const SCHEME: &str = "oci://";

/// A component in an OCI registry: by tag (which may move), by digest
/// (which never does), or both (the digest wins; the tag is a label).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OciReference {
    /// `host` or `host:port`, always given: no registry is implied.
    pub(crate) registry: String,
    /// `org/app`: lowercase path components.
    pub(crate) repository: String,
    /// The tag, when named by one.
    pub(crate) tag: Option<String>,
    /// `sha256:` and 64 lowercase hex digits, when pinned.
    pub(crate) digest: Option<String>,
}

/// Why text is not a component reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not an OCI reference ({why}); write oci://HOST[:PORT]/REPOSITORY:TAG or oci://HOST[:PORT]/REPOSITORY@sha256:DIGEST"
)]
pub(crate) struct ReferenceError {
    text: String,
    why: &'static str,
}

impl OciReference {
    /// Parse `oci://…`; the registry host is required.
    pub(crate) fn parse(text: &str) -> Result<Self, ReferenceError> {
        let fail = |why| ReferenceError {
            text: text.to_owned(),
            why,
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| fail("it does not start with oci://"))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => {
                if !is_sha256_digest(digest) {
                    return Err(fail(
                        "the digest is not sha256: and 64 lowercase hex digits",
                    ));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| fail("it names no repository"))?;
        if registry.is_empty()
            || !registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err(fail("the registry is not a host or host:port"));
        }
        // A tag follows the last `:` of the last path component (a port
        // belongs to the registry, before the first `/`).
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_owned())),
            _ => (path, None),
        };
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                return Err(fail(
                    "the tag may use letters, digits, '_', '.' and '-' (128 at most)",
                ));
            }
        }
        let valid_repository = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !valid_repository {
            return Err(fail(
                "the repository is lowercase letters, digits and . _ - between slashes",
            ));
        }
        if tag.is_none() && digest.is_none() {
            return Err(fail("it names neither a tag nor a digest"));
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// Whether `text` is meant as an OCI reference (it may still be a bad one).
    pub(crate) fn is_reference(text: &str) -> bool {
        text.trim_start().starts_with(SCHEME)
    }

    /// The same component pinned to `digest`.
    pub(crate) fn at(&self, digest: &str) -> Self {
        Self {
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// `registry/repository:tag`, without a digest: the name a tag is
    /// remembered under.
    pub(crate) fn tag_name(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|tag| format!("{}/{}:{tag}", self.registry, self.repository))
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:` followed by 64 lowercase hex digits.
pub(crate) fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn tags_digests_and_ports_are_told_apart() {
        let by_tag = OciReference::parse("oci://127.0.0.1:5000/team/reports:v2").expect("tag");
        assert_eq!(by_tag.registry, "127.0.0.1:5000");
        assert_eq!(by_tag.repository, "team/reports");
        assert_eq!(by_tag.tag.as_deref(), Some("v2"));
        assert_eq!(by_tag.digest, None);
        assert_eq!(by_tag.to_string(), "oci://127.0.0.1:5000/team/reports:v2");
        assert_eq!(
            by_tag.tag_name().as_deref(),
            Some("127.0.0.1:5000/team/reports:v2")
        );

        let pinned =
            OciReference::parse(&format!("oci://ghcr.io/acme/app@{DIGEST}")).expect("digest");
        assert_eq!(
            (pinned.tag.as_deref(), pinned.digest.as_deref()),
            (None, Some(DIGEST))
        );

        let both =
            OciReference::parse(&format!("oci://ghcr.io/acme/app:v1@{DIGEST}")).expect("both");
        assert_eq!(both.tag.as_deref(), Some("v1"));
        assert_eq!(both.digest.as_deref(), Some(DIGEST));
        assert_eq!(
            by_tag.at(DIGEST).to_string(),
            format!("oci://127.0.0.1:5000/team/reports:v2@{DIGEST}")
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (text, why) in [
            ("ghcr.io/acme/app:v1", "oci://"),
            ("oci://ghcr.io", "no repository"),
            ("oci://ghcr.io/acme/app", "neither a tag nor a digest"),
            ("oci://ghcr.io/Acme/app:v1", "lowercase"),
            ("oci://ghcr.io/acme//app:v1", "lowercase"),
            ("oci://ghcr.io/acme/app:", "the tag"),
            ("oci://ghcr.io/acme/app:v1@sha256:abc", "digest"),
            ("oci://ghcr.io/acme/app@md5:0123", "digest"),
            ("oci:///acme/app:v1", "registry"),
            ("oci://user@ghcr.io/acme/app:v1", "digest"),
        ] {
            let err = OciReference::parse(text).expect_err(text).to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    proptest::proptest! {
        /// Whatever follows the scheme, parsing answers; what parses prints
        /// back to itself.
        #[test]
        fn parsing_is_total_and_round_trips(text in "oci://[a-z0-9.:/@_-]{0,80}") {
            if let Ok(reference) = OciReference::parse(&text) {
                proptest::prop_assert_eq!(reference.to_string(), text);
            }
        }
    }
}
