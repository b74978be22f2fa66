use std::fmt::Write as _;
use std::path::Path;

use crate::config::{load_file, Loaded};
use crate::table::diff::{self, pct, shares};
use crate::table::{glb_bin, glb_json, ForwardingTable, RowPolicy};

fn tables_of(file: &Path) -> Result<Vec<ForwardingTable>, String> {
    match load_file(file).map_err(|e| e.to_string())? {
        Loaded::Config(c) => Ok(c.tables),
        Loaded::Tables(t) => Ok(t),
        Loaded::Director(..) => Err(format!(
            "{}: a GLB director.conf holds no tables; give the forwarding table file",
            file.display()
        )),
    }
}

/// `rondo table build IN.json OUT.bin`: GLB's `glb-director-cli build-config`.
pub fn build(input: &Path, output: &Path) -> Result<(), String> {
    let file = input.display().to_string();
    let text = crate::sys::file::read_text_bounded(
        input,
        crate::sys::file::CONFIG_LIMIT,
        "a JSON forwarding table",
    )
    .map_err(|e| e.to_string())?;
    let specs = glb_json::parse(&text, &file).map_err(|e| e.to_string())?;
    let tables = specs
        .into_iter()
        .map(|s| ForwardingTable::build(s, RowPolicy::Glb))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{file}: {e}"))?;
    glb_bin::write_atomic(output, &tables).map_err(|e| e.to_string())?;
    println!("{}: {} table(s) written", output.display(), tables.len());
    Ok(())
}

fn select<'a>(
    tables: &'a [ForwardingTable],
    sel: Option<&str>,
) -> Result<Vec<(usize, &'a ForwardingTable)>, String> {
    match sel {
        None => Ok(tables.iter().enumerate().collect()),
        Some(s) => {
            let found = tables
                .iter()
                .enumerate()
                .find(|(i, t)| t.spec.name == s || s.parse::<usize>().ok() == Some(*i));
            found.map(|x| vec![x]).ok_or_else(|| {
                let names: Vec<_> = tables.iter().map(|t| t.spec.name.as_str()).collect();
                format!(
                    "no table {s:?}; tables are {} (or their index)",
                    names.join(", ")
                )
            })
        }
    }
}

/// Render one table for `show`.
pub fn render(i: usize, t: &ForwardingTable, row: Option<u16>) -> String {
    let mut o = String::new();
    let hex = |k: &[u8; 16]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let _ = writeln!(
        o,
        "table {i} {:?}  policy {:?}  hops/row {}",
        t.spec.name,
        t.policy,
        t.hops()
    );
    let _ = writeln!(
        o,
        "  hash_key {}  seed {}",
        hex(&t.spec.hash_key),
        t.spec
            .seed
            .as_ref()
            .map_or("(not stored in .bin)".to_string(), hex)
    );
    let _ = writeln!(o, "  binds ({}):", t.spec.binds.len());
    for b in &t.spec.binds {
        let ports = if b.port_start == b.port_end {
            b.port_start.to_string()
        } else {
            format!("{}-{}", b.port_start, b.port_end)
        };
        let _ = writeln!(
            o,
            "    {}/{} {} {}",
            b.addr,
            b.prefix_len,
            b.proto.as_str(),
            ports
        );
    }
    let _ = writeln!(o, "  backends ({}):", t.spec.backends.len());
    let _ = writeln!(
        o,
        "    {:>3}  {:<40} {:<9} {:<9} {:>6} {:>9} {:>9}",
        "idx", "ip", "state", "health", "weight", "primary", "secondary"
    );
    for (k, (b, sh)) in t.spec.backends.iter().zip(shares(t)).enumerate() {
        let _ = writeln!(
            o,
            "    {k:>3}  {:<40} {:<9} {:<9} {:>6} {:>8.2}% {:>8.2}%",
            b.ip.to_string(),
            b.state.as_str(),
            if b.healthy { "up" } else { "down" },
            b.weight,
            pct(sh.primary),
            pct(sh.secondary)
        );
    }
    if let Some(r) = row {
        let hops: Vec<String> = t
            .row(r)
            .iter()
            .map(|&b| format!("{} ({})", t.spec.backends[b as usize].ip, b))
            .collect();
        let _ = writeln!(o, "  row {r:#06x}: {}", hops.join(" -> "));
    }
    o
}

/// `rondo table show FILE [--table N] [--row R]`.
pub fn show(file: &Path, table: Option<&str>, row: Option<u16>) -> Result<(), String> {
    let tables = tables_of(file)?;
    for (i, t) in select(&tables, table)? {
        print!("{}", render(i, t, row));
    }
    Ok(())
}

/// What a change from `a` to `b` moves, per table (matched by name, else by position).
pub fn diff_tables(a: &[ForwardingTable], b: &[ForwardingTable]) -> String {
    let mut o = String::new();
    for (i, ta) in a.iter().enumerate() {
        let tb = b
            .iter()
            .find(|t| t.spec.name == ta.spec.name)
            .or_else(|| b.get(i));
        let Some(tb) = tb else {
            let _ = writeln!(o, "table {:?}: removed", ta.spec.name);
            continue;
        };
        let d = diff::diff(ta, tb);
        let _ = writeln!(o, "{}", d.summary(&ta.spec.name));
        o.push_str(&d.share_lines(false));
    }
    for tb in b.iter().skip(a.len()) {
        if !a.iter().any(|t| t.spec.name == tb.spec.name) {
            let _ = writeln!(o, "table {:?}: added", tb.spec.name);
        }
    }
    o
}

/// `rondo table diff A B`.
pub fn diff(a: &Path, b: &Path) -> Result<(), String> {
    print!("{}", diff_tables(&tables_of(a)?, &tables_of(b)?));
    Ok(())
}

/// The config a lookup runs against: a config file (TOML, or GLB `director.conf` with
/// `forwarding_table`), or a table file alone with GLB's default settings (`hash_fields`:
/// the source address); the second value says which.
fn lookup_config(
    file: &Path,
    forwarding_table: Option<&Path>,
) -> Result<(crate::config::Config, &'static str), String> {
    if forwarding_table.is_none() {
        if let Loaded::Tables(tables) = load_file(file).map_err(|e| e.to_string())? {
            let settings = crate::config::DirectorSettings {
                gateway_mac: crate::wire::MacAddr([0; 6]),
                src_mac: crate::config::DEFAULT_SRC_MAC,
                src_ipv4: std::net::Ipv4Addr::UNSPECIFIED,
                src_ipv6: Some(std::net::Ipv6Addr::UNSPECIFIED),
                forward_icmp_ping_responses: false,
                hash_fields: crate::config::HashFields::default(),
                alt_hash_fields: None,
                row_policy: RowPolicy::Glb,
            };
            let config = crate::config::Config {
                settings,
                tables,
                run: crate::config::RunSettings::default(),
            };
            return Ok((
                config,
                "a table file alone: GLB's default hash_fields (src_addr); give the director's config for its own",
            ));
        }
    }
    crate::config::load_config(file, forwarding_table)
        .map(|c| (c, ""))
        .map_err(|e| e.to_string())
}

/// `rondo table lookup FILE SRC[:PORT] DST[:PORT] PROTO`: where the flow goes.
pub fn lookup(
    file: &Path,
    forwarding_table: Option<&Path>,
    src: &str,
    dst: &str,
    proto: &str,
    cid: Option<&str>,
) -> Result<(), String> {
    use crate::datapath::explain::{explain, FlowQuery};
    let mut q = FlowQuery::parse(src, dst, proto).map_err(|e| e.to_string())?;
    if let Some(cid) = cid {
        q = q.with_cid(cid).map_err(|e| e.to_string())?;
    }
    let (config, note) = lookup_config(file, forwarding_table)?;
    let snap = crate::datapath::Snapshot::compile(config, None, 0)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if !note.is_empty() {
        println!("({note})");
    }
    print!("{}", explain(&snap, &q));
    Ok(())
}
