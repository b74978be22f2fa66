//! Director configs the tests share.

/// One table, "web": VIP 1.1.1.1:80/tcp, three backends 10.1.0.1-3, fixed key and seed
/// (so its rows are known), encapsulated frames to gateway 02:00:00:00:00:fe from
/// 192.0.2.10.
pub const WEB_DIRECTOR: &str = r#"[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }]
"#;
