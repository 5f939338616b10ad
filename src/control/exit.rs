//! supctl's exit codes (documented in src/bin/supctl/main.rs and docs/protocol.md) and the
//! mapping from client failures and protocol error codes onto them.

use super::client::ClientError;
use super::proto::ErrorCode;

/// Success.
pub const OK: i32 = 0;
/// An operation failed: a unit did not reach what was asked, definitions were rejected,
/// or supd reported an internal error.
pub const FAILED: i32 = 1;
/// Usage error (clap's own exit code).
pub const USAGE: i32 = 2;
/// `status`: a named unit is not running.
pub const NOT_RUNNING: i32 = 3;
/// A named unit is not loaded (`not-found`).
pub const NOT_FOUND: i32 = 4;
/// supd cannot be reached or spoke something we do not understand.
pub const UNREACHABLE: i32 = 5;
/// Permission denied on the socket or by supd.
pub const PERMISSION_DENIED: i32 = 6;
/// Timed out.
pub const TIMEOUT: i32 = 7;

/// Exit code for a failure on the client side of the connection.
pub fn for_client_error(err: &ClientError) -> i32 {
    match err {
        ClientError::PermissionDenied(_) | ClientError::Untrusted { .. } => PERMISSION_DENIED,
        ClientError::Timeout => TIMEOUT,
        ClientError::SocketNotFound(_)
        | ClientError::NotRunning(_)
        | ClientError::Connect { .. }
        | ClientError::Closed
        | ClientError::Io(_)
        | ClientError::Protocol(_) => UNREACHABLE,
    }
}

/// Exit code for an `error` reply from supd.
pub fn for_error_code(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::NotFound => NOT_FOUND,
        ErrorCode::NotRunning => NOT_RUNNING,
        ErrorCode::PermissionDenied => PERMISSION_DENIED,
        ErrorCode::Timeout | ErrorCode::Busy => TIMEOUT,
        ErrorCode::BadRequest | ErrorCode::UnsupportedVersion | ErrorCode::ShuttingDown => {
            UNREACHABLE
        }
        ErrorCode::Internal => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn client_errors() {
        let p = PathBuf::from("/run/sup/control.sock");
        assert_eq!(for_client_error(&ClientError::SocketNotFound(p.clone())), 5);
        assert_eq!(for_client_error(&ClientError::NotRunning(p.clone())), 5);
        assert_eq!(for_client_error(&ClientError::PermissionDenied(p)), 6);
        assert_eq!(for_client_error(&ClientError::Timeout), 7);
        assert_eq!(for_client_error(&ClientError::Closed), 5);
        assert_eq!(for_client_error(&ClientError::Protocol("x".into())), 5);
    }

    #[test]
    fn error_codes() {
        assert_eq!(for_error_code(ErrorCode::NotFound), 4);
        assert_eq!(for_error_code(ErrorCode::PermissionDenied), 6);
        assert_eq!(for_error_code(ErrorCode::Timeout), 7);
        assert_eq!(for_error_code(ErrorCode::UnsupportedVersion), 5);
        assert_eq!(for_error_code(ErrorCode::BadRequest), 5);
        assert_eq!(for_error_code(ErrorCode::ShuttingDown), 5);
        assert_eq!(for_error_code(ErrorCode::Internal), 1);
        assert_eq!(for_error_code(ErrorCode::NotRunning), 3);
    }
}
