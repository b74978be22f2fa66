//! Configs shared by unit tests.

/// A director with one table, "web" (1.1.1.1:80/tcp, fixed key and seed), whose backends
/// are `backends`, a TOML array.
pub(crate) fn web_table(backends: &str) -> String {
    format!(
        r#"
[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "1.1.1.1", proto = "tcp", port = 80 }}]
backends = {backends}
"#
    )
}
