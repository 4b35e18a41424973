//! Error types shared by several stages.

/// A problem with one field of a fault or infrastructure kind; the scenario parser adds the
/// position of that field (or of the entry's `kind` when the field is not in the file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// Field name as written in the file (`kind` for problems of the entry as a whole).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
