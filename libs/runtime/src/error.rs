//! Building `tonic::Status` values that carry google.rpc details, so clients can switch on a
//! stable reason instead of parsing messages.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Collects every problem with a request before answering, so a client fixes them all at once.
#[derive(Debug, Default)]
pub struct FieldViolations(Vec<FieldViolation>);

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was added, INVALID_ARGUMENT with every violation otherwise.
    pub fn check(self) -> Result<(), Status> {
        if self.0.is_empty() {
            return Ok(());
        }
        let summary = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        Err(Status::with_error_details(
            Code::InvalidArgument,
            summary,
            ErrorDetails::with_bad_request(self.0),
        ))
    }
}

pub fn invalid_argument(field: &str, description: impl Into<String>) -> Status {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    violations
        .check()
        .err()
        .unwrap_or_else(|| Status::invalid_argument(field.to_owned()))
}

/// A stable `reason` in an ErrorInfo, e.g. `USER_KIND_MISMATCH` in domain `directory.praxis`.
pub fn with_reason(code: Code, reason: &str, domain: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(
            reason,
            domain,
            std::collections::HashMap::<String, String>::new(),
        ),
    )
}

/// Internal failures are logged with their cause and answered without it: storage error text
/// never reaches a client.
pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Status {
    tracing::error!(context, error = %error, "internal error");
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_carry_every_field() {
        let mut violations = FieldViolations::new();
        violations.add("display_name", "must not be empty");
        violations.add("page_size", "must be between 0 and 500");
        let status = violations.check().err().map(|s| s.get_error_details());
        let fields: Vec<String> = status
            .and_then(|details| details.bad_request().cloned())
            .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["display_name", "page_size"]);
    }

    #[test]
    fn reasons_are_machine_readable() {
        let status = with_reason(
            Code::FailedPrecondition,
            "USER_KIND_MISMATCH",
            "directory.praxis",
            "kind differs",
        );
        let reason = status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone());
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason.as_deref(), Some("USER_KIND_MISMATCH"));
    }

    #[test]
    fn internal_hides_the_cause() {
        let status = internal("store", &"duplicate key value violates unique constraint");
        assert_eq!(status.message(), "internal error");
    }
}

/// Why an outbox relay could not hand over a batch: refused for good (the receiver will never
/// take these events as they are) or not now (try again later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl DeliveryError {
    /// A gRPC answer: bad input, a refusal or a missing referent will not change by retrying.
    pub fn from_status(what: &str, status: &tonic::Status) -> Self {
        let message = format!("{what}: {:?} {}", status.code(), status.message());
        match status.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::NotFound
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange => DeliveryError::Refused(message),
            _ => DeliveryError::Unavailable(message),
        }
    }
}
