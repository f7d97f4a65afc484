use thiserror::Error;

/// Every way a directory operation can fail, each with a stable reason for clients.
#[derive(Debug, Error)]
pub enum DomainError {
    #[error("{field}: {description}")]
    InvalidArgument {
        field: &'static str,
        description: String,
    },
    /// Also the answer for another tenant's data, so its existence is not revealed.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("storage failure: {0}")]
    Storage(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            description: description.into(),
        }
    }
}
