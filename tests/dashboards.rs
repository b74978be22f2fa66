//! The Grafana dashboard (`monitoring/grafana/rondo.json`) and the Prometheus alerting rules
//! (`monitoring/prometheus/rondo-alerts.yml`) that the Debian package ships:
//!
//! - `promtool check rules` accepts the rules, and each rule has a `for:`, a severity and a
//!   summary and description that name the alert's labels;
//! - `promtool test rules` runs the unit tests in `tests/monitoring/rondo-alerts.test.yml`
//!   (alerts that fire when they should and stay quiet otherwise), and fails on rules
//!   broken on purpose, so those tests can fail;
//! - the dashboard is a Grafana dashboard model on a `DS_PROMETHEUS` data source whose
//!   every query is valid PromQL (promtool again, on the queries as recording rules);
//! - every `rondo_*` metric the dashboard and the rules use exists in a scrape of a running
//!   director (`rondo run` on a paced capture); those that only some directors export (link
//!   state, the exception TAP, `[bgp]`, `[fleet]`) are listed with their condition and
//!   checked in scrapes of directors that have them: `[bgp]` with BIRD 2 on af_packet with
//!   an exception TAP (root), `[fleet]` against etcd (feature `etcd`).
//!
//! promtool comes with Debian's `prometheus` package (scripts/test installs it); without it
//! the promtool tests say so and are skipped (a failure with `CI=true`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::director::{Director, DEADLINE};
use common::skip;
use serde_json::Value;

const DASHBOARD: &str = "monitoring/grafana/rondo.json";
const RULES: &str = "monitoring/prometheus/rondo-alerts.yml";
const RULE_TESTS: &str = "tests/monitoring/rondo-alerts.test.yml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `promtool` with `args`, or None after a skip when it is not installed.
fn promtool(args: &[&str]) -> Option<Output> {
    match Command::new("promtool").args(args).output() {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("promtool is not installed (Debian package prometheus)");
            None
        }
        Err(e) => panic!("promtool: {e}"),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `rondo_*` identifiers in `s`.
fn metric_names(s: &str) -> BTreeSet<String> {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = s[i..].find("rondo_") {
        let start = i + at;
        let mut end = start + "rondo_".len();
        while end < b.len() && word(b[end]) {
            end += 1;
        }
        if (start == 0 || !word(b[start - 1])) && end > start + "rondo_".len() {
            out.insert(s[start..end].to_string());
        }
        i = end;
    }
    out
}

/// The rules file, one block per alert: (name, its lines).
fn alert_blocks(rules: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert: ") {
            out.push((name.trim().to_string(), String::new()));
        } else if line.trim_start().starts_with("- name: ") {
            // A new group: nothing after this belongs to the last alert.
            out.push((String::new(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.retain(|(n, _)| !n.is_empty());
    out
}

/// Every PromQL query of the dashboard: panel targets, annotations and the templating
/// variables' queries, as (where, query).
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            out.push((format!("panel {:?}", p["title"]), expr.to_string()));
        }
    }
    for a in d["annotations"]["list"].as_array().expect("annotations") {
        if let Some(e) = a["expr"].as_str() {
            out.push((format!("annotation {:?}", a["name"]), e.to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().expect("templating") {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or_default();
            out.push((format!("variable {:?}", v["name"]), q.to_string()));
        }
    }
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

#[test]
fn promtool_checks_the_alerting_rules_and_each_alert_is_complete() {
    let rules = read(RULES);
    let alerts = alert_blocks(&rules);
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), alerts.len(), "alert names repeat");
    for want in [
        "RondoDirectorDown",
        "RondoReloadFailed",
        "RondoBackendUnhealthy",
        "RondoTableNoUsableBackend",
        "RondoWorkerStalled",
        "RondoWorkerDropping",
        "RondoTxRefused",
        "RondoVipWithdrawn",
    ] {
        assert!(names.contains(want), "no alert {want} in {RULES}");
    }
    for (name, body) in &alerts {
        assert!(
            body.contains("\n        expr: ") || body.starts_with("        expr: "),
            "{name}: no expr"
        );
        assert!(body.contains("        for: "), "{name}: no `for:`");
        let severity = body
            .lines()
            .find_map(|l| l.trim().strip_prefix("severity: "))
            .unwrap_or_else(|| panic!("{name}: no severity label"));
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity}"
        );
        for a in ["summary: ", "description: "] {
            let line = body
                .lines()
                .find(|l| l.trim_start().starts_with(a))
                .unwrap_or_else(|| panic!("{name}: no {a}annotation"));
            assert!(
                line.contains("{{ $labels."),
                "{name}: its {a}names none of the alert's labels: {line}"
            );
        }
    }
    let Some(o) = promtool(&["check", "rules", root().join(RULES).to_str().unwrap()]) else {
        return;
    };
    let out = text(&o);
    assert!(o.status.success(), "promtool check rules: {out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{} alerts in the file, promtool says: {out}",
        alerts.len()
    );
}

/// Copy the rules (changed by `edit`) and their unit tests into a folder of the same layout,
/// and run `promtool test rules` there.
fn test_rules(dir: &Path, edit: impl Fn(&str) -> String) -> Option<Output> {
    for (rel, body) in [(RULES, edit(&read(RULES))), (RULE_TESTS, read(RULE_TESTS))] {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
    }
    promtool(&["test", "rules", dir.join(RULE_TESTS).to_str().unwrap()])
}

#[test]
fn promtool_unit_tests_of_the_alerts_pass_and_catch_broken_rules() {
    let tests = read(RULE_TESTS);
    let rules = read(RULES);
    let tested: BTreeSet<&str> = tests
        .lines()
        .filter_map(|l| l.trim().strip_prefix("alertname: "))
        .collect();
    assert!(tested.len() >= 2, "unit tests for {tested:?} only");
    for a in &tested {
        assert!(
            rules.contains(&format!("- alert: {a}\n")),
            "{RULE_TESTS} tests {a}, which {RULES} does not have"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(o) = test_rules(dir.path(), str::to_string) else {
        return;
    };
    assert!(o.status.success(), "promtool test rules: {}", text(&o));
    assert!(text(&o).contains("SUCCESS"), "{}", text(&o));
    // The same tests on rules broken on purpose: each break is noticed.
    for (what, from, to) in [
        (
            "unhealthy inactive backends reported",
            " and ignoring (state) rondo_backend_state{state=\"inactive\"} == 0",
            "",
        ),
        (
            "stall threshold too high",
            "rondo_worker_last_progress_seconds > 2",
            "rondo_worker_last_progress_seconds > 200",
        ),
        (
            "operator withdrawals alerted",
            "reason!~\"operator|draining\"",
            "reason!~\"draining\"",
        ),
        (
            "empty tables not seen",
            "or rondo_table_binds * 0",
            "or rondo_table_binds * 1",
        ),
        (
            "reload failures not seen",
            "rondo_reloads_total{result=\"failed\"}",
            "rondo_reloads_total{result=\"never\"}",
        ),
    ] {
        assert!(rules.contains(from), "{what}: {from:?} is not in {RULES}");
        let dir = tempfile::tempdir().unwrap();
        let o = test_rules(dir.path(), |r| r.replace(from, to)).unwrap();
        assert!(
            !o.status.success(),
            "promtool test rules passed with the rules broken ({what}): {}",
            text(&o)
        );
    }
}

#[test]
fn the_dashboard_is_a_grafana_model_on_a_prometheus_data_source() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().unwrap() >= 36,
        "Grafana 9 or later"
    );
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(d["title"].as_str().is_some_and(|t| t.contains("Rondo")));
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "DS_PROMETHEUS"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a DS_PROMETHEUS data source variable (for provisioning, where __inputs are not replaced)"
    );
    for v in ["job", "instance", "table"] {
        assert!(vars.iter().any(|x| x["name"] == v), "variable {v}");
    }
    let ds = serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let mut ids = BTreeSet::new();
    let mut cells: Vec<(String, u64, u64, u64, u64)> = Vec::new();
    let mut kinds = BTreeSet::new();
    let panels = d["panels"].as_array().unwrap();
    for p in panels {
        let title = p["title"].as_str().expect("a title").to_string();
        assert!(
            ids.insert(p["id"].as_u64().expect("an id")),
            "{title}: id repeats"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: {g}");
        for (t, cx, cy, cw, ch) in &cells {
            let apart = x + w <= *cx || cx + cw <= x || y + h <= *cy || cy + ch <= y;
            assert!(apart, "{title} overlaps {t}");
        }
        cells.push((title.clone(), x, y, w, h));
        kinds.insert(p["type"].as_str().unwrap().to_string());
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"], ds, "{title}: data source");
        assert!(
            p["description"].as_str().is_some_and(|s| s.len() > 20),
            "{title}: a description says what it shows"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"], ds, "{title}: target data source");
            assert!(
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("rondo_") || e.contains("up{")),
                "{title}: {t}"
            );
            assert!(
                refs.insert(t["refId"].as_str().unwrap().to_string()),
                "{title}: refId repeats"
            );
        }
    }
    for k in ["row", "timeseries", "stat", "state-timeline", "table"] {
        assert!(kinds.contains(k), "no {k} panel");
    }
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Ports", "Workers", "Drops", "backends", "Reloads", "BGP", "Fleet",
    ] {
        assert!(
            rows.iter().any(|r| r.contains(want)),
            "no row for {want}: {rows:?}"
        );
    }
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let d = dashboard();
    let queries = dashboard_queries(&d);
    assert!(queries.len() > 40, "{} queries", queries.len());
    // As recording rules, Grafana's variables replaced by what they expand to.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, q)) in queries.iter().enumerate() {
        let q = if let Some(inner) = q.strip_prefix("label_values(") {
            // label_values(METRIC{...}, LABEL): its selector.
            inner.rsplit_once(',').unwrap().0.to_string()
        } else {
            q.clone()
        };
        let q = q
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "30s")
            .replace("$__range", "1h");
        let q = ["$job", "$instance", "$table"]
            .iter()
            .fold(q, |q, v| q.replace(v, ".*"));
        assert!(!q.contains('$'), "a variable left in {q}");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&q).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dashboard-queries.yml");
    std::fs::write(&f, &rules).unwrap();
    let Some(o) = promtool(&["check", "rules", f.to_str().unwrap()]) else {
        return;
    };
    assert!(
        o.status.success(),
        "promtool on the dashboard's queries: {}\n{rules}",
        text(&o)
    );
    assert!(
        text(&o).contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{}",
        text(&o)
    );
}

/// Which directors export a metric that a plain `rondo run` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Only {
    /// A port whose driver knows its link (af_packet, af_xdp, DPDK).
    Link,
    /// An exception TAP (`[runtime] exception = "tap:NAME"`).
    ExceptionTap,
    /// `[bgp]`.
    Bgp,
    /// `[fleet]` (feature `etcd`).
    Fleet,
}

const CONDITIONAL: [(&str, Only); 20] = [
    ("rondo_port_link_up", Only::Link),
    ("rondo_port_link_changes_total", Only::Link),
    (
        "rondo_exception_to_kernel_packets_total",
        Only::ExceptionTap,
    ),
    ("rondo_exception_to_kernel_failed_total", Only::ExceptionTap),
    (
        "rondo_exception_from_kernel_packets_total",
        Only::ExceptionTap,
    ),
    (
        "rondo_exception_from_kernel_dropped_total",
        Only::ExceptionTap,
    ),
    ("rondo_vip_announced", Only::Bgp),
    ("rondo_vip_withdrawn_reason", Only::Bgp),
    ("rondo_bgp_apply_failures_total", Only::Bgp),
    ("rondo_bgp_in_sync", Only::Bgp),
    ("rondo_bgp_session_up", Only::Bgp),
    ("rondo_fleet_connected", Only::Fleet),
    ("rondo_fleet_applied_revision", Only::Fleet),
    ("rondo_fleet_seen_revision", Only::Fleet),
    ("rondo_fleet_health_revision", Only::Fleet),
    ("rondo_fleet_from_cache", Only::Fleet),
    ("rondo_fleet_refused_total", Only::Fleet),
    ("rondo_fleet_apply_seconds_sum", Only::Fleet),
    ("rondo_fleet_apply_seconds_count", Only::Fleet),
    ("rondo_fleet_status_write_failures_total", Only::Fleet),
];

/// The `rondo_*` names the dashboard's queries and the rules file use (expressions and the
/// queries in annotation templates alike), with where each is used.
fn used_names() -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut out: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for (_, q) in dashboard_queries(&dashboard()) {
        for n in metric_names(&q) {
            out.entry(n).or_default().insert(DASHBOARD);
        }
    }
    for n in metric_names(&read(RULES)) {
        out.entry(n).or_default().insert(RULES);
    }
    out
}

/// A scrape: (sample names, family name -> type).
struct Scrape {
    samples: BTreeSet<String>,
    families: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(body: &str) -> Scrape {
        let mut samples = BTreeSet::new();
        let mut families = BTreeMap::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                families.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let name = line.split(['{', ' ']).next().unwrap();
                samples.insert(name.to_string());
            }
        }
        Scrape { samples, families }
    }

    /// A query's name is in the scrape: a sample of that name, or `_bucket`, `_sum` or
    /// `_count` of a histogram or summary family with samples.
    fn has(&self, name: &str) -> bool {
        if self.samples.contains(name) {
            return true;
        }
        ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|base| {
                matches!(
                    self.families.get(base).map(String::as_str),
                    Some("histogram" | "summary")
                ) && self.samples.iter().any(|s| s.starts_with(base))
            })
        })
    }

    /// The families of the scrape that have samples (a summary by its family name).
    fn families_with_samples(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|s| {
                ["_sum", "_count", "_bucket"]
                    .iter()
                    .find_map(|x| s.strip_suffix(x).filter(|b| self.families.contains_key(*b)))
                    .unwrap_or(s)
                    .to_string()
            })
            .collect()
    }
}

fn http_get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    body.to_string()
}

/// `rondo run` on a paced capture, its metrics endpoint on a free port; scraped once
/// traffic went through.
fn plain_scrape() -> Scrape {
    let d = Director::start(
        500,
        2000,
        false,
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
        &[],
    );
    let addr = d.metrics_addr();
    d.wait_for("traffic", || d.forwarded() > 100);
    Scrape::parse(&http_get(addr))
}

#[test]
fn every_metric_the_dashboard_and_rules_use_is_in_a_scrape_of_a_director() {
    let used = used_names();
    assert!(used.len() > 40, "{} names: {used:?}", used.len());
    let scrape = plain_scrape();
    let conditional: BTreeMap<&str, Only> = CONDITIONAL.into_iter().collect();
    let missing: Vec<String> = used
        .iter()
        .filter(|(n, _)| !scrape.has(n) && !conditional.contains_key(n.as_str()))
        .map(|(n, w)| format!("{n} (in {w:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "used but not exported by a director: {missing:#?}\nthe scrape had: {:#?}",
        scrape.samples
    );
    // The list of conditional names stays true: none is in a plain director's scrape, each
    // is used, and each is a name the metrics code writes.
    let source: String = ["src/metrics/mod.rs", "src/metrics/fleet.rs"]
        .iter()
        .map(|f| read(f))
        .collect();
    for (n, only) in CONDITIONAL {
        assert!(
            !scrape.has(n),
            "{n} is in a plain director's scrape: not {only:?} only"
        );
        assert!(
            used.contains_key(n),
            "{n} is listed as conditional but not used"
        );
        assert!(
            source.contains(&format!("\"{n}\"")),
            "{n} is not written by src/metrics"
        );
    }
    // And the other way: every family a director exports is on the dashboard or in a rule.
    let unused: Vec<String> = scrape
        .families_with_samples()
        .into_iter()
        .filter(|f| {
            !used.keys().any(|u| {
                u == f || u.strip_suffix("_sum") == Some(f) || u.strip_suffix("_count") == Some(f)
            })
        })
        .collect();
    assert!(
        unused.is_empty(),
        "exported but on neither the dashboard nor in an alert: {unused:?}"
    );
}

/// Wait until `addr` (reached from namespace `ns`) answers a scrape with every name of
/// `want`; the names still missing at the deadline.
fn wait_for_names(ns: &str, addr: SocketAddr, want: &[&str]) -> Vec<String> {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    let ns = ns.to_string();
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        let (ns2, want2) = (ns.clone(), want.clone());
        let missing: Vec<String> = common::netns::in_netns(&ns2, move || {
            let s = match TcpStream::connect(addr) {
                Ok(_) => Scrape::parse(&http_get(addr)),
                Err(_) => Scrape::parse(""),
            };
            want2.into_iter().filter(|n| !s.has(n)).collect()
        });
        if missing.is_empty() || std::time::Instant::now() > end {
            return missing;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn bgp_link_and_exception_tap_metrics_are_in_a_scrape_of_a_director_that_has_them() {
    use common::bird::{ip, Lab};
    let Some(lab) = Lab::new('m') else { return };
    ip(&[
        "link", "add", "mdata", "netns", &lab.d, "type", "veth", "peer", "name", "mpeer", "netns",
        &lab.r,
    ]);
    ip(&["-n", &lab.d, "link", "set", "mdata", "up"]);
    ip(&["-n", &lab.r, "link", "set", "mpeer", "up"]);
    let console = lab.path("rondo.sock");
    let cfg = lab.path("rondo.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[[ports]]
spec = "af_packet:mdata"

[runtime]
workers = 1
idle = "sleep"
exception = "tap:mexc0"

[console]
socket = "{}"

[metrics]
listen = "127.0.0.1:9525"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "10.10.0.1", proto = "tcp", port = 80 }}]
backends = [{{ ip = "10.1.0.1" }}, {{ ip = "10.1.0.2" }}]

[bgp]
socket = "{}"
include = "{}"
sessions = ["router4"]
"#,
            console.display(),
            lab.path("d.ctl").display(),
            lab.include().display()
        ),
    )
    .unwrap();
    let log = lab.path("rondo.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.d, env!("CARGO_BIN_EXE_rondo")])
        .args(["run", "--stats-interval", "0", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn rondo run");
    // Killed (by its pid) before the lab's namespaces go.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut rondo = Kill(child);
    let want: Vec<&str> = CONDITIONAL
        .iter()
        .filter(|(_, o)| *o != Only::Fleet)
        .map(|(n, _)| *n)
        .collect();
    let missing = wait_for_names(&lab.d, "127.0.0.1:9525".parse().unwrap(), &want);
    let exited = rondo.0.try_wait().unwrap();
    assert!(
        missing.is_empty(),
        "missing from the scrape of a director with [bgp], af_packet and an exception TAP: \
         {missing:?} (exited: {exited:?})\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[cfg(feature = "etcd")]
#[test]
fn fleet_metrics_are_in_a_scrape_of_a_director_that_follows_etcd() {
    use common::director::{traffic, write_pcap};
    use common::etcd::EtcdCluster;
    use rondo::fleet::docs;
    use rondo::fleet::etcd::{EtcdSettings, EtcdStore};
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let prefix = "/rondo/dashtest";
    let mut s = EtcdSettings::new(c.endpoints(), prefix, "test");
    s.connect_timeout_ms = 500;
    s.request_timeout_ms = 2000;
    let mut store = EtcdStore::connect(s).unwrap();
    let doc = r#"[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }]
"#;
    store
        .put_document_if(docs::DESIRED, doc.as_bytes(), 0)
        .expect("push the desired document");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &traffic(200));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let eps: Vec<String> = c.endpoints().iter().map(|e| format!("\"{e}\"")).collect();
    let cfg = dir.path().join("director.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[[ports]]
spec = "pcap:{},loop,pps=1000"

[runtime]
workers = 1
idle = "sleep"

[console]
socket = "{}"

[metrics]
listen = "127.0.0.1:{port}"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[fleet]
endpoints = [{}]
prefix = "{prefix}"
name = "dash"
connect_timeout_ms = 500
request_timeout_ms = 1000
lease_ttl_ms = 2000
cache = "{}"
"#,
            input.display(),
            dir.path().join("rondo.sock").display(),
            eps.join(", "),
            dir.path().join("fleet.cache").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut rondo = Kill(
        Command::new(env!("CARGO_BIN_EXE_rondo"))
            .args(["run", "--stats-interval", "0", "--config"])
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let want: Vec<String> = CONDITIONAL
        .iter()
        .filter(|(_, o)| *o == Only::Fleet)
        .map(|(n, _)| n.to_string())
        .collect();
    let end = std::time::Instant::now() + DEADLINE;
    let missing = loop {
        let s = match TcpStream::connect(addr) {
            Ok(_) => Scrape::parse(&http_get(addr)),
            Err(_) => Scrape::parse(""),
        };
        let missing: Vec<&String> = want.iter().filter(|n| !s.has(n)).collect();
        if missing.is_empty() || std::time::Instant::now() > end {
            break format!("{missing:?}");
        }
        if let Ok(Some(st)) = rondo.0.try_wait() {
            panic!(
                "rondo run exited ({st}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        missing,
        "[]",
        "missing from the scrape of a director with [fleet]\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
