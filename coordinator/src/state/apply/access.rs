//! Tokens and the audit trail.

use serde::{Deserialize, Serialize};

use super::{done, rejected, Applied};
use crate::state::access::{AuditRecord, Role, TokenRecord};
use crate::state::command::{apply, Command, CommandResult, Key};
use crate::state::model::State;

/// Audit records kept; older ones are dropped as new ones arrive.
pub const MAX_AUDIT_RECORDS: usize = 10_000;
/// Tokens the cluster holds at most (live and expired, until revoked).
pub const MAX_TOKENS: usize = 1_000;
/// Namespaces one token may list.
pub const MAX_TOKEN_NAMESPACES: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateToken {
    pub token: TokenRecord,
}

impl CreateToken {
    pub fn apply(&self, state: &mut State) -> Applied {
        let t = &self.token;
        if state.tokens.contains_key(&t.id) {
            return rejected(format!("token {} exists", t.id));
        }
        if state.tokens.len() >= MAX_TOKENS {
            return rejected(format!(
                "the cluster holds {MAX_TOKENS} tokens (MAX_TOKENS); revoke unused ones first"
            ));
        }
        if t.namespaces.len() > MAX_TOKEN_NAMESPACES {
            return rejected(format!(
                "a token lists at most {MAX_TOKEN_NAMESPACES} namespaces (MAX_TOKEN_NAMESPACES); \
                 use `*` for all"
            ));
        }
        if let Some(bad) = t
            .namespaces
            .iter()
            .find(|n| *n != "*" && !apitap_common::spec::is_dns_label(n))
        {
            return rejected(format!(
                "namespace {bad:?} is not a namespace name (lowercase letters, digits and `-`, \
                 at most 63) nor `*`"
            ));
        }
        if t.role != Role::Admin && t.namespaces.is_empty() {
            return rejected("a viewer or operator token needs at least one namespace (or `*`)");
        }
        state.tokens.insert(t.id.clone(), t.clone());
        done(vec![Key::Token(t.id.clone())])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeToken {
    pub id: String,
}

impl RevokeToken {
    pub fn apply(&self, state: &mut State) -> Applied {
        if state.tokens.remove(&self.id).is_none() {
            return rejected(format!("token {} not found", self.id));
        }
        done(vec![Key::Token(self.id.clone())])
    }
}

/// A control command made by `actor`: applied, then recorded with its outcome, in one
/// entry so that no change is ever without its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audited {
    pub actor: String,
    pub at_ms: u64,
    pub cmd: Box<Command>,
}

impl Audited {
    pub fn apply(&self, state: &mut State, log_index: u64) -> Applied {
        let (result, mut keys) = apply(state, log_index, &self.cmd);
        let outcome = match &result {
            CommandResult::Rejected { reason } => format!("rejected: {reason}"),
            _ => "ok".into(),
        };
        let (action, object) = self.cmd.describe();
        keys.extend(record(
            state,
            AuditRecord {
                seq: 0,
                at_ms: self.at_ms,
                actor: self.actor.clone(),
                action,
                object,
                outcome,
            },
        ));
        (result, keys)
    }
}

/// A change made outside the state machine (membership), recorded after the fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordAudit {
    pub record: AuditRecord,
}

impl RecordAudit {
    pub fn apply(&self, state: &mut State) -> Applied {
        done(record(state, self.record.clone()))
    }
}

/// Appends `r` with the next sequence number and drops the oldest beyond the bound.
fn record(state: &mut State, mut r: AuditRecord) -> Vec<Key> {
    let seq = state.audit.keys().next_back().map_or(1, |s| s + 1);
    r.seq = seq;
    state.audit.insert(seq, r);
    let mut keys = vec![Key::Audit(seq)];
    while state.audit.len() > MAX_AUDIT_RECORDS {
        if let Some((old, _)) = state.audit.pop_first() {
            keys.push(Key::Audit(old));
        }
    }
    keys
}
