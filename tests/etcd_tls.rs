//! fleet::etcd over TLS and with etcd's authentication, against a real etcd started here:
//! a client certificate signed by the test CA is served, one without a certificate or
//! trusting another CA is a clear error; a user and password are accepted, a wrong
//! password or none is a clear error. The certificates are made with `openssl` for this
//! run. Built with the `etcd` feature (scripts/test enables it).
#![cfg(feature = "etcd")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::etcd::EtcdCluster;
use rondo::fleet::etcd::{EtcdError, EtcdSettings, EtcdStore, TlsSettings};

const PREFIX: &str = "/rondo/tls";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME-ca.crt/.key`) in `dir`.
fn ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
    dir.join(format!("{name}.crt"))
}

/// A certificate `NAME.crt/.key` signed by CA `ca`, for `usage` (serverAuth/clientAuth).
fn cert(dir: &Path, ca: &str, name: &str, usage: &str) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

/// The error of `r`, which must have failed.
fn refused<T>(r: Result<T, EtcdError>, what: &str) -> EtcdError {
    match r {
        Ok(_) => panic!("{what}: it succeeded"),
        Err(e) => e,
    }
}

fn settings(endpoint: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new(vec![endpoint.to_string()], PREFIX, "tls-test");
    s.connect_timeout_ms = 1000;
    s.request_timeout_ms = 3000;
    s
}

#[test]
fn tls_with_a_client_certificate_and_clear_errors_without_one() {
    if Command::new("openssl").arg("version").output().is_err() {
        return common::skip("openssl is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca_crt = ca(d, "test-ca");
    let other_ca = ca(d, "other-ca");
    let (server_crt, server_key) = cert(d, "test-ca", "server", "serverAuth,clientAuth");
    let (client_crt, client_key) = cert(d, "test-ca", "client", "clientAuth");
    let flags = vec![
        format!("--cacert={}", ca_crt.display()),
        format!("--cert={}", client_crt.display()),
        format!("--key={}", client_key.display()),
    ];
    let Some(c) = EtcdCluster::start_tls(&ca_crt, &server_crt, &server_key, flags) else {
        return;
    };
    let url = c.endpoints()[0].clone();
    assert!(url.starts_with("https://"), "{url}");

    // The right CA and a client certificate: documents are written and read.
    let mut s = settings(&url);
    s.tls = Some(TlsSettings {
        ca: ca_crt.clone(),
        cert: Some(client_crt.clone()),
        key: Some(client_key.clone()),
        domain: None,
    });
    let mut store = EtcdStore::connect(s.clone()).unwrap_or_else(|e| panic!("TLS connect: {e}"));
    let rev = store.put_document_if("desired", b"over tls", 0).unwrap();
    let doc = store.get_document("desired").unwrap().unwrap();
    assert_eq!(
        (doc.bytes.as_slice(), doc.mod_revision),
        (&b"over tls"[..], rev)
    );
    // etcd's own client sees the same key (the store really wrote over TLS).
    let (ok, out) = c.ctl(
        0,
        &["get", "--print-value-only", &format!("{PREFIX}/desired")],
    );
    assert!(ok && out.contains("over tls"), "{out}");
    drop(store);

    // No client certificate: etcd requires one.
    let mut no_cert = s.clone();
    no_cert.tls.as_mut().unwrap().cert = None;
    no_cert.tls.as_mut().unwrap().key = None;
    let r = EtcdStore::connect(no_cert).and_then(|mut st| st.get_document("desired"));
    let e = refused(r, "a client without a certificate must be refused");
    println!("without a client certificate: {e}");
    assert!(e.to_string().contains(&url), "names the endpoint: {e}");

    // Trusting another CA: the server's certificate is not accepted.
    let mut wrong = s.clone();
    wrong.tls.as_mut().unwrap().ca = other_ca;
    let e = refused(
        EtcdStore::connect(wrong).and_then(|mut st| st.get_document("desired")),
        "a server signed by an untrusted CA must be refused",
    );
    println!("trusting another CA: {e}");
    assert!(e.to_string().contains(&url), "names the endpoint: {e}");

    // A CA file that does not exist: the error names it.
    let mut missing = s;
    missing.tls.as_mut().unwrap().ca = d.join("nope.crt");
    let e = refused(EtcdStore::connect(missing), "a missing CA file");
    assert!(e.to_string().contains("nope.crt"), "{e}");
}

#[test]
fn user_and_password_are_accepted_and_a_wrong_one_is_a_clear_error() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    for args in [
        &["user", "add", "root", "--new-user-password=rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "rondo", "--new-user-password=s3cret"],
        &["role", "add", "fleet"],
        &[
            "role",
            "grant-permission",
            "fleet",
            "--prefix=true",
            "readwrite",
            "/rondo/",
        ],
        &["user", "grant-role", "rondo", "fleet"],
        &["auth", "enable"],
    ] {
        let (ok, out) = c.ctl(0, args);
        assert!(ok, "etcdctl {args:?}: {out}");
    }
    let url = c.endpoints()[0].clone();
    let mut s = settings(&url);
    s.prefix = "/rondo/auth".into();
    s.user = Some("rondo".into());
    s.password = Some("s3cret".into());
    let mut store = EtcdStore::connect(s.clone()).unwrap_or_else(|e| panic!("auth connect: {e}"));
    let rev = store.put_document_if("desired", b"with a user", 0).unwrap();
    assert!(rev > 0);
    assert_eq!(
        store.get_document("desired").unwrap().unwrap().bytes,
        b"with a user"
    );
    drop(store);

    let mut bad = s.clone();
    bad.password = Some("wrong".into());
    let e = refused(
        EtcdStore::connect(bad).and_then(|mut st| st.get_document("desired")),
        "a wrong password must be refused",
    );
    println!("wrong password: {e}");
    assert!(e.to_string().contains(&url), "names the endpoint: {e}");

    let mut anonymous = s.clone();
    anonymous.user = None;
    anonymous.password = None;
    let e = refused(
        EtcdStore::connect(anonymous).and_then(|mut st| st.get_document("desired")),
        "no user with auth enabled must be refused",
    );
    println!("no user: {e}");

    // A user without permission on another prefix.
    let mut elsewhere = s;
    elsewhere.prefix = "/other".into();
    let e = refused(
        EtcdStore::connect(elsewhere).and_then(|mut st| st.get_document("desired")),
        "no permission outside /rondo/",
    );
    println!("outside the user's prefix: {e}");
}
