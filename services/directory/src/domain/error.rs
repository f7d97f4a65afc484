use thiserror::Error;

/// Every way a directory operation can fail, each with a stable reason for clients.
#[derive(Debug, Error)]
pub enum DomainError {
    /// Every problem with the request, so a client fixes them at once.
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<(String, String)>),
    /// Also the answer for another tenant's data, so its existence is not revealed.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A rule of the directory forbids the change in the data's present state.
    #[error("{reason}: {message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    /// The etag sent is not the record's (it changed since it was read), or a concurrent
    /// write won: read again and retry.
    #[error("stale etag or concurrent change: {0}")]
    Aborted(&'static str),
    #[error("storage failure: {0}")]
    Storage(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![(field.into(), description.into())])
    }

    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }
}
