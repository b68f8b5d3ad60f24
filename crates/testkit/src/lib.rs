//! rmq-testkit (in progress).
