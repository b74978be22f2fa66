//! `[fleet]` in a native config: the director follows a fleet's desired document in etcd
//! (the [`EtcdSettings`](crate::fleet::etcd::EtcdSettings) table: endpoints, prefix, name,
//! timeouts, lease TTL, cache). Its tables come from etcd `<prefix>/desired`, so the config
//! holds no `[[tables]]` nor `forwarding_table`; `[director]`, ports, `[console]`,
//! `[metrics]` and `[bgp]` stay local. A build without the `etcd` cargo feature refuses
//! `[fleet]`, saying so.

use toml::Spanned;

use super::ConfigError;

/// What `[fleet]` is in this build: the etcd settings, or (without the `etcd` feature) a
/// type with no values, since such a build never accepts `[fleet]`.
#[cfg(feature = "etcd")]
pub type FleetSettings = crate::fleet::etcd::EtcdSettings;

/// Without the `etcd` feature no config has `[fleet]`: this type has no values.
#[cfg(not(feature = "etcd"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetSettings {}

fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parse and validate the `[fleet]` table of `file`.
#[cfg(feature = "etcd")]
pub(super) fn parse(
    file: &str,
    text: &str,
    t: &Spanned<toml::Table>,
) -> Result<FleetSettings, ConfigError> {
    use serde::Deserialize;
    let line = Some(line_of(text, t.span().start));
    let s = FleetSettings::deserialize(toml::Value::Table(t.get_ref().clone())).map_err(|e| {
        ConfigError::field(
            file,
            line,
            "fleet",
            format!(
                "{} (the [fleet] keys: endpoints, tls, user, password, prefix, name, connect_timeout_ms, request_timeout_ms, max_document_bytes, lease_ttl_ms, cache)",
                e.message()
            ),
        )
    })?;
    s.validate()
        .map_err(|e| ConfigError::field(file, line, format!("fleet.{}", e.field), e.message))?;
    Ok(s)
}

/// Without the `etcd` feature: `[fleet]` is refused, saying how to get it.
#[cfg(not(feature = "etcd"))]
pub(super) fn parse(
    file: &str,
    text: &str,
    t: &Spanned<toml::Table>,
) -> Result<FleetSettings, ConfigError> {
    Err(ConfigError::field(
        file,
        Some(line_of(text, t.span().start)),
        "fleet",
        "this rondo was built without etcd support: [fleet] needs a build with `cargo build --release --features etcd`",
    ))
}

/// The error for a `[fleet]` config that also names tables.
pub(super) fn tables_refused(file: &str, line: Option<usize>, what: &str) -> ConfigError {
    ConfigError::field(
        file,
        line,
        what,
        "a director with [fleet] takes its tables from etcd <prefix>/desired: drop the config's [[tables]] and `forwarding_table` (push them with `rondo fleet push`)",
    )
}

/// `text`'s line of byte `at`.
pub(super) fn line(text: &str, at: usize) -> usize {
    line_of(text, at)
}

#[cfg(test)]
mod tests {
    use crate::config::native::parse;
    #[cfg(feature = "etcd")]
    use crate::config::native::NativeTables;

    const HEAD: &str = "[director]\noutbound_gateway_mac = \"02:00:00:00:00:fe\"\noutbound_src_ip = \"192.0.2.10\"\n";
    const FLEET: &str = "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/rondo/t\"\nname = \"d1\"\ncache = \"/tmp/x.cache\"\n";

    #[cfg(feature = "etcd")]
    #[test]
    fn a_fleet_config_has_no_tables_and_validates_its_settings() {
        let c = parse(&format!("{HEAD}{FLEET}"), "c.toml").unwrap();
        assert!(matches!(c.tables, NativeTables::Fleet));
        let f = c.run.fleet.unwrap();
        assert_eq!(f.prefix, "/rondo/t");
        assert_eq!(f.lease_ttl_ms, 3000);
        let e = parse(
            &format!("{HEAD}{}", FLEET.replace("/rondo/t", "rondo")),
            "c.toml",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("c.toml:4: fleet.prefix"), "{e}");
        let e = parse(&format!("{HEAD}{FLEET}endpiont = 1\n"), "c.toml")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("fleet: unknown field") && e.contains("the [fleet] keys"),
            "{e}"
        );
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn a_fleet_config_with_tables_is_refused() {
        let tables = "[[tables]]\nname = \"web\"\nhash_key = \"12345678901234561234567890123456\"\nseed = \"34567890123456783456789012345678\"\nbackends = [{ ip = \"10.1.0.1\" }]\n";
        let e = parse(&format!("{HEAD}{tables}{FLEET}"), "c.toml")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("takes its tables from etcd"), "{e}");
        let e = parse(
            &format!("forwarding_table = \"t.json\"\n{HEAD}{FLEET}"),
            "c.toml",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("c.toml:1: forwarding_table") && e.contains("takes its tables from etcd"),
            "{e}"
        );
    }

    #[cfg(not(feature = "etcd"))]
    #[test]
    fn without_the_etcd_feature_fleet_is_refused_saying_how() {
        let e = parse(&format!("{HEAD}{FLEET}"), "c.toml")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("c.toml:4: fleet") && e.contains("--features etcd"),
            "{e}"
        );
    }
}
