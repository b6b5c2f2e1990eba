//! What can go wrong with a query, split by whose fault it is.

use crate::response::ServerException;

/// Why a query failed. Each case maps one-to-one onto the WIT `error` variant
/// the guest sees; none of them is a host bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// ClickHouse rejected or aborted the query.
    #[error("ClickHouse error {code}: {message}")]
    Server {
        /// ClickHouse's error code.
        code: u32,
        /// ClickHouse's message, without exception class or stack trace.
        message: String,
    },
    /// No ClickHouse server answered within the budget.
    #[error("ClickHouse unavailable: {0}")]
    Unavailable(String),
    /// The route's policy refused the query.
    #[error("query refused: {0}")]
    Refused(String),
    /// A parameter is missing, unknown, or not a value of its declared type.
    #[error("invalid query parameter: {0}")]
    InvalidParameter(String),
    /// The request's time budget ran out.
    #[error("query timed out")]
    Timeout,
}

impl From<ServerException> for QueryError {
    fn from(exception: ServerException) -> Self {
        QueryError::Server {
            code: exception.code,
            message: exception.message,
        }
    }
}

/// `$err`, a [`QueryError`], as the WIT `error` variant of the bindings
/// module `$wit` (`query`): the host's bindings and the adapter's are
/// generated apart, with the same shape, and this is the one mapping.
#[macro_export]
macro_rules! wit_error {
    ($err:expr, $($wit:ident)::+) => {
        match $err {
            $crate::QueryError::Server { code, message } => {
                $($wit)::+::Error::Server($($wit)::+::ServerError { code, message })
            }
            $crate::QueryError::Unavailable(why) => $($wit)::+::Error::Unavailable(why),
            $crate::QueryError::Refused(why) => $($wit)::+::Error::Refused(why),
            $crate::QueryError::InvalidParameter(why) => $($wit)::+::Error::InvalidParameter(why),
            $crate::QueryError::Timeout => $($wit)::+::Error::Timeout,
        }
    };
}
