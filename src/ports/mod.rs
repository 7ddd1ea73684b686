//! Ports: the interfaces the router needs from the outside world, each beside its test double.
//!
//! | port | what it does | real adapter | double |
//! |---|---|---|---|
//! | [`Classifier`] | asks a chat model to pick an agent | [`crate::aws::BedrockClassifier`] | [`StaticClassifier`] |
//! | [`Invoker`] | calls an agent's function, whole or streamed | [`crate::aws::LambdaInvoker`] | [`StaticInvoker`], [`ChannelInvoker`] |
//! | [`SessionStore`] | keeps each conversation's agent | [`MemorySessionStore`] (in-process), [`crate::aws::DynamoDbSessionStore`] | [`BrokenSessionStore`] |
//!
//! Ports depend on nothing else in the crate; the routing core and the dispatcher depend on them.

mod classifier;
mod invoker;
mod session;

pub use classifier::{Classifier, ClassifyFuture, LlmAnswer, LlmError, StaticClassifier, Usage};
pub use invoker::{
    Abandoned, ChannelInvoker, Completion, Invocation, InvocationStream, InvokeError, InvokeFuture,
    InvokeStreamFuture, Invoker, NextItemFuture, StaticInvoker, StreamCall, StreamItem,
    StreamReader, StreamSender,
};
pub use session::{
    BrokenSessionStore, MemorySessionStore, SessionError, SessionFuture, SessionState, SessionStore,
};
