//! `rondo quic-lb`: QUIC-LB configurations (draft-ietf-quic-load-balancers-21) by hand.
//!
//! - `keygen`: a new configuration as a TOML snippet, its AES-128 key from the OS;
//! - `encode --config C --server-id HEX [--count N]`: sample CIDs of that server;
//! - `decode --config C CID`: what the director makes of a CID: its configuration
//!   (codepoint) and server ID, or why it is unroutable.
//!
//! `--config` is a file or the snippet itself: `quic_lb = { ... }`, `quic_lb = [{ ... },
//! { ... }]` (two while keys rotate), the inline table `{ ... }` alone, or a document of
//! `config_id = ...` lines (the shape: [`crate::quic_lb::QuicLbSpec`]).

use std::path::Path;

use clap::{Args, Subcommand};

use crate::quic_lb::{
    parse_hex, to_hex, CounterNonce, Decoded, NonceSource, QuicLbConfig, QuicLbConfigs, QuicLbSpec,
    RandomNonce, ServerId, MAX_CID_LEN,
};

#[derive(Args)]
pub struct QuicLbArgs {
    #[command(subcommand)]
    cmd: QuicLbCmd,
}

#[derive(Subcommand)]
enum QuicLbCmd {
    /// Print a new configuration as a TOML snippet, with a random AES-128 key from the OS.
    /// The defaults (3-byte server IDs, 13-byte nonces) make 17-byte CIDs that take a
    /// single AES block to decode.
    Keygen {
        /// Config rotation codepoint, 0..=6 (the top three bits of every CID).
        #[arg(long, default_value_t = 0)]
        config_id: u32,
        /// Server ID length in bytes, 1..=15.
        #[arg(long, default_value_t = 3)]
        server_id_len: u32,
        /// Nonce length in bytes, 4..=18; server ID and nonce at most 19 together (16:
        /// single-pass AES, any other: four passes).
        #[arg(long, default_value_t = 13)]
        nonce_len: u32,
        /// No key: plaintext CIDs, whose server ID anyone on the path can read.
        #[arg(long)]
        plaintext: bool,
        /// Servers write the CID length in the first octet's low five bits.
        #[arg(long)]
        encode_length: bool,
    },
    /// Print sample CIDs a server with this ID issues.
    Encode {
        /// A file or snippet (see `rondo quic-lb --help`).
        #[arg(long)]
        config: String,
        /// The server ID in hex, of the configuration's server_id_len.
        #[arg(long)]
        server_id: String,
        /// How many CIDs.
        #[arg(long, default_value_t = 4)]
        count: u32,
        /// With two configurations: the codepoint to encode with.
        #[arg(long)]
        config_id: Option<u8>,
    },
    /// What the director makes of a CID: its configuration (codepoint) and server ID, or
    /// why it is unroutable.
    Decode {
        /// A file or snippet (see `rondo quic-lb --help`).
        #[arg(long)]
        config: String,
        /// The connection ID in hex (1..=20 bytes).
        cid: String,
    },
}

pub fn run(a: &QuicLbArgs) -> Result<(), String> {
    match &a.cmd {
        QuicLbCmd::Keygen {
            config_id,
            server_id_len,
            nonce_len,
            plaintext,
            encode_length,
        } => {
            let key = if *plaintext {
                None
            } else {
                let mut k = [0u8; 16];
                getrandom::fill(&mut k).map_err(|e| format!("no random key from the OS: {e}"))?;
                Some(to_hex(&k))
            };
            let spec = QuicLbSpec {
                config_id: *config_id,
                server_id_len: *server_id_len,
                nonce_len: *nonce_len,
                key,
                encode_length: *encode_length,
            };
            let config = spec.build().map_err(|e| e.to_string())?;
            print!("{}", snippet(&config));
            Ok(())
        }
        QuicLbCmd::Encode {
            config,
            server_id,
            count,
            config_id,
        } => {
            let configs = load(config)?;
            let c = match config_id {
                Some(id) => configs
                    .get(*id)
                    .ok_or_else(|| format!("--config-id {id}: {}", no_config(&configs, *id)))?,
                None if configs.len() > 1 => {
                    return Err(format!(
                        "{} configurations (codepoints {}): say which with --config-id",
                        configs.len(),
                        codepoints(&configs)
                    ))
                }
                None => configs.iter().next().ok_or("no configuration")?,
            };
            let id = ServerId::from_hex(server_id).map_err(|e| e.to_string())?;
            if id.len() != c.server_id_len() {
                return Err(format!(
                    "--server-id {id}: {} bytes; configuration {} has server_id_len {}",
                    id.len(),
                    c.config_id(),
                    c.server_id_len()
                ));
            }
            let mut counter;
            let mut random;
            let nonces: &mut dyn NonceSource = if c.key().is_some() {
                counter = CounterNonce::from_os(c.nonce_len()).map_err(|e| e.to_string())?;
                &mut counter
            } else {
                random = RandomNonce::new();
                &mut random
            };
            let mut out = [0u8; MAX_CID_LEN];
            for _ in 0..*count {
                let n = c.encode(&id, nonces, &mut out).map_err(|e| e.to_string())?;
                println!("{}", to_hex(&out[..n]));
            }
            Ok(())
        }
        QuicLbCmd::Decode { config, cid } => {
            let configs = load(config)?;
            let mut buf = [0u8; MAX_CID_LEN];
            let n = parse_hex(cid, &mut buf).map_err(|e| format!("CID: {e}"))?;
            if n == 0 {
                return Err("CID: empty (expected 1..=20 bytes of hex)".into());
            }
            println!("{}", explain(&configs, &buf[..n]));
            Ok(())
        }
    }
}

/// The TOML snippet of `c`, with a comment saying what it makes.
fn snippet(c: &QuicLbConfig) -> String {
    let s = c.spec();
    let mut fields = format!(
        "config_id = {}, server_id_len = {}, nonce_len = {}",
        s.config_id, s.server_id_len, s.nonce_len
    );
    if s.encode_length {
        fields.push_str(", encode_length = true");
    }
    if let Some(k) = &s.key {
        fields.push_str(&format!(", key = \"{k}\""));
    }
    format!(
        "# QUIC-LB (draft-ietf-quic-load-balancers-21): codepoint {}, {}-byte server IDs, {}-byte nonces,\n\
         # {}-byte CIDs, {}.{}\n\
         quic_lb = {{ {fields} }}\n",
        c.config_id(),
        c.server_id_len(),
        c.nonce_len(),
        c.cid_len(),
        c.algorithm(),
        if s.key.is_some() {
            " Keep the key secret: it is the director's and the servers'."
        } else {
            " No key: the server ID is in the clear."
        }
    )
}

/// `arg` as a file if one exists by that name, else as the snippet itself.
fn load(arg: &str) -> Result<QuicLbConfigs, String> {
    let (name, text) = if Path::new(arg).is_file() {
        let text = std::fs::read_to_string(arg).map_err(|e| format!("{arg}: {e}"))?;
        (arg.to_string(), text)
    } else {
        ("--config".to_string(), arg.to_string())
    };
    parse_configs(&text).map_err(|e| format!("{name}: {e}"))
}

/// The configurations of a snippet or file (see the module doc).
fn parse_configs(text: &str) -> Result<QuicLbConfigs, String> {
    let text = if text.trim_start().starts_with('{') {
        format!("quic_lb = {text}")
    } else {
        text.to_string()
    };
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| e.to_string().trim_end().to_string())?;
    let values: Vec<toml::Value> = match doc.get("quic_lb") {
        Some(toml::Value::Array(a)) => a.clone(),
        Some(v @ toml::Value::Table(_)) => vec![v.clone()],
        Some(_) => return Err("quic_lb: expected a table or an array of tables".into()),
        None => vec![toml::Value::Table(doc)],
    };
    if values.is_empty() {
        return Err("quic_lb: no configuration".into());
    }
    let specs = values
        .into_iter()
        .map(|v| {
            v.try_into::<QuicLbSpec>()
                .map_err(|e| e.message().to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    QuicLbConfigs::from_specs(&specs).map_err(|e| e.to_string())
}

fn codepoints(configs: &QuicLbConfigs) -> String {
    let ids: Vec<String> = configs.iter().map(|c| c.config_id().to_string()).collect();
    ids.join(", ")
}

fn no_config(configs: &QuicLbConfigs, cp: u8) -> String {
    format!(
        "codepoint {cp} has no configuration here (configured: {})",
        codepoints(configs)
    )
}

/// One line: what the director makes of `cid`.
fn explain(configs: &QuicLbConfigs, cid: &[u8]) -> String {
    let cp = crate::quic_lb::codepoint(cid[0]);
    match configs.decode(cid) {
        Decoded::ServerId(id) => {
            let mut line = match configs.get(cp) {
                Some(c) => format!(
                    "configuration {cp} ({}): server ID {id}",
                    c.algorithm()
                ),
                None => format!("server ID {id}"),
            };
            if let Some(p) = configs.get(cp).and_then(|c| c.decrypt(cid).ok()) {
                line.push_str(&format!(", nonce {}", to_hex(p.nonce())));
            }
            line
        }
        Decoded::Unroutable => format!(
            "unroutable: codepoint 7 (0b111), a CID of a server without a configuration ({} bytes, self-encoded length {})",
            cid.len(),
            usize::from(cid[0] & 0x1f) + 1
        ),
        Decoded::UnknownConfig(cp) => format!("unroutable: {}", no_config(configs, cp)),
        Decoded::TooShort => format!(
            "unroutable: {} bytes, shorter than configuration {cp}'s {}-byte CIDs",
            cid.len(),
            configs.get(cp).map_or(0, QuicLbConfig::cid_len)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_in_every_accepted_shape() {
        let one = "{ config_id = 1, server_id_len = 3, nonce_len = 4 }";
        for text in [
            one.to_string(),
            format!("quic_lb = {one}"),
            format!("quic_lb = [{one}]"),
            "config_id = 1\nserver_id_len = 3\nnonce_len = 4\n".to_string(),
            "[quic_lb]\nconfig_id = 1\nserver_id_len = 3\nnonce_len = 4\n".to_string(),
        ] {
            let c = parse_configs(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.get(1).unwrap().cid_len(), 8, "{text}");
        }
        let two = parse_configs(
            "quic_lb = [{ config_id = 1, server_id_len = 3, nonce_len = 4 }, { config_id = 2, server_id_len = 3, nonce_len = 4 }]",
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert!(parse_configs("quic_lb = 3").is_err());
        assert!(parse_configs("quic_lb = []").is_err());
        assert!(parse_configs("{ config_id = 1 }")
            .unwrap_err()
            .contains("server_id_len"));
    }

    #[test]
    fn a_keygen_snippet_loads_back() {
        let key = [0x5au8; 16];
        let c = QuicLbConfig::new(4, 3, 13, Some(&key)).unwrap();
        let text = snippet(&c);
        let back = parse_configs(&text).unwrap();
        assert_eq!(back.get(4).unwrap().key(), Some(&key));
        assert!(text.contains("single-pass"), "{text}");
    }
}
