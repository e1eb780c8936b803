//! secrets-init-controller's integration tests, one binary: the real controller binary
//! against moto (AWS) and the stand-in Kubernetes API server (tests/apiserver), each test
//! with its own of all three (support.rs).

mod apiserver;
mod cost;
mod events;
mod failures;
mod guards;
mod leader;
mod rotation;
mod selector;
mod support;
