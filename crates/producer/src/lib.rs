//! rmq-producer (in progress).
