//! Development mode: an in-memory self-signed certificate for localhost.

use crate::Error;

use super::LoadedCert;

/// Names the development certificate is valid for.
pub const DEV_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A fresh self-signed certificate and key for `localhost`, `127.0.0.1` and `::1`, never
/// written to disk.
pub fn self_signed() -> Result<LoadedCert, Error> {
    let names: Vec<String> = DEV_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Tls(format!("cannot generate the development certificate: {e}")))?;
    super::certs::from_pem(
        cert.pem().as_bytes(),
        signing_key.serialize_pem().as_bytes(),
        "(development, in memory)",
        "(development, in memory)",
    )
}
