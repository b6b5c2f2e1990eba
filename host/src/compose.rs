//! `wasmhouse compose`: plug the adapter component into a route component so
//! it runs on runtimes without the wasmhouse host (Spin, `wasmtime serve`,
//! `jco serve`). The result imports only standard WASI interfaces and
//! exports `wasi:http/incoming-handler`.

use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, PlugError};

use crate::embedded::ADAPTER_COMPONENT;

/// Why composition failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The input is not a component wac can read.
    #[error("reading the route component: {0:#}")]
    Input(anyhow::Error),
    /// The guest does not import the query interface: nothing to plug.
    #[error(
        "the component does not import wasmhouse:clickhouse/query, so it needs no adapter: \
         it runs on other wasi:http runtimes as it is"
    )]
    NothingToPlug,
    /// Building or encoding the composition failed.
    #[error("composing: {0:#}")]
    Compose(anyhow::Error),
}

/// Plug [`ADAPTER_COMPONENT`] into `guest`; returns the composed component.
pub fn compose(guest: &[u8]) -> Result<Vec<u8>, ComposeError> {
    let mut graph = CompositionGraph::new();
    let guest = Package::from_bytes("wasmhouse:route", None, guest.to_vec(), graph.types_mut())
        .map_err(ComposeError::Input)?;
    let guest = graph
        .register_package(guest)
        .map_err(|err| ComposeError::Input(err.into()))?;
    let adapter = Package::from_bytes(
        "wasmhouse:adapter",
        None,
        ADAPTER_COMPONENT.to_vec(),
        graph.types_mut(),
    )
    .map_err(ComposeError::Compose)?;
    let adapter = graph
        .register_package(adapter)
        .map_err(|err| ComposeError::Compose(err.into()))?;
    match wac_graph::plug(&mut graph, vec![adapter], guest) {
        Ok(()) => {}
        Err(PlugError::NoPlugHappened) => return Err(ComposeError::NothingToPlug),
        Err(PlugError::GraphError { source }) => return Err(ComposeError::Compose(source)),
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|err| ComposeError::Compose(err.into()))
}

/// The names a component imports, in order.
pub fn imports(component: &[u8]) -> Result<Vec<String>, String> {
    top_level_names(component).map(|(imports, _)| imports)
}

/// The names a component exports, in order.
pub fn exports(component: &[u8]) -> Result<Vec<String>, String> {
    top_level_names(component).map(|(_, exports)| exports)
}

/// The outer component's import and export names (not those of the
/// components and modules nested in it).
fn top_level_names(component: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.map_err(|err| err.to_string())? {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => {
                depth += 1;
            }
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import.map_err(|err| err.to_string())?.name.name.to_owned());
                }
            }
            wasmparser::Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.map_err(|err| err.to_string())?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}
