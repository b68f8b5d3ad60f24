//! rmq-nameserver-client (in progress).
