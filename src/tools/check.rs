use std::path::Path;

use crate::config::{load_file, load_glb, Loaded};
use crate::datapath::Snapshot;

/// `rondo check-config FILE [--forwarding-table T]`.
pub fn run(file: &Path, table: Option<&Path>) -> Result<(), String> {
    if table.is_none() {
        // Refuse FIFOs and devices here already, with the reader's message, before
        // sniffing the text. Past the config limit only a `.bin` table may be: the loader
        // below decides, without reading it twice here.
        let bytes = match crate::sys::file::read_bounded(
            file,
            crate::sys::file::CONFIG_LIMIT,
            "a config file",
        ) {
            Ok(b) => b,
            Err(crate::sys::file::ReadError::TooLarge { .. }) => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        let text = std::str::from_utf8(&bytes).unwrap_or_default();
        if crate::redirect::config::is_redirect_config(text) {
            let c = crate::redirect::config::parse(text, &file.display().to_string())
                .map_err(|e| e.to_string())?;
            let quic = match &c.quic_lb {
                Some(q) => format!(
                    ", QUIC-LB server ID {} on UDP {:?} ({} configuration(s))",
                    q.server_id,
                    q.ports,
                    q.configs.len()
                ),
                None => String::new(),
            };
            println!(
                "{}: OK: backend config (rondo redirect): {} listen address(es), {} director net(s), {} backend net(s), TUN {}{quic}",
                file.display(),
                c.listen.len(),
                c.directors.nets().len(),
                c.backends.nets().len(),
                c.tun
            );
            return Ok(());
        }
    }
    let loaded = match table {
        Some(t) => {
            let (cfg, rt) = load_glb(file, t).map_err(|e| e.to_string())?;
            println!(
                "{}: GLB director.conf: {} flow path(s), {} lcore(s){}",
                file.display(),
                rt.flow_paths.len(),
                rt.lcores.len(),
                if rt.wants_exception_path() {
                    ", exception path (kni) wanted"
                } else {
                    ""
                }
            );
            Loaded::Config(Box::new(cfg))
        }
        None => load_file(file).map_err(|e| e.to_string())?,
    };
    match loaded {
        #[cfg(feature = "etcd")]
        Loaded::Config(cfg) if cfg.run.fleet.is_some() => {
            if let Some(f) = &cfg.run.fleet {
                println!(
                    "{}: OK: fleet director (tables from etcd {}/desired)",
                    file.display(),
                    f.prefix
                );
                println!("{}", fleet_line(f));
            }
            if let Some(b) = &cfg.run.bgp {
                println!("{}: {}", file.display(), bgp_line(b));
            }
        }
        Loaded::Config(cfg) => {
            let n_tables = cfg.tables.len();
            let binds: usize = cfg.tables.iter().map(|t| t.spec.binds.len()).sum();
            let backends: usize = cfg.tables.iter().map(|t| t.spec.backends.len()).sum();
            let bgp = cfg.run.bgp.clone();
            Snapshot::compile(*cfg, None, 0).map_err(|e| format!("{}: {e}", file.display()))?;
            println!("{}: OK: {n_tables} table(s), {binds} bind(s), {backends} backend(s)", file.display());
            if let Some(b) = bgp {
                println!("{}: {}", file.display(), bgp_line(&b));
            }
        }
        Loaded::Director(_, rt) => println!(
            "{}: OK: GLB director.conf ({} flow path(s), {} lcore(s)); give --forwarding-table to check it with its table",
            file.display(),
            rt.flow_paths.len(),
            rt.lcores.len()
        ),
        Loaded::Tables(tables) => {
            crate::datapath::snapshot::check_overlaps(&tables)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            for t in &tables {
                println!(
                    "{}: OK: table {:?}: {} bind(s), {} backend(s)",
                    file.display(),
                    t.spec.name,
                    t.spec.binds.len(),
                    t.spec.backends.len()
                );
            }
        }
    }
    Ok(())
}

/// What `[bgp]` makes `rondo run` do, in one line (`check-config` prints it).
fn bgp_line(b: &crate::fleet::bgp::BgpRunSettings) -> String {
    let s = &b.bird;
    let mut extra = Vec::new();
    if !s.communities.is_empty() || !s.large_communities.is_empty() {
        let n = s.communities.len() + s.large_communities.len();
        extra.push(format!(
            "{n} {}",
            if n == 1 { "community" } else { "communities" }
        ));
    }
    if let Some(m) = s.med {
        extra.push(format!("MED {m}"));
    }
    if !s.sessions.is_empty() {
        extra.push(format!(
            "sessions {}",
            s.sessions
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    format!(
        "bgp: BIRD at {}, include {}{}; on SIGTERM graceful {} ms, drain up to {} ms; a worker stalled {} ms withdraws",
        s.socket.display(),
        s.include.display(),
        if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        },
        b.graceful.as_millis(),
        b.drain.as_millis(),
        b.stall.as_millis()
    )
}

/// `fleet: endpoints ..., prefix ..., name ..., cache ...` for `check-config`.
#[cfg(feature = "etcd")]
pub fn fleet_line(f: &crate::fleet::etcd::EtcdSettings) -> String {
    format!(
        "fleet: endpoints {}, prefix {}, name {}, cache {}{}",
        f.endpoints.join(","),
        f.prefix,
        f.name,
        f.cache.as_ref().map_or(
            "none (a restart without etcd cannot start)".to_string(),
            |c| c.display().to_string()
        ),
        if f.tls.is_some() { ", tls" } else { "" }
    )
}
