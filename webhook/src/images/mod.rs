//! Image configs from registries (skeleton; see the mutation-modes issue).
