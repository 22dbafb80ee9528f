//! Error classification shared by every crate: whose fault it is decides whether a caller
//! retries (transient), reports back to the user (user) or alerts an operator (internal).

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The input was wrong; retrying the same input fails again.
    User,
    /// The environment failed (network, a restarting peer); retrying may succeed.
    Transient,
    /// A bug or a broken invariant in ApiTap itself.
    Internal,
}

impl ErrorClass {
    pub fn is_retriable(self) -> bool {
        matches!(self, ErrorClass::Transient)
    }
}
