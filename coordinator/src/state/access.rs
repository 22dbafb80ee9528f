//! Who may do what: API tokens (stored only as hashes) with a role and namespaces, and the
//! audit trail of control changes. Both are replicated like the rest of the state.

use serde::{Deserialize, Serialize};

/// Roles of people and automation, each including the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// get, describe, watch, status.
    Viewer,
    /// Also submit, run, cancel, retry, delete and rate limits, within its namespaces.
    Operator,
    /// Also membership, tokens, key rotation; every namespace.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An API token. The secret part is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public part of the token (`apitap_<id>.<secret>`), also its name in listings.
    pub id: String,
    /// What it is for, chosen by whoever created it.
    pub name: String,
    pub role: Role,
    /// Namespaces it may touch; `*` means all. Admin tokens touch all regardless.
    pub namespaces: Vec<String>,
    /// Hex SHA-256 of the secret part.
    pub hash: String,
    pub created_at_ms: u64,
    pub created_by: String,
    pub expires_at_ms: Option<u64>,
}

impl TokenRecord {
    /// Whether this token may act on objects of namespace `ns`.
    pub fn covers(&self, ns: &str) -> bool {
        self.role == Role::Admin || self.namespaces.iter().any(|n| n == "*" || n == ns)
    }
}

/// One control change: who asked for what, when, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: u64,
    /// The caller's identity, e.g. `token:ops-ci (operator)` or `apitap://coordinator/1`.
    pub actor: String,
    /// The change, e.g. `submit`, `cancel`, `token-create`, `cluster-add`.
    pub action: String,
    /// What it changed, e.g. `pipeline default/orders`, `run 42`, `token 5f1e…`.
    pub object: String,
    /// `ok`, or `rejected: <reason>`.
    pub outcome: String,
}
