//! `/mutate` over HTTP/2 through the real TLS listener (ALPN h2): admission, read timeout, drain.
