//! What an `apache.rocketmq.v2.Code` means for a client (the 5.x clients' `StatusChecker`).

use crate::pb::Code;

/// The upstream name of `code` (`TOO_MANY_REQUESTS`, ...), or `"UNKNOWN"` for a value this
/// crate does not know.
///
/// ```
/// assert_eq!(rmq_grpc::code::name(42900), "TOO_MANY_REQUESTS");
/// assert_eq!(rmq_grpc::code::name(12345), "UNKNOWN");
/// ```
#[must_use]
pub fn name(code: i32) -> &'static str {
    Code::try_from(code).map_or("UNKNOWN", |c| c.as_str_name())
}

/// Whether `code` is a success (`OK`, or `MULTIPLE_RESULTS` for a batch).
///
/// ```
/// assert!(rmq_grpc::code::is_ok(20000));
/// assert!(!rmq_grpc::code::is_ok(40402));
/// ```
#[must_use]
pub fn is_ok(code: i32) -> bool {
    code == Code::Ok as i32 || code == Code::MultipleResults as i32
}
