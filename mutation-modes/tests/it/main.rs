//! The mutation-modes integration tests, one binary (one link of the dependencies).
//!
//! - `golden`: every case folder in `tests/golden`, the specification;
//! - `schema`: the expected pods against the Kubernetes schema;
//! - `properties`, `patch_properties`: generated pods and the rules that always hold;
//! - `large`: a pod of 60 containers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod golden;
mod large;
mod patch_properties;
mod properties;
mod schema;
