//! Shared state of one mock API server, held in `web::Data` so every actix
//! worker thread sees the same dataset, fault queue and request log.

use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use super::{
    auth::AuthConfig,
    dataset::Dataset,
    faults::{Fault, FaultQueue, FaultSpec},
    oauth::{OAuthConfig, TokenStore},
    request_log::{RequestLog, RequestLogEntry},
};

/// Dataset, credentials, fault queue and request log of one server.
#[derive(Debug)]
pub struct MockState {
    dataset: Dataset,
    auth: AuthConfig,
    faults: Mutex<FaultQueue>,
    log: Mutex<RequestLog>,
    oauth: OAuthConfig,
    tokens: Mutex<TokenStore>,
}

/// Locks a mutex even if a previous holder panicked: the guarded data stays
/// consistent (every update is a single step), so poisoning is not fatal.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MockState {
    /// State serving `records` records with the given credentials.
    pub fn new(records: u64, auth: AuthConfig) -> Self {
        Self {
            dataset: Dataset::new(records),
            auth,
            faults: Mutex::default(),
            log: Mutex::default(),
            oauth: OAuthConfig::default(),
            tokens: Mutex::default(),
        }
    }

    /// The same state with `oauth` as the token endpoint's client.
    pub fn with_oauth(mut self, oauth: OAuthConfig) -> Self {
        self.oauth = oauth;
        self
    }

    /// The client `/oauth/token` knows.
    pub fn oauth(&self) -> &OAuthConfig {
        &self.oauth
    }

    /// The tokens `/oauth/token` issued.
    pub fn tokens(&self) -> &Mutex<TokenStore> {
        &self.tokens
    }

    /// The served dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The required credentials.
    pub fn auth(&self) -> &AuthConfig {
        &self.auth
    }

    /// Queues a fault; returns how many faults are now queued.
    pub fn push_fault(&self, spec: FaultSpec) -> usize {
        lock(&self.faults).push(spec)
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// The pending faults, head first.
    pub fn pending_faults(&self) -> Vec<FaultSpec> {
        lock(&self.faults).pending()
    }

    /// Consumes the fault for the `/v1` request being served, if any.
    pub fn take_fault(&self) -> Option<Fault> {
        lock(&self.faults).take_next()
    }

    /// Records a served `/v1` request (`seq` is set here); returns its sequence number.
    pub fn record_request(&self, entry: RequestLogEntry) -> u64 {
        lock(&self.log).record(entry)
    }

    /// The retained request log, oldest first.
    pub fn requests(&self) -> Vec<RequestLogEntry> {
        lock(&self.log).entries()
    }

    /// The `/_admin/stats` document.
    pub fn stats(&self) -> Value {
        lock(&self.log).stats(self.dataset.size())
    }
}
