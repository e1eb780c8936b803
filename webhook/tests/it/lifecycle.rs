//! The webhook process's life: signals, `--shutdown-timeout`, serving-certificate expiry and its periodic re-check.
