//! The shapes of a component in a registry: what `wasmhouse push` writes
//! (the CNCF Wasm OCI format `wkg oci push` writes), and which layer of a
//! pulled manifest is the component (that format's, or the single Wasm
//! layer of a Spin application).

use serde::{Deserialize, Serialize};

/// The manifest media type `wasmhouse push` writes.
pub(crate) const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Manifest media types a pull accepts: OCI's, and Docker's v2 (older
/// registries convert to it).
pub(crate) const ACCEPTED_MANIFESTS: [&str; 2] = [
    MANIFEST_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// The CNCF Wasm OCI config.
pub(crate) const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm OCI layer: the component's bytes.
pub(crate) const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer Spin writes for each of an application's components.
pub(crate) const SPIN_WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";

/// An OCI image manifest, as far as a pull reads it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    pub(crate) config: Descriptor,
    pub(crate) layers: Vec<Descriptor>,
}

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

/// The Wasm OCI config: the component's world, for registries and tools
/// that show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
    component: ComponentWorld,
}

#[derive(Debug, Serialize)]
struct ComponentWorld {
    exports: Vec<String>,
    imports: Vec<String>,
    target: Option<String>,
}

/// The manifest of a pushed component, and its config blob.
pub(crate) struct Artifact {
    /// The manifest's bytes, exactly as pushed (their digest is the
    /// component's digest in the registry).
    pub(crate) manifest: Vec<u8>,
    /// The config blob.
    pub(crate) config: Vec<u8>,
    /// The config's digest.
    pub(crate) config_digest: String,
    /// The layer's digest.
    pub(crate) layer_digest: String,
}

/// The Wasm OCI artifact of `component` (a validated component), with the
/// interfaces it imports and exports.
pub(crate) fn artifact(component: &[u8], imports: Vec<String>, exports: Vec<String>) -> Artifact {
    let layer_digest = super::store::sha256_digest(component);
    let config = serde_json::to_vec(&WasmConfig {
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        architecture: "wasm",
        os: "wasip2",
        layer_digests: vec![layer_digest.clone()],
        component: ComponentWorld {
            exports,
            imports,
            target: None,
        },
    })
    .expect("the config serialises");
    let config_digest = super::store::sha256_digest(&config);
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        artifact_type: None,
        config: Descriptor {
            media_type: WASM_CONFIG_MEDIA_TYPE.to_owned(),
            digest: config_digest.clone(),
            size: config.len() as u64,
        },
        layers: vec![Descriptor {
            media_type: WASM_LAYER_MEDIA_TYPE.to_owned(),
            digest: layer_digest.clone(),
            size: component.len() as u64,
        }],
    })
    .expect("the manifest serialises");
    Artifact {
        manifest,
        config,
        config_digest,
        layer_digest,
    }
}

/// The layer of `manifest` that is the component: its one Wasm layer
/// (`application/wasm`, or Spin's Wasm content layer). Anything else — no
/// Wasm layer, several (a Spin application of several components), an
/// image index — is refused with the reason.
pub(crate) fn component_layer(manifest: &[u8]) -> Result<Descriptor, String> {
    let value: serde_json::Value = serde_json::from_slice(manifest)
        .map_err(|err| format!("the manifest is not JSON: {err}"))?;
    if value.get("manifests").is_some() {
        return Err("it is an image index (a list of manifests), not one component".into());
    }
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|err| format!("the manifest is not an OCI image manifest: {err}"))?;
    if manifest.schema_version != 2 {
        return Err(format!(
            "the manifest's schemaVersion is {}, not 2",
            manifest.schema_version
        ));
    }
    let wasm: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|layer| {
            layer.media_type == WASM_LAYER_MEDIA_TYPE
                || layer.media_type == SPIN_WASM_LAYER_MEDIA_TYPE
        })
        .collect();
    match wasm.as_slice() {
        [layer] if super::reference::is_sha256_digest(&layer.digest) => Ok((*layer).clone()),
        [layer] => Err(format!(
            "its Wasm layer's digest {:?} is not sha256",
            layer.digest
        )),
        [] => Err(format!(
            "it has no Wasm layer (media types: {}); push a component with `wasmhouse push` or `wkg oci push`",
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        several => Err(format!(
            "it has {} Wasm layers (an application of several components); a route serves one",
            several.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_artifact_is_the_wasm_oci_format_and_reads_back() {
        let artifact = artifact(
            b"\0asm component",
            vec!["wasi:io/streams@0.2.6".into()],
            vec!["wasi:http/incoming-handler@0.2.6".into()],
        );
        let manifest: serde_json::Value = serde_json::from_slice(&artifact.manifest).expect("json");
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(
            manifest["config"]["digest"],
            artifact.config_digest.as_str()
        );
        assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["size"], 14);
        let config: serde_json::Value = serde_json::from_slice(&artifact.config).expect("json");
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["layerDigests"][0], artifact.layer_digest.as_str());
        assert_eq!(config["component"]["imports"][0], "wasi:io/streams@0.2.6");
        let layer = component_layer(&artifact.manifest).expect("its own layer");
        assert_eq!(layer.digest, artifact.layer_digest);
    }

    #[test]
    fn only_one_wasm_layer_is_a_component() {
        let digest = |n: u8| format!("sha256:{}", format!("{n:02x}").repeat(32));
        let manifest = |layers: &[(&str, u8)]| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "config": {"mediaType": "application/vnd.fermyon.spin.application.v1+config", "digest": digest(0), "size": 2},
                "layers": layers.iter().map(|(media, n)| serde_json::json!({"mediaType": media, "digest": digest(*n), "size": 1})).collect::<Vec<_>>(),
            }))
            .expect("json")
        };
        let spin = manifest(&[
            (SPIN_WASM_LAYER_MEDIA_TYPE, 1),
            ("application/vnd.wasm.content.layer.v1+data", 2),
        ]);
        assert_eq!(
            component_layer(&spin).expect("one wasm layer").digest,
            digest(1)
        );
        let two = manifest(&[
            (SPIN_WASM_LAYER_MEDIA_TYPE, 1),
            (SPIN_WASM_LAYER_MEDIA_TYPE, 2),
        ]);
        assert!(
            component_layer(&two)
                .expect_err("two")
                .contains("2 Wasm layers")
        );
        let image = manifest(&[("application/vnd.oci.image.layer.v1.tar+gzip", 1)]);
        assert!(
            component_layer(&image)
                .expect_err("image")
                .contains("no Wasm layer")
        );
        assert!(
            component_layer(b"{\"manifests\": []}")
                .expect_err("index")
                .contains("image index")
        );
        assert!(
            component_layer(b"<html>")
                .expect_err("garbage")
                .contains("not JSON")
        );
    }
}
