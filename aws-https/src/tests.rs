//! The checks on `SSL_CERT_FILE`, one case per way a file can be unusable.

use super::*;

fn root_pem(i: usize) -> String {
    String::from_utf8(der_to_pem(&webpki_root_certs::TLS_SERVER_ROOT_CERTS[i])).expect("ascii")
}

/// Writes `content` to a file in `dir` and returns the error of reading it.
fn error_for(dir: &Path, content: &str) -> (PathBuf, String) {
    let path = dir.join("bundle.pem");
    std::fs::write(&path, content).expect("write");
    let err = extra_roots(&path).expect_err("must be refused").to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains(&format!("SSL_CERT_FILE={}", path.display())),
        "names the variable and the path: {err}"
    );
    assert!(
        https_client(Some(&path)).is_err(),
        "the client is not built either"
    );
    (path, err)
}

#[test]
fn compiled_in_roots_become_pem() {
    let pem = root_pem(0);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert!(https_client(None).is_ok());
}

#[test]
fn a_bundle_with_a_key_block_gives_its_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.pem");
    let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    std::fs::write(
        &path,
        format!("# comment\n{}{key}{}", root_pem(0), root_pem(1)),
    )
    .expect("write");
    let roots = extra_roots(&path).expect("usable");
    assert_eq!(roots.len(), 2);
    assert_eq!(
        roots[1].as_ref(),
        webpki_root_certs::TLS_SERVER_ROOT_CERTS[1].as_ref()
    );
    assert!(https_client(Some(&path)).is_ok());
}

#[test]
fn bad_base64_is_refused_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corrupt = "-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n";
    let (_, err) = error_for(dir.path(), corrupt);
    assert!(err.contains("is not a valid PEM file: bad base64"), "{err}");
    assert!(err.contains("in its first PEM block"), "{err}");
    let (_, err) = error_for(dir.path(), &format!("{}{corrupt}", root_pem(0)));
    assert!(
        err.contains("in the PEM block after certificate 1"),
        "{err}"
    );
}

#[test]
fn broken_pem_structure_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = root_pem(0);
    let unterminated = pem.replace("-----END CERTIFICATE-----\n", "");
    let (_, err) = error_for(dir.path(), &unterminated);
    assert!(err.contains("a block without its -----END line"), "{err}");
    let (_, err) = error_for(dir.path(), "-----BEGIN CERTIFICATE--\nAAAA\n");
    assert!(err.contains("a malformed -----BEGIN line"), "{err}");
}

#[test]
fn a_block_that_is_not_a_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let (_, err) = error_for(dir.path(), &format!("{}{not_der}", root_pem(0)));
    assert!(
        err.contains("certificate 2 is not a usable CA certificate ("),
        "{err}"
    );
}

#[test]
fn a_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for content in [
        "",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let (_, err) = error_for(dir.path(), content);
        assert!(err.contains("holds no certificate"), "{err}");
    }
}

#[test]
fn unreadable_paths_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let err = extra_roots(&missing).expect_err("missing").to_string();
    assert!(
        err.starts_with(&format!(
            "SSL_CERT_FILE={} cannot be read: ",
            missing.display()
        )),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
    let err = extra_roots(dir.path())
        .expect_err("a directory")
        .to_string();
    assert!(err.contains("cannot be read"), "{err}");
    assert!(err.contains("Is a directory"), "{err}");
    assert!(https_client(Some(&missing)).is_err());
}

#[test]
fn huge_files_are_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.pem");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(MAX_FILE_BYTES + 1).expect("sparse file");
    let err = extra_roots(&path).expect_err("too large").to_string();
    assert!(err.contains("is larger than 16 MiB"), "{err}");
}

#[test]
fn messages_stay_on_one_line_whatever_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("odd\nname.pem");
    let err = extra_roots(&path).expect_err("missing").to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("odd\\nname.pem"), "{err}");
}
