//! GLB's binary forwarding table, format version 2, as read by
//! `glb-director` and written by `glb-director-cli build-config`.
//!
//! ```text
//! header (24):  magic "GLBD" | version 2 | num_tables | 65536 | 256 | 256   (u32 LE each)
//! per table (537624):
//!   0      num_backends u32
//!   4      256 x backend (24): family u32, addr [16], state u16, healthy u16
//!   6148   num_binds u32
//!   6152   256 x bind (28): family u32, addr [16], ip_bits u16, port_start u16,
//!                           port_end u16, proto u8, reserved u8
//!   13320  secure_key [16]  (the table's hash_key)
//!   13336  65536 x (primary_idx u32, secondary_idx u32)
//! ```
//!
//! [`decode`] is total (never panics) and strict: it accepts exactly the files that
//! [`encode`] can produce, so `encode(decode(f)) == f` for every accepted `f`. In
//! particular unused backend/bind slots, the 12 padding bytes after an IPv4 address and
//! the bind's reserved byte must be zero (GLB's writer zeroes them; anything else means
//! corruption or a foreign writer), states must be 0..=2 and health 0 or 1.
//!
//! The format is lossy: it has no table names, no rendezvous seed, no weights, no health
//! check settings, and one code (2) for both `draining` and `inactive`. Decoded tables
//! are named `table0`, `table1`, ..., have `seed: None` (so they cannot be rebuilt),
//! weight 1, no health checks, policy [`RowPolicy::Glb`], and state 2 becomes
//! [`BackendState::Draining`] (an inactive backend never appears in a GLB row, so the
//! rows mean the same either way).

use super::build::{GLB_MAX_BACKENDS, GLB_MAX_BINDS};
use super::{
    Backend, BackendState, Bind, ForwardingTable, HealthChecks, Proto, RowPolicy, TableError,
    TableSpec, TABLE_ROWS,
};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Magic word, `"GLBD"` on disk (read as a little-endian u32).
pub const MAGIC: u32 = 0x4442_4c47;
/// The only format version Rondo reads and writes.
pub const VERSION: u32 = 2;
/// Size of the file header.
pub const HEADER_LEN: usize = 24;
/// Size of one table.
pub const TABLE_LEN: usize = ROWS_OFF + TABLE_ROWS * 8;

const BACKEND_LEN: usize = 24;
const BIND_LEN: usize = 28;
const BACKENDS_OFF: usize = 4;
const NUM_BINDS_OFF: usize = BACKENDS_OFF + GLB_MAX_BACKENDS * BACKEND_LEN;
const BINDS_OFF: usize = NUM_BINDS_OFF + 4;
const KEY_OFF: usize = BINDS_OFF + GLB_MAX_BINDS * BIND_LEN;
const ROWS_OFF: usize = KEY_OFF + 16;

const FAMILY_V4: u32 = 1;
const FAMILY_V6: u32 = 2;

const STATE_FILLING: u16 = 0;
const STATE_ACTIVE: u16 = 1;
const STATE_DRAINING_INACTIVE: u16 = 2;

/// Family code and the 16 address bytes (IPv4 in the first 4, the rest zero).
fn addr_bytes(ip: IpAddr) -> (u32, [u8; 16]) {
    match ip {
        IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.octets());
            (FAMILY_V4, a)
        }
        IpAddr::V6(v6) => (FAMILY_V6, v6.octets()),
    }
}

fn state_code(s: BackendState) -> u16 {
    match s {
        BackendState::Filling => STATE_FILLING,
        BackendState::Active => STATE_ACTIVE,
        BackendState::Draining | BackendState::Inactive => STATE_DRAINING_INACTIVE,
    }
}

/// Serialise `tables` into a GLB v2 file.
///
/// Refuses (with the table's name) tables that the format cannot hold: more than 256
/// backends or binds, rows with other than 2 hops, a bind prefix longer than its address,
/// or `port_start > port_end`. Weights, names, seeds and health-check settings are not
/// stored (see the module docs).
pub fn encode(tables: &[ForwardingTable]) -> Result<Vec<u8>, TableError> {
    let num_tables = u32::try_from(tables.len()).map_err(|_| TableError::Invalid {
        table: String::new(),
        reason: format!("{} tables do not fit a GLB file", tables.len()),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + tables.len() * TABLE_LEN);
    for word in [
        MAGIC,
        VERSION,
        num_tables,
        TABLE_ROWS as u32,
        GLB_MAX_BACKENDS as u32,
        GLB_MAX_BINDS as u32,
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for t in tables {
        encode_table(t, &mut out)?;
    }
    Ok(out)
}

fn encode_table(t: &ForwardingTable, out: &mut Vec<u8>) -> Result<(), TableError> {
    let spec = &t.spec;
    let invalid = |reason: String| TableError::Invalid {
        table: spec.name.clone(),
        reason,
    };
    if spec.backends.len() > GLB_MAX_BACKENDS {
        return Err(TableError::TooMany {
            table: spec.name.clone(),
            what: "backends",
            count: spec.backends.len(),
        });
    }
    if spec.binds.len() > GLB_MAX_BINDS {
        return Err(TableError::TooMany {
            table: spec.name.clone(),
            what: "binds",
            count: spec.binds.len(),
        });
    }
    if t.hops() != 2 {
        return Err(invalid(format!(
            "rows have {} hops, but the GLB format stores exactly 2 (primary, secondary)",
            t.hops()
        )));
    }

    let start = out.len();
    // Counts are <= 256 (checked above).
    out.extend_from_slice(&(spec.backends.len() as u32).to_le_bytes());
    for b in &spec.backends {
        let (family, addr) = addr_bytes(b.ip);
        out.extend_from_slice(&family.to_le_bytes());
        out.extend_from_slice(&addr);
        out.extend_from_slice(&state_code(b.state).to_le_bytes());
        out.extend_from_slice(&u16::from(b.healthy).to_le_bytes());
    }
    out.resize(start + NUM_BINDS_OFF, 0);

    out.extend_from_slice(&(spec.binds.len() as u32).to_le_bytes());
    for (i, b) in spec.binds.iter().enumerate() {
        let (family, addr) = addr_bytes(b.addr);
        let max_bits = if family == FAMILY_V4 { 32 } else { 128 };
        if b.prefix_len > max_bits {
            return Err(invalid(format!(
                "bind {i} ({}/{}): prefix length is longer than the address ({max_bits} bits)",
                b.addr, b.prefix_len
            )));
        }
        if b.port_start > b.port_end {
            return Err(invalid(format!(
                "bind {i} ({}): port_start {} is greater than port_end {}",
                b.addr, b.port_start, b.port_end
            )));
        }
        out.extend_from_slice(&family.to_le_bytes());
        out.extend_from_slice(&addr);
        out.extend_from_slice(&u16::from(b.prefix_len).to_le_bytes());
        out.extend_from_slice(&b.port_start.to_le_bytes());
        out.extend_from_slice(&b.port_end.to_le_bytes());
        out.push(b.proto.number());
        out.push(0);
    }
    out.resize(start + KEY_OFF, 0);

    out.extend_from_slice(&spec.hash_key);
    for &idx in t.rows() {
        out.extend_from_slice(&idx.to_le_bytes());
    }
    debug_assert_eq!(out.len(), start + TABLE_LEN);
    Ok(())
}

/// Removes the temporary file unless disarmed.
struct TempGuard<'a> {
    path: Option<&'a Path>,
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Encode `tables` and write them to `path` atomically: a temporary file in the same
/// directory, `fsync`, then `rename` over `path` (readers see the old file or the new
/// one, never a partial one). Nothing is left behind on error, and nothing is written at
/// all when encoding fails.
pub fn write_atomic(path: &Path, tables: &[ForwardingTable]) -> Result<(), TableError> {
    let bytes = encode(tables)?;
    write_file_atomic(path, &bytes)
}

/// Write `bytes` to `path` atomically (temporary file in the same directory, `fsync`,
/// `rename`); nothing is left behind on error.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), TableError> {
    let file = path.display().to_string();
    let io = |source: std::io::Error| TableError::Io {
        file: file.clone(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path (no file name)",
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };

    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{n}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| TableError::Io {
            file: tmp.display().to_string(),
            source: e,
        })?;
    let mut guard = TempGuard { path: Some(&tmp) };
    let tmp_err = |source: std::io::Error| TableError::Io {
        file: tmp.display().to_string(),
        source,
    };
    f.write_all(bytes).map_err(tmp_err)?;
    f.sync_all().map_err(tmp_err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    guard.path = None;
    // Make the rename itself durable; not every platform lets a directory be synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Read and [`decode`] a GLB binary table file.
pub fn read(path: &Path) -> Result<Vec<ForwardingTable>, TableError> {
    let file = path.display().to_string();
    let bytes =
        crate::sys::file::read_bounded(path, crate::sys::file::TABLE_LIMIT, "a forwarding table")?;
    decode(&bytes, &file)
}

/// Little-endian readers over a slice whose length was checked up front.
struct Reader<'a> {
    bytes: &'a [u8],
    file: &'a str,
}

impl Reader<'_> {
    fn u16(&self, off: usize) -> u16 {
        let mut b = [0u8; 2];
        if let Some(s) = self.bytes.get(off..off + 2) {
            b.copy_from_slice(s);
        }
        u16::from_le_bytes(b)
    }

    fn u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        if let Some(s) = self.bytes.get(off..off + 4) {
            b.copy_from_slice(s);
        }
        u32::from_le_bytes(b)
    }

    fn array16(&self, off: usize) -> [u8; 16] {
        let mut b = [0u8; 16];
        if let Some(s) = self.bytes.get(off..off + 16) {
            b.copy_from_slice(s);
        }
        b
    }

    fn zero(&self, range: std::ops::Range<usize>) -> bool {
        self.bytes
            .get(range)
            .is_some_and(|s| s.iter().all(|&b| b == 0))
    }

    /// A format error at absolute byte offset `off` (in table `table` if given).
    fn err(&self, table: Option<usize>, off: usize, field: &str, what: String) -> TableError {
        let reason = match table {
            Some(t) => format!("table {t}, byte offset {off} ({field}): {what}"),
            None => format!("byte offset {off} ({field}): {what}"),
        };
        TableError::Format {
            file: self.file.to_string(),
            reason,
        }
    }
}

/// Parse a GLB v2 binary table file. `file` names the source in error messages, which
/// also give the table index, the absolute byte offset and the field.
///
/// Never panics; see the module docs for what is accepted and what is lost.
pub fn decode(bytes: &[u8], file: &str) -> Result<Vec<ForwardingTable>, TableError> {
    let r = Reader { bytes, file };
    if bytes.len() < HEADER_LEN {
        return Err(TableError::Format {
            file: file.to_string(),
            reason: format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte GLB header (truncated?)",
                bytes.len()
            ),
        });
    }
    let magic = r.u32(0);
    if magic != MAGIC {
        return Err(r.err(
            None,
            0,
            "magic",
            format!(
                "expected \"GLBD\" (47 4c 42 44), got {}; not a GLB forwarding table",
                hex(&bytes[..4])
            ),
        ));
    }
    let version = r.u32(4);
    if version != VERSION {
        return Err(r.err(
            None,
            4,
            "version",
            format!("expected format version {VERSION}, got {version}"),
        ));
    }
    let num_tables = r.u32(8);
    for (off, field, expected) in [
        (12, "table_entries", TABLE_ROWS as u32),
        (16, "max_num_backends", GLB_MAX_BACKENDS as u32),
        (20, "max_num_binds", GLB_MAX_BINDS as u32),
    ] {
        let got = r.u32(off);
        if got != expected {
            return Err(r.err(None, off, field, format!("expected {expected}, got {got}")));
        }
    }
    let expected_len = HEADER_LEN as u64 + u64::from(num_tables) * TABLE_LEN as u64;
    if bytes.len() as u64 != expected_len {
        return Err(TableError::Format {
            file: file.to_string(),
            reason: format!(
                "file is {} bytes, but its header says {num_tables} table(s), which take \
                 {HEADER_LEN} + {num_tables} x {TABLE_LEN} = {expected_len} bytes \
                 (truncated or corrupt)",
                bytes.len()
            ),
        });
    }
    (0..num_tables as usize)
        .map(|i| decode_table(&r, i, HEADER_LEN + i * TABLE_LEN))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decode the address at `off` for `family` (already validated), checking IPv4 padding.
fn decode_addr(
    r: &Reader,
    t: usize,
    off: usize,
    family: u32,
    field: &str,
) -> Result<IpAddr, TableError> {
    let a = r.array16(off);
    if family == FAMILY_V4 {
        if !r.zero(off + 4..off + 16) {
            return Err(r.err(
                Some(t),
                off + 4,
                field,
                "the 12 bytes after an IPv4 address must be zero".to_string(),
            ));
        }
        Ok(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])))
    } else {
        Ok(IpAddr::V6(Ipv6Addr::from(a)))
    }
}

fn decode_family(r: &Reader, t: usize, off: usize, field: &str) -> Result<u32, TableError> {
    match r.u32(off) {
        f @ (FAMILY_V4 | FAMILY_V6) => Ok(f),
        f => Err(r.err(
            Some(t),
            off,
            field,
            format!("expected address family 1 (IPv4) or 2 (IPv6), got {f}"),
        )),
    }
}

fn decode_table(r: &Reader, t: usize, base: usize) -> Result<ForwardingTable, TableError> {
    let num_backends = r.u32(base) as usize;
    if num_backends > GLB_MAX_BACKENDS {
        return Err(r.err(
            Some(t),
            base,
            "num_backends",
            format!("expected at most {GLB_MAX_BACKENDS}, got {num_backends}"),
        ));
    }
    let mut backends = Vec::with_capacity(num_backends);
    for i in 0..GLB_MAX_BACKENDS {
        let off = base + BACKENDS_OFF + i * BACKEND_LEN;
        if i >= num_backends {
            if !r.zero(off..off + BACKEND_LEN) {
                return Err(r.err(
                    Some(t),
                    off,
                    &format!("backends[{i}]"),
                    format!(
                        "unused backend slot (num_backends is {num_backends}) must be all zero"
                    ),
                ));
            }
            continue;
        }
        let family = decode_family(r, t, off, &format!("backends[{i}].family"))?;
        let ip = decode_addr(r, t, off + 4, family, &format!("backends[{i}].addr"))?;
        let state = match r.u16(off + 20) {
            STATE_FILLING => BackendState::Filling,
            STATE_ACTIVE => BackendState::Active,
            STATE_DRAINING_INACTIVE => BackendState::Draining,
            s => {
                return Err(r.err(
                    Some(t),
                    off + 20,
                    &format!("backends[{i}].state"),
                    format!("expected 0 (filling), 1 (active) or 2 (draining/inactive), got {s}"),
                ))
            }
        };
        let healthy = match r.u16(off + 22) {
            0 => false,
            1 => true,
            h => {
                return Err(r.err(
                    Some(t),
                    off + 22,
                    &format!("backends[{i}].healthy"),
                    format!("expected 0 (down) or 1 (up), got {h}"),
                ))
            }
        };
        backends.push(Backend {
            ip,
            state,
            healthy,
            weight: 1,
            healthchecks: HealthChecks::default(),
        });
    }

    let nb_off = base + NUM_BINDS_OFF;
    let num_binds = r.u32(nb_off) as usize;
    if num_binds > GLB_MAX_BINDS {
        return Err(r.err(
            Some(t),
            nb_off,
            "num_binds",
            format!("expected at most {GLB_MAX_BINDS}, got {num_binds}"),
        ));
    }
    let mut binds = Vec::with_capacity(num_binds);
    for i in 0..GLB_MAX_BINDS {
        let off = base + BINDS_OFF + i * BIND_LEN;
        if i >= num_binds {
            if !r.zero(off..off + BIND_LEN) {
                return Err(r.err(
                    Some(t),
                    off,
                    &format!("binds[{i}]"),
                    format!("unused bind slot (num_binds is {num_binds}) must be all zero"),
                ));
            }
            continue;
        }
        let family = decode_family(r, t, off, &format!("binds[{i}].family"))?;
        let addr = decode_addr(r, t, off + 4, family, &format!("binds[{i}].addr"))?;
        let max_bits = if family == FAMILY_V4 { 32 } else { 128 };
        let ip_bits = r.u16(off + 20);
        if ip_bits > max_bits {
            return Err(r.err(
                Some(t),
                off + 20,
                &format!("binds[{i}].ip_bits"),
                format!("expected at most {max_bits} for this address family, got {ip_bits}"),
            ));
        }
        let port_start = r.u16(off + 22);
        let port_end = r.u16(off + 24);
        if port_start > port_end {
            return Err(r.err(
                Some(t),
                off + 22,
                &format!("binds[{i}].port_start"),
                format!("port_start {port_start} is greater than port_end {port_end}"),
            ));
        }
        let proto_byte = r.bytes.get(off + 26).copied().unwrap_or(0);
        let Some(proto) = Proto::from_number(proto_byte) else {
            return Err(r.err(
                Some(t),
                off + 26,
                &format!("binds[{i}].proto"),
                format!("expected 6 (tcp) or 17 (udp), got {proto_byte}"),
            ));
        };
        if !r.zero(off + 27..off + 28) {
            return Err(r.err(
                Some(t),
                off + 27,
                &format!("binds[{i}].reserved"),
                "expected 0".to_string(),
            ));
        }
        binds.push(Bind {
            addr,
            // At most 128 (checked above).
            prefix_len: ip_bits as u8,
            proto,
            port_start,
            port_end,
        });
    }

    let hash_key = r.array16(base + KEY_OFF);

    let rows_off = base + ROWS_OFF;
    let mut rows = Vec::with_capacity(TABLE_ROWS * 2);
    if let Some(raw) = r.bytes.get(rows_off..rows_off + TABLE_ROWS * 8) {
        for (j, word) in raw.chunks_exact(4).enumerate() {
            let idx = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            if idx as usize >= num_backends {
                let field = format!(
                    "rows[{}].{}",
                    j / 2,
                    if j % 2 == 0 {
                        "primary_idx"
                    } else {
                        "secondary_idx"
                    }
                );
                return Err(r.err(
                    Some(t),
                    rows_off + j * 4,
                    &field,
                    format!(
                        "backend index {idx} is out of range: the table has {num_backends} backend(s)"
                    ),
                ));
            }
            rows.push(idx);
        }
    }

    let spec = TableSpec {
        name: format!("table{t}"),
        hash_key,
        seed: None,
        binds,
        backends,
        quic_lb: None,
    };
    ForwardingTable::from_parts(spec, RowPolicy::Glb, 2, rows.into_boxed_slice()).map_err(|e| {
        TableError::Format {
            file: r.file.to_string(),
            reason: format!("table {t}: {e}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::parse_hex_key;

    fn small_table() -> ForwardingTable {
        let spec = TableSpec {
            name: "web".into(),
            hash_key: parse_hex_key("12345678901234561234567890123456").unwrap(),
            seed: Some(parse_hex_key("34567890123456783456789012345678").unwrap()),
            binds: vec![Bind {
                addr: "10.0.0.7".parse().unwrap(),
                prefix_len: 24,
                proto: Proto::Udp,
                port_start: 53,
                port_end: 54,
            }],
            backends: vec![
                Backend {
                    ip: "1.2.3.4".parse().unwrap(),
                    state: BackendState::Active,
                    healthy: true,
                    weight: 1,
                    healthchecks: HealthChecks::default(),
                },
                Backend {
                    ip: "fdb4::1".parse().unwrap(),
                    state: BackendState::Filling,
                    healthy: false,
                    weight: 1,
                    healthchecks: HealthChecks::default(),
                },
            ],
            quic_lb: None,
        };
        ForwardingTable::build(spec, RowPolicy::Glb).unwrap()
    }

    #[test]
    fn layout_constants() {
        assert_eq!(NUM_BINDS_OFF, 6148);
        assert_eq!(BINDS_OFF, 6152);
        assert_eq!(KEY_OFF, 13320);
        assert_eq!(ROWS_OFF, 13336);
        assert_eq!(TABLE_LEN, 537_624);
        assert_eq!(&MAGIC.to_le_bytes(), b"GLBD");
    }

    #[test]
    fn roundtrip() {
        let t = small_table();
        let bytes = encode(std::slice::from_ref(&t)).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + TABLE_LEN);
        // Host bits of the bind stay as written, ports are little-endian.
        let b0 = HEADER_LEN + BINDS_OFF;
        assert_eq!(
            &bytes[b0..b0 + 28],
            &[
                1, 0, 0, 0, 10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 53, 0, 54, 0,
                17, 0
            ]
        );
        let back = decode(&bytes, "x.bin").unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].spec.name, "table0");
        assert_eq!(back[0].spec.seed, None);
        assert_eq!(back[0].spec.binds, t.spec.binds);
        assert_eq!(back[0].spec.backends, t.spec.backends);
        assert_eq!(back[0].rows(), t.rows());
        assert_eq!(encode(&back).unwrap(), bytes);
    }

    #[test]
    fn empty_file_of_zero_tables() {
        let bytes = encode(&[]).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert!(decode(&bytes, "e.bin").unwrap().is_empty());
    }

    #[test]
    fn refuses_unencodable() {
        let t = small_table();
        let native = ForwardingTable::build(t.spec.clone(), RowPolicy::Native { hops: 3 }).unwrap();
        let e = encode(&[native]).unwrap_err().to_string();
        assert!(e.contains("exactly 2"), "{e}");
    }

    #[test]
    fn rejects_with_context() {
        let good = encode(&[small_table()]).unwrap();
        let check = |mutate: &dyn Fn(&mut Vec<u8>), want: &str| {
            let mut b = good.clone();
            mutate(&mut b);
            let e = decode(&b, "f.bin").unwrap_err().to_string();
            assert!(e.starts_with("f.bin: "), "{e}");
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        };
        check(&|b| b.truncate(10), "shorter than the 24-byte GLB header");
        check(&|b| b.truncate(1000), "truncated or corrupt");
        check(&|b| b[0] = b'X', "byte offset 0 (magic)");
        check(&|b| b[4] = 3, "(version): expected format version 2, got 3");
        check(&|b| b[12] = 1, "(table_entries)");
        check(&|b| b[16] = 1, "(max_num_backends)");
        check(&|b| b[20] = 1, "(max_num_binds)");
        check(&|b| b[25] = 0xff, "table 0, byte offset 24 (num_backends)");
        check(
            &|b| b[28] = 3,
            "(backends[0].family): expected address family 1 (IPv4) or 2 (IPv6), got 3",
        );
        check(&|b| b[28 + 10] = 1, "(backends[0].addr)");
        check(&|b| b[28 + 20] = 7, "(backends[0].state)");
        check(&|b| b[28 + 22] = 7, "(backends[0].healthy)");
        check(
            &|b| b[28 + 2 * 24] = 1,
            "(backends[2]): unused backend slot",
        );
        check(&|b| b[24 + BINDS_OFF + 20] = 33, "(binds[0].ip_bits)");
        check(&|b| b[24 + BINDS_OFF + 22] = 99, "(binds[0].port_start)");
        check(&|b| b[24 + BINDS_OFF + 26] = 1, "(binds[0].proto)");
        check(&|b| b[24 + BINDS_OFF + 27] = 1, "(binds[0].reserved)");
        check(
            &|b| b[24 + BINDS_OFF + 28] = 1,
            "(binds[1]): unused bind slot",
        );
        check(&|b| b[24 + NUM_BINDS_OFF + 1] = 0xff, "(num_binds)");
        check(
            &|b| b[24 + ROWS_OFF + 8 * 5 + 4] = 2,
            "(rows[5].secondary_idx): backend index 2 is out of range: the table has 2 backend(s)",
        );
    }

    #[test]
    fn write_atomic_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        std::fs::write(&path, b"old").unwrap();
        let t = small_table();
        write_atomic(&path, std::slice::from_ref(&t)).unwrap();
        assert_eq!(read(&path).unwrap()[0].rows(), t.rows());
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "temporary file left behind");

        // An unencodable table: nothing written, nothing left behind, old file intact.
        let native = ForwardingTable::build(t.spec.clone(), RowPolicy::Native { hops: 3 }).unwrap();
        assert!(write_atomic(&path, &[native]).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read(&path).unwrap()[0].rows(), t.rows());

        // A missing directory: an I/O error naming the temporary file, nothing created.
        let missing = dir.path().join("nope").join("t.bin");
        let e = write_atomic(&missing, std::slice::from_ref(&t)).unwrap_err();
        assert!(matches!(e, TableError::Io { .. }), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
