//! `[fleet.etcd]`-style settings for the etcd store: endpoints, optional TLS and auth, the key
//! prefix everything lives under, this director's name, timeouts and the document size
//! limit. Deserialized with serde ([`EtcdSettings::from_toml_str`] or any serde source) and
//! checked by [`EtcdSettings::validate`]; every error names the field.
//!
//! ```toml
//! endpoints = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
//! prefix = "/rondo/prod"          # absolute, no "..", no trailing "/"
//! name = "director-1"             # this director (status key, election value)
//! connect_timeout_ms = 2000       # default
//! request_timeout_ms = 5000       # default
//! max_document_bytes = 1572864    # default: etcd's own default request limit
//! user = "rondo"                  # optional; password with it
//! password = "..."
//! [tls]                           # optional; endpoints are then https://
//! ca = "/etc/rondo/etcd-ca.pem"
//! cert = "/etc/rondo/etcd-client.pem"   # optional, with key: client certificate
//! key = "/etc/rondo/etcd-client.key"
//! domain = "etcd.example"               # optional: the name the certificates carry
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest document limit accepted (etcd itself refuses requests past its
/// `--max-request-bytes`, 1.5 MiB unless raised).
pub const MAX_DOCUMENT_LIMIT: usize = 64 << 20;
/// The default document limit: etcd's default `--max-request-bytes`.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 1_572_864;

/// An etcd setting was refused; says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("etcd settings: {field}: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field: field.into(),
        message: message.into(),
    }
}

/// TLS towards etcd: the CA that signed the servers' certificates, and optionally a client
/// certificate and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub ca: PathBuf,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub domain: Option<String>,
}

fn default_connect_timeout_ms() -> u64 {
    2000
}
fn default_request_timeout_ms() -> u64 {
    5000
}
fn default_max_document_bytes() -> usize {
    DEFAULT_MAX_DOCUMENT_BYTES
}
fn default_lease_ttl_ms() -> u64 {
    3000
}

/// How to reach etcd and where in it this fleet lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    pub prefix: String,
    pub name: String,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_max_document_bytes")]
    pub max_document_bytes: usize,
    /// TTL of this process's lease (a director's status key, a checker's candidacy): how
    /// long after a crash or partition its keys stay, and so how fast a standby checker
    /// takes over.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// A director's local copy of the last desired document it applied (written
    /// atomically), so a restart without etcd starts on it. `None`: no copy.
    #[serde(default)]
    pub cache: Option<std::path::PathBuf>,
}

impl EtcdSettings {
    /// Settings with the defaults for everything but endpoints, prefix and name (not yet
    /// validated: [`EtcdStore::connect`](super::EtcdStore::connect) validates).
    pub fn new(endpoints: Vec<String>, prefix: &str, name: &str) -> EtcdSettings {
        EtcdSettings {
            endpoints,
            tls: None,
            user: None,
            password: None,
            prefix: prefix.to_string(),
            name: name.to_string(),
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            max_document_bytes: default_max_document_bytes(),
            lease_ttl_ms: default_lease_ttl_ms(),
            cache: None,
        }
    }

    /// Parse a TOML document holding these settings, then validate them.
    pub fn from_toml_str(s: &str) -> Result<EtcdSettings, SettingsError> {
        let raw: EtcdSettings =
            toml::from_str(s).map_err(|e| err("(document)", e.message().to_string()))?;
        raw.validate()?;
        Ok(raw)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// Check every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.endpoints.is_empty() {
            return Err(err("endpoints", "at least one etcd endpoint is needed"));
        }
        let scheme = if self.tls.is_some() {
            "https://"
        } else {
            "http://"
        };
        for (i, e) in self.endpoints.iter().enumerate() {
            let field = format!("endpoints[{i}]");
            let rest = e.strip_prefix(scheme).ok_or_else(|| {
                err(
                    &field,
                    format!(
                        "{e:?} must start with {scheme} ({})",
                        if self.tls.is_some() {
                            "[tls] is set"
                        } else {
                            "no [tls]; set it for https"
                        }
                    ),
                )
            })?;
            let hostport = rest.strip_suffix('/').unwrap_or(rest);
            let ok = match hostport.rsplit_once(':') {
                Some((host, port)) => {
                    !host.is_empty()
                        && !host.contains('/')
                        && port.parse::<u16>().is_ok_and(|p| p != 0)
                }
                None => false,
            };
            if !ok {
                return Err(err(
                    &field,
                    format!("{e:?} is not {scheme}HOST:PORT (for example {scheme}127.0.0.1:2379)"),
                ));
            }
        }
        validate_prefix(&self.prefix)?;
        validate_name(&self.name)?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) if u.is_empty() => return Err(err("user", "is empty")),
            (Some(_), None) => return Err(err("password", "user is set but password is not")),
            (None, Some(_)) => return Err(err("user", "password is set but user is not")),
            _ => {}
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                return Err(err(
                    "tls.cert",
                    "a client certificate needs both tls.cert and tls.key",
                ));
            }
        }
        if !(100..=60_000).contains(&self.connect_timeout_ms) {
            return Err(err(
                "connect_timeout_ms",
                format!("{} is outside 100..=60000", self.connect_timeout_ms),
            ));
        }
        if !(100..=300_000).contains(&self.request_timeout_ms) {
            return Err(err(
                "request_timeout_ms",
                format!("{} is outside 100..=300000", self.request_timeout_ms),
            ));
        }
        if !(1000..=60_000).contains(&self.lease_ttl_ms) || !self.lease_ttl_ms.is_multiple_of(1000)
        {
            return Err(err(
                "lease_ttl_ms",
                format!(
                    "{} is not a whole number of seconds in 1000..=60000 (etcd leases count seconds)",
                    self.lease_ttl_ms
                ),
            ));
        }
        if let Some(c) = &self.cache {
            if c.as_os_str().is_empty() || c.to_str().is_some_and(|s| s.ends_with('/')) {
                return Err(err("cache", format!("{c:?} is not a file path")));
            }
        }
        if self.max_document_bytes == 0 || self.max_document_bytes > MAX_DOCUMENT_LIMIT {
            return Err(err(
                "max_document_bytes",
                format!(
                    "{} is outside 1..={MAX_DOCUMENT_LIMIT}",
                    self.max_document_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The prefix: starts with `/`, no empty, `.` or `..` segment, no trailing `/`, printable
/// ASCII without spaces.
pub fn validate_prefix(p: &str) -> Result<(), SettingsError> {
    if !p.starts_with('/') {
        return Err(err(
            "prefix",
            format!("{p:?} must be absolute-looking (start with /)"),
        ));
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err(err("prefix", format!("{p:?} must not end with /")));
    }
    if p == "/" {
        return Err(err(
            "prefix",
            "\"/\" would put the fleet at the root of etcd: name it, e.g. /rondo",
        ));
    }
    for seg in p[1..].split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(err(
                "prefix",
                format!("{p:?} has an empty, \".\" or \"..\" segment"),
            ));
        }
    }
    if let Some(c) = p.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(err(
            "prefix",
            format!("{p:?} has {c:?}: only printable ASCII without spaces"),
        ));
    }
    Ok(())
}

fn validate_name(n: &str) -> Result<(), SettingsError> {
    if n.is_empty() || n.len() > 64 {
        return Err(err("name", format!("{n:?} must be 1 to 64 characters")));
    }
    if let Some(c) = n
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(err(
            "name",
            format!("{n:?} has {c:?}: only letters, digits, '-', '_' and '.'"),
        ));
    }
    if n == "." || n == ".." {
        return Err(err("name", format!("{n:?} is not a name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> EtcdSettings {
        EtcdSettings::new(vec!["http://127.0.0.1:2379".into()], "/rondo/prod", "d1")
    }

    fn field_of(s: &EtcdSettings) -> String {
        s.validate().unwrap_err().field
    }

    #[test]
    fn defaults_validate() {
        good().validate().unwrap();
    }

    #[test]
    fn toml_round_trip_with_defaults() {
        let s = EtcdSettings::from_toml_str(
            "endpoints = [\"https://a.example:2379\"]\nprefix = \"/r\"\nname = \"d-1\"\nuser = \"u\"\npassword = \"p\"\n[tls]\nca = \"/ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(s.request_timeout_ms, 5000);
        assert_eq!(s.max_document_bytes, DEFAULT_MAX_DOCUMENT_BYTES);
        assert_eq!(s.tls.unwrap().ca, PathBuf::from("/ca.pem"));
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = EtcdSettings::from_toml_str(
            "endpoints = [\"http://a:1\"]\nprefix = \"/r\"\nname = \"d\"\nendpiont = 1\n",
        )
        .unwrap_err();
        assert!(e.message.contains("endpiont"), "{e}");
    }

    #[test]
    fn bad_fields_are_named() {
        let mut s = good();
        s.endpoints.clear();
        assert_eq!(field_of(&s), "endpoints");
        let mut s = good();
        s.endpoints.push("127.0.0.1:2379".into());
        assert_eq!(field_of(&s), "endpoints[1]");
        let mut s = good();
        s.endpoints[0] = "https://127.0.0.1:2379".into(); // no [tls]
        assert_eq!(field_of(&s), "endpoints[0]");
        let mut s = good();
        s.endpoints[0] = "http://127.0.0.1:0".into();
        assert_eq!(field_of(&s), "endpoints[0]");
        for p in [
            "rondo", "/", "/a/../b", "/a//b", "/a/", "/a b", "/./a", "/..",
        ] {
            let mut s = good();
            s.prefix = p.into();
            assert_eq!(field_of(&s), "prefix", "{p:?}");
        }
        for n in ["", "a/b", "..", "a b"] {
            let mut s = good();
            s.name = n.into();
            assert_eq!(field_of(&s), "name", "{n:?}");
        }
        let mut s = good();
        s.user = Some("u".into());
        assert_eq!(field_of(&s), "password");
        let mut s = good();
        s.password = Some("p".into());
        assert_eq!(field_of(&s), "user");
        let mut s = good();
        s.endpoints[0] = "https://h:1".into();
        s.tls = Some(TlsSettings {
            ca: "/ca".into(),
            cert: Some("/c".into()),
            key: None,
            domain: None,
        });
        assert_eq!(field_of(&s), "tls.cert");
        let mut s = good();
        s.connect_timeout_ms = 0;
        assert_eq!(field_of(&s), "connect_timeout_ms");
        let mut s = good();
        s.request_timeout_ms = 10_000_000;
        assert_eq!(field_of(&s), "request_timeout_ms");
        let mut s = good();
        s.max_document_bytes = MAX_DOCUMENT_LIMIT + 1;
        assert_eq!(field_of(&s), "max_document_bytes");
    }
}
