//! GLB's `director.conf` (JSON): the director's settings, as `glb-director` reads them.

use serde_json::{Map, Value};

use super::{ConfigError, DirectorSettings, HashFields};
use crate::config::settings::DEFAULT_SRC_MAC;
use crate::table::RowPolicy;

/// One of GLB's `flow_paths`: which RX queue feeds which TX queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPath {
    pub rx_port: u16,
    pub rx_queue: u16,
    pub tx_port: u16,
    pub tx_queue: u16,
}

/// One `lcores` entry: GLB's distributor/worker layout, kept so `rondo run` can map it onto
/// its own run-to-completion cores and log the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbLcore {
    pub id: usize,
    pub rx: bool,
    pub tx: bool,
    pub dist: bool,
    pub work: bool,
    pub kni: bool,
    pub flow_paths: Vec<usize>,
}

/// The runtime half of `director.conf`, used by `rondo run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbRuntime {
    pub num_worker_queues: usize,
    pub flow_paths: Vec<FlowPath>,
    pub lcores: Vec<GlbLcore>,
    pub rx_drop_en: bool,
    pub statsd_port: u16,
}

impl GlbRuntime {
    /// Whether any lcore asked for GLB's KNI exception path.
    pub fn wants_exception_path(&self) -> bool {
        self.lcores.iter().any(|l| l.kni)
    }
}

/// Parse `director.conf`. Keys GLB does not define are refused (a typo must not silently
/// fall back to a default).
pub fn parse_director_conf(
    text: &str,
    file: &str,
) -> Result<(DirectorSettings, GlbRuntime), ConfigError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::field(file, Some(e.line()), "", format!("invalid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        ConfigError::field(file, None, "", "expected a JSON object at the top level")
    })?;
    let err = |field: &str, msg: String| ConfigError::field(file, None, field, msg);
    const KNOWN: [&str; 10] = [
        "outbound_gateway_mac",
        "outbound_src_ip",
        "forward_icmp_ping_responses",
        "hash_fields",
        "alt_hash_fields",
        "num_worker_queues",
        "flow_paths",
        "lcores",
        "rx_drop_en",
        "statsd_port",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(err(
            k,
            format!("unknown key; expected one of {}", KNOWN.join(", ")),
        ));
    }
    let string = |k: &str| -> Result<&str, ConfigError> {
        match obj.get(k) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(err(k, format!("expected a string, got {other}"))),
            None => Err(err(k, "missing (required)".into())),
        }
    };
    let boolean = |k: &str, default: bool| -> Result<bool, ConfigError> {
        match obj.get(k) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(err(k, format!("expected true or false, got {other}"))),
        }
    };
    let uint = |o: &Map<String, Value>,
                k: &str,
                field: &str,
                max: u64|
     -> Result<Option<u64>, ConfigError> {
        match o.get(k) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(err(
                    field,
                    format!("expected an integer 0..={max}, got {v}"),
                )),
            },
        }
    };
    let mac = string("outbound_gateway_mac")?;
    let gateway_mac = mac.parse().map_err(|_| {
        err(
            "outbound_gateway_mac",
            format!("expected a MAC address like 00:11:22:33:44:55, got {mac:?}"),
        )
    })?;
    let ip = string("outbound_src_ip")?;
    let src_ipv4 = ip.parse().map_err(|_| {
        err(
            "outbound_src_ip",
            format!("expected an IPv4 address, got {ip:?}"),
        )
    })?;
    let fields = |k: &str| -> Result<Option<HashFields>, ConfigError> {
        match obj.get(k) {
            None => Ok(None),
            Some(Value::Object(m)) => {
                let mut h = HashFields::none();
                for (name, on) in m {
                    let on = on.as_bool().ok_or_else(|| {
                        err(
                            &format!("{k}.{name}"),
                            format!("expected true or false, got {on}"),
                        )
                    })?;
                    h.set(name, on)
                        .map_err(|m| err(&format!("{k}.{name}"), m))?;
                }
                Ok(Some(h))
            }
            Some(other) => Err(err(
                k,
                format!("expected an object like {{\"src_addr\": true}}, got {other}"),
            )),
        }
    };
    let hash_fields = fields("hash_fields")?.unwrap_or_default();
    if hash_fields.is_empty() {
        return Err(err("hash_fields", "at least one field must be true".into()));
    }
    let alt_hash_fields = fields("alt_hash_fields")?.filter(|h| !h.is_empty());

    let mut flow_paths = Vec::new();
    match obj.get("flow_paths") {
        None => {}
        Some(Value::Array(a)) => {
            for (i, p) in a.iter().enumerate() {
                let field = |k: &str| format!("flow_paths[{i}].{k}");
                let o = p
                    .as_object()
                    .ok_or_else(|| err(&format!("flow_paths[{i}]"), "expected an object".into()))?;
                let get = |k: &str| -> Result<u16, ConfigError> {
                    Ok(uint(o, k, &field(k), u64::from(u16::MAX))?
                        .ok_or_else(|| err(&field(k), "missing".into()))?
                        as u16)
                };
                flow_paths.push(FlowPath {
                    rx_port: get("rx_port")?,
                    rx_queue: get("rx_queue")?,
                    tx_port: get("tx_port")?,
                    tx_queue: get("tx_queue")?,
                });
            }
        }
        Some(other) => return Err(err("flow_paths", format!("expected an array, got {other}"))),
    }
    let mut lcores = Vec::new();
    match obj.get("lcores") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, l) in m {
                let field = format!("lcores.{name}");
                let id = name
                    .strip_prefix("lcore-")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| err(&field, "expected a key of the form \"lcore-N\"".into()))?;
                let o = l
                    .as_object()
                    .ok_or_else(|| err(&field, "expected an object".into()))?;
                let flag = |k: &str| -> Result<bool, ConfigError> {
                    match o.get(k) {
                        None => Ok(false),
                        Some(Value::Bool(b)) => Ok(*b),
                        Some(v) => Err(err(
                            &format!("{field}.{k}"),
                            format!("expected true or false, got {v}"),
                        )),
                    }
                };
                let mut paths = Vec::new();
                if let Some(p) = o.get("flow_paths") {
                    let a = p.as_array().ok_or_else(|| {
                        err(
                            &format!("{field}.flow_paths"),
                            "expected an array of flow path indices".into(),
                        )
                    })?;
                    for x in a {
                        match x.as_u64() {
                            Some(n) if (n as usize) < flow_paths.len() => paths.push(n as usize),
                            _ => {
                                return Err(err(
                                    &format!("{field}.flow_paths"),
                                    format!(
                                    "{x} is not an index into flow_paths (which has {} entries)",
                                    flow_paths.len()
                                ),
                                ))
                            }
                        }
                    }
                }
                lcores.push(GlbLcore {
                    id,
                    rx: flag("rx")?,
                    tx: flag("tx")?,
                    dist: flag("dist")?,
                    work: flag("work")?,
                    kni: flag("kni")?,
                    flow_paths: paths,
                });
            }
            lcores.sort_by_key(|l| l.id);
        }
        Some(other) => return Err(err("lcores", format!("expected an object, got {other}"))),
    }
    let runtime = GlbRuntime {
        num_worker_queues: uint(obj, "num_worker_queues", "num_worker_queues", 1024)?.unwrap_or(1)
            as usize,
        flow_paths,
        lcores,
        rx_drop_en: boolean("rx_drop_en", false)?,
        statsd_port: uint(obj, "statsd_port", "statsd_port", u64::from(u16::MAX))?.unwrap_or(28125)
            as u16,
    };
    let settings = DirectorSettings {
        gateway_mac,
        src_mac: DEFAULT_SRC_MAC,
        src_ipv4,
        src_ipv6: None,
        forward_icmp_ping_responses: boolean("forward_icmp_ping_responses", true)?,
        hash_fields,
        alt_hash_fields,
        row_policy: RowPolicy::Glb,
    };
    Ok((settings, runtime))
}
