//! secrets-init library.
