//! `rmq`: an Apache RocketMQ producer client for Rust (facade crate).
pub use rmq_common as common;
pub use rmq_nameserver_client as nameserver;
pub use rmq_producer as producer;
pub use rmq_remoting as remoting;
