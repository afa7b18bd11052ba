//! `SchemaDocuments`: the `agent_schema_version` document of a client's registry, built and
//! serialized once and shared by every instance registration.
//!
//! Every register request carries the document (both reference SDKs send it each time).
//! Building it from the registry clones every schema, sorts them and hashes the canonical form
//! for its identifier; serializing it is a few kilobytes of JSON. The reference SDKs pay that for
//! each agent run; here it is paid once per client and identifier, and a queued register holds a
//! shared, already serialized copy that the worker copies into the request body.

use std::sync::{Arc, Mutex, PoisonError};

use prefactor_protocol::AgentSchemaVersion;
use serde_json::value::RawValue;

use crate::schema::registry::SchemaRegistry;

/// The last document made from the client's registry, with the identifier it was asked for.
#[derive(Default)]
pub(crate) struct SchemaDocuments {
    last: Mutex<Option<(Option<String>, Arc<RawValue>)>>,
}

impl SchemaDocuments {
    /// The serialized document of `registry` under `external_identifier` (`None`: the content
    /// hash), made on the first call for that identifier. `registry` must be the client's final
    /// registry (it no longer changes once the client is initialized).
    pub(crate) fn of_registry(
        &self,
        registry: &SchemaRegistry,
        external_identifier: Option<&str>,
    ) -> Option<Arc<RawValue>> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((identifier, document)) = &*last
            && identifier.as_deref() == external_identifier
        {
            return Some(document.clone());
        }
        let document = serialized(&registry.to_agent_schema_version(external_identifier))?;
        *last = Some((external_identifier.map(str::to_owned), document.clone()));
        Some(document)
    }
}

/// `document` as JSON text; `None` (logged) if it cannot be serialized.
pub(crate) fn serialized(document: &AgentSchemaVersion) -> Option<Arc<RawValue>> {
    match serde_json::value::to_raw_value(document) {
        Ok(raw) => Some(Arc::from(raw)),
        Err(err) => {
            tracing::warn!(error = %err, "prefactor: the agent_schema_version document could not be serialized");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::span_type::SpanType;
    use serde_json::json;

    fn registry() -> SchemaRegistry {
        let mut registry = SchemaRegistry::new();
        registry
            .register_type(
                SpanType::new("agent:llm", json!({"type": "object"})).result_schema(json!({"type": "object"})),
            )
            .unwrap();
        registry
    }

    #[test]
    fn the_document_is_made_once_per_identifier() {
        let documents = SchemaDocuments::default();
        let registry = registry();
        let first = documents.of_registry(&registry, None).unwrap();
        assert!(Arc::ptr_eq(&first, &documents.of_registry(&registry, None).unwrap()), "shared, not rebuilt");
        let expected = registry.to_agent_schema_version(None);
        assert_eq!(serde_json::from_str::<AgentSchemaVersion>(first.get()).unwrap(), expected);
        let named = documents.of_registry(&registry, Some("v2")).unwrap();
        assert_eq!(serde_json::from_str::<AgentSchemaVersion>(named.get()).unwrap().external_identifier.unwrap(), "v2");
    }
}
