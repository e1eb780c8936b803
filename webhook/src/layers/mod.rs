//! The tower layers in front of `/mutate`, one small module each. They are composed in
//! one place: [`crate::app::router`].

pub mod auth;
pub mod body_limit;
pub mod concurrency;
pub mod metrics;
pub mod tracing;
