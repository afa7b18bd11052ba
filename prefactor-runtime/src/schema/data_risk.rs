//! `DataRisk`: what a span type may do and which kinds of data its payloads carry, declared
//! with the span type so the platform can score the risk of each call.

use serde::Serialize;

/// Whether a span type may perform an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Not declared (the platform's default).
    #[default]
    Unknown,
    /// The span type may do it.
    Allowed,
    /// The span type must not do it.
    Disallowed,
}

/// Whether a payload may contain a category of data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inclusion {
    /// Not declared (the platform's default).
    #[default]
    Unknown,
    /// The payload may contain it.
    Included,
    /// The payload never contains it.
    Excluded,
}

/// How sensitive a payload is as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Not declared (the platform's default).
    #[default]
    Unknown,
    /// Public data.
    Public,
    /// Internal data.
    Internal,
    /// Confidential data.
    Confidential,
    /// Restricted data.
    Restricted,
    /// Secret data.
    Secret,
}

/// The actions a span type may take. Every field defaults to [`Permission::Unknown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct ActionProfile {
    /// Creates data.
    pub create_data: Permission,
    /// Reads data.
    pub read_data: Permission,
    /// Updates data.
    pub update_data: Permission,
    /// Destroys data.
    pub destroy_data: Permission,
    /// Moves money.
    pub financial_transactions: Permission,
    /// Talks to the outside world (email, web, third-party APIs).
    pub external_communication: Permission,
}

/// The categories of data a payload may carry. Every field defaults to
/// [`Inclusion::Unknown`] (and the classification to [`Classification::Unknown`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
#[allow(missing_docs)] // The names are the platform's categories.
pub struct DataCategories {
    /// How sensitive the payload is as a whole.
    pub classification: Classification,
    pub personal_identifiers: Inclusion,
    pub contact_information: Inclusion,
    pub financial_information: Inclusion,
    pub health_and_medical: Inclusion,
    pub criminal_justice: Inclusion,
    pub authentication_and_secrets: Inclusion,
    pub organisational_confidential: Inclusion,
    pub minors_data: Inclusion,
    pub location_and_tracking: Inclusion,
    pub behavioural_and_inferred: Inclusion,
    pub gdpr_racial_or_ethnic_origin: Inclusion,
    pub gdpr_political_opinions: Inclusion,
    pub gdpr_religious_or_philosophical_beliefs: Inclusion,
    pub gdpr_trade_union_membership: Inclusion,
    pub gdpr_genetic_data: Inclusion,
    pub gdpr_biometric_for_identification: Inclusion,
    pub gdpr_sex_life_or_sexual_orientation: Inclusion,
}

/// The data risk of a span type or quality schema: what it may do, and what its payload
/// (`params`) and result carry. Sent with the schema document; the platform uses it to score
/// the risk of each span. Everything not declared stays `unknown`.
///
/// Build it by mutating a default value (the structs are `#[non_exhaustive]`, so new
/// categories the platform adds do not break your code):
///
/// ```
/// use prefactor_runtime::{Classification, DataRisk, Inclusion, Permission};
///
/// let mut risk = DataRisk::default();
/// risk.action_profile.external_communication = Permission::Allowed;
/// risk.action_profile.financial_transactions = Permission::Disallowed;
/// risk.params_data_categories.personal_identifiers = Inclusion::Included;
/// risk.result_data_categories.classification = Classification::Internal;
///
/// let json = serde_json::to_value(&risk).unwrap();
/// assert_eq!(json["action_profile"]["external_communication"], "allowed");
/// assert_eq!(json["result_data_categories"]["classification"], "internal");
/// assert_eq!(json["params_data_categories"]["minors_data"], "unknown");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct DataRisk {
    /// What the span type may do.
    pub action_profile: ActionProfile,
    /// What its payload carries.
    pub params_data_categories: DataCategories,
    /// What its result payload carries.
    pub result_data_categories: DataCategories,
}

impl DataRisk {
    /// The wire form (every key present, `unknown` where not declared).
    pub(crate) fn to_value(self) -> serde_json::Value {
        // Plain structs of unit enums: serializing cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_sent_with_unknown_as_the_default() {
        let value = DataRisk::default().to_value();
        assert_eq!(value["action_profile"].as_object().map(|o| o.len()), Some(6));
        assert_eq!(value["params_data_categories"].as_object().map(|o| o.len()), Some(18));
        assert_eq!(value["params_data_categories"]["gdpr_genetic_data"], "unknown");
        assert_eq!(value["result_data_categories"]["classification"], "unknown");
    }
}
