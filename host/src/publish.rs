//! `wasmhouse push`: put a route component in an OCI registry, in the CNCF
//! Wasm OCI format (what `wkg oci push` writes and Spin, wasmCloud and
//! `wasmhouse serve oci://…` read), or point a tag at a component already
//! there (a fleet's rollback).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::registry::{OciReference, Registry, RegistryArgs};

/// What the component must export to serve routes.
const HANDLER_EXPORT: &str = "wasi:http/incoming-handler@";

/// `wasmhouse push SOURCE TARGET`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// A component file (`.wasm`), or a reference already in the registry
    /// (`oci://host/repo@sha256:…` or `oci://host/repo:tag`) to point TARGET
    /// at: moving a tag back is how a following fleet rolls back.
    source: String,
    /// Where to push: `oci://host[:port]/repository:tag`.
    target: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Push as `args` says; prints the pinned reference (`…@sha256:…`) as the
/// last line.
pub fn push(args: &PushArgs) -> anyhow::Result<()> {
    let target = OciReference::parse(&args.target).context("the target")?;
    if target.digest.is_some() {
        anyhow::bail!(
            "the target {} names a digest; push to a tag (oci://host/repository:tag)",
            args.target
        );
    }
    let registry = Registry::new(&args.registry.clone().into_config(None, u64::MAX));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let digest = if OciReference::is_reference(&args.source) {
        let source = OciReference::parse(&args.source).context("the source")?;
        let digest = runtime.block_on(registry.tag(&source, &target))?;
        println!("tagged {source} as {target}");
        digest
    } else {
        let file = PathBuf::from(&args.source);
        let component =
            std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let (imports, exports) = check_component(&component)
            .with_context(|| format!("{} cannot serve routes", file.display()))?;
        let digest = runtime.block_on(registry.push(&component, imports, exports, &target))?;
        println!(
            "pushed {} ({} bytes) to {target}",
            file.display(),
            component.len()
        );
        digest
    };
    println!("{}", target.at(&digest));
    Ok(())
}

/// The imports and exports of `bytes`, if it is a component that exports
/// the HTTP handler (the host checks the rest when it deploys it).
fn check_component(bytes: &[u8]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    if !wasmparser::Parser::is_component(bytes) {
        anyhow::bail!(
            "it is not a WebAssembly component{}",
            if wasmparser::Parser::is_core_wasm(bytes) {
                " (it is a core module: build for wasm32-wasip2, or run `wasm-tools component new`)"
            } else {
                ""
            }
        );
    }
    let imports = crate::compose::imports(bytes).map_err(anyhow::Error::msg)?;
    let exports = crate::compose::exports(bytes).map_err(anyhow::Error::msg)?;
    if !exports
        .iter()
        .any(|export| export.starts_with(HANDLER_EXPORT))
    {
        anyhow::bail!(
            "it does not export wasi:http/incoming-handler (it exports {})",
            if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            }
        );
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_is_not_pushed() {
        let module = wat::parse_str("(module)").unwrap();
        let err = check_component(&module).unwrap_err().to_string();
        assert!(err.contains("core module"), "{err}");
    }

    #[test]
    fn a_component_without_the_handler_is_not_pushed() {
        let component = wat::parse_str("(component)").unwrap();
        let err = check_component(&component).unwrap_err().to_string();
        assert!(err.contains("does not export"), "{err}");
    }

    #[test]
    fn the_builtin_component_is_pushable() {
        let (_, exports) = check_component(crate::BUILTIN_COMPONENT).unwrap();
        assert!(exports.iter().any(|e| e.starts_with(HANDLER_EXPORT)));
    }
}
