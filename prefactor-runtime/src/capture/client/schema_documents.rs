//! The schema document a registration carries: the caller's, or the client's registry's,
//! serialized once.

use std::sync::{Arc, OnceLock};

use prefactor_protocol::AgentSchemaVersion;
use serde_json::value::RawValue;

use super::Client;
use crate::schema::document;
use crate::schema::registry::SchemaRegistry;

impl Client {
    /// The serialized `agent_schema_version` of a registration: the caller's document, or the
    /// registry's (made once per identifier after initialization; its registry no longer
    /// changes then), or none when no schema is known.
    pub(super) fn schema_document(
        &self,
        explicit: Option<AgentSchemaVersion>,
        external_identifier: Option<&str>,
    ) -> Option<Arc<RawValue>> {
        if let Some(mut document) = explicit {
            if document.external_identifier.is_none() {
                document.external_identifier = external_identifier.map(str::to_owned);
            }
            return document::serialized(&document);
        }
        match self.inner.registry.get() {
            Some(registry) if !registry.is_empty() => {
                self.inner.schema_documents.of_registry(registry, external_identifier)
            }
            Some(_) => None,
            None => {
                let registry = self.schema_registry();
                (!registry.is_empty())
                    .then(|| document::serialized(&registry.to_agent_schema_version(external_identifier)))
                    .flatten()
            }
        }
    }

    /// The merged registry (explicit + statically declared) once initialized; before that,
    /// the explicit one from the config.
    pub fn schema_registry(&self) -> &SchemaRegistry {
        static EMPTY: OnceLock<SchemaRegistry> = OnceLock::new();
        self.inner
            .registry
            .get()
            .or_else(|| self.inner.shared.config.schema_registry())
            .unwrap_or_else(|| EMPTY.get_or_init(SchemaRegistry::new))
    }
}
