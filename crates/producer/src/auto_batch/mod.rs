//! Auto-batching (Java 5.1.4+ `DefaultMQProducer.setAutoBatch(true)`, its
//! `ProduceAccumulator`): opt in with [`ProducerBuilder::auto_batch`], and `send` / `send_async`
//! of one message are held for a moment and sent together with the other sends of the same topic
//! (and the same queue, for sends with a queue target or a selector) as one
//! `SEND_BATCH_MESSAGE`. Each caller still gets its own result or its own error, exactly once.
//!
//! - [`AutoBatchConfig`]: the hold time, the batch size that sends at once, the bound on the
//!   bytes held;
//! - `rules`: which messages are never held, how a batch's answer is split per message;
//! - `accumulator`: the open batches, one per key, and the memory bound;
//! - `flush`: the task of each batch (send, then resolve every member);
//! - `entry`: where `send` and `send_async` come in.
//!
//! [`ProducerBuilder::auto_batch`]: crate::ProducerBuilder::auto_batch

mod accumulator;
mod config;
mod duplicate;
mod entry;
mod flush;
mod rules;

pub(crate) use accumulator::Accumulator;
pub use config::AutoBatchConfig;
pub(crate) use entry::{send_async, send_sync, Routed};

#[cfg(test)]
mod tests;
