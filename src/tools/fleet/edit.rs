//! Writing a desired document's overrides back in its own format: native TOML through
//! `toml_edit` (comments, order and layout of everything else kept; an override that does
//! not change keeps its own lines), GLB JSON through `serde_json` (the top-level
//! `overrides` array; the rest of the document is re-serialized, keys in sorted order).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::config::desired::{Format, OverrideRule};

type Key = (String, IpAddr);

fn wanted(rules: &[OverrideRule]) -> BTreeMap<Key, &OverrideRule> {
    rules.iter().map(|r| ((r.table.clone(), r.ip), r)).collect()
}

fn fields(r: &OverrideRule) -> [(&'static str, Option<FieldValue>); 3] {
    [
        ("state", r.state.map(|s| FieldValue::Str(s.as_str()))),
        ("weight", r.weight.map(|w| FieldValue::Int(i64::from(w)))),
        (
            "health",
            r.health
                .map(|h| FieldValue::Str(if h { "up" } else { "down" })),
        ),
    ]
}

#[derive(Clone, Copy)]
enum FieldValue {
    Str(&'static str),
    Int(i64),
}

/// `bytes` (a document in `format`) with its overrides replaced by `rules`.
pub fn write_overrides(
    bytes: &[u8],
    format: Format,
    rules: &[OverrideRule],
) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("the document is not UTF-8: {e}"))?;
    match format {
        Format::NativeToml => toml_overrides(text, rules).map(String::into_bytes),
        Format::GlbJson => json_overrides(text, rules).map(String::into_bytes),
    }
}

fn toml_key(t: &dyn toml_edit::TableLike) -> Option<Key> {
    let table = t.get("table")?.as_str()?.to_string();
    let ip = t.get("ip")?.as_str()?.parse().ok()?;
    Some((table, ip))
}

fn toml_value(v: FieldValue) -> toml_edit::Value {
    match v {
        FieldValue::Str(s) => s.into(),
        FieldValue::Int(i) => i.into(),
    }
}

fn same(old: Option<&toml_edit::Item>, v: FieldValue) -> bool {
    match (old, v) {
        (Some(o), FieldValue::Str(s)) => o.as_str() == Some(s),
        (Some(o), FieldValue::Int(i)) => o.as_integer() == Some(i),
        (None, _) => false,
    }
}

fn update_toml(t: &mut dyn toml_edit::TableLike, r: &OverrideRule) {
    for (name, v) in fields(r) {
        match v {
            Some(v) if same(t.get(name), v) => {}
            Some(v) => {
                t.insert(name, toml_edit::Item::Value(toml_value(v)));
            }
            None => {
                t.remove(name);
            }
        }
    }
}

fn new_toml_table(r: &OverrideRule) -> toml_edit::Table {
    let mut t = toml_edit::Table::new();
    t.insert("table", toml_edit::value(r.table.as_str()));
    t.insert("ip", toml_edit::value(r.ip.to_string()));
    update_toml(&mut t, r);
    t
}

fn toml_overrides(text: &str, rules: &[OverrideRule]) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("the document is not TOML: {e}"))?;
    let want = wanted(rules);
    let mut seen: BTreeSet<Key> = BTreeSet::new();
    let mut drop_key = false;
    match doc.get_mut("overrides") {
        None => {}
        Some(toml_edit::Item::ArrayOfTables(aot)) => {
            for i in (0..aot.len()).rev() {
                let Some(t) = aot.get_mut(i) else { continue };
                match toml_key(t).and_then(|k| want.get(&k).map(|r| (k, *r))) {
                    Some((k, r)) if !seen.contains(&k) => {
                        update_toml(t, r);
                        seen.insert(k);
                    }
                    _ => aot.remove(i),
                }
            }
            for r in rules {
                if !seen.contains(&(r.table.clone(), r.ip)) {
                    aot.push(new_toml_table(r));
                    seen.insert((r.table.clone(), r.ip));
                }
            }
            drop_key = aot.is_empty();
        }
        Some(toml_edit::Item::Value(toml_edit::Value::Array(arr))) => {
            for i in (0..arr.len()).rev() {
                let key = arr
                    .get_mut(i)
                    .and_then(|v| v.as_inline_table_mut())
                    .map(|t| (toml_key(t), t));
                match key {
                    Some((Some(k), t)) if want.contains_key(&k) && !seen.contains(&k) => {
                        update_toml(t, want[&k]);
                        seen.insert(k);
                    }
                    _ => {
                        arr.remove(i);
                    }
                }
            }
            for r in rules {
                if !seen.contains(&(r.table.clone(), r.ip)) {
                    arr.push(new_toml_table(r).into_inline_table());
                    seen.insert((r.table.clone(), r.ip));
                }
            }
            drop_key = arr.is_empty();
        }
        Some(_) => {
            return Err(
                "`overrides` is neither [[overrides]] tables nor an array of inline tables".into(),
            )
        }
    }
    if drop_key {
        doc.remove("overrides");
    }
    if !rules.is_empty() && doc.get("overrides").is_none() {
        let mut aot = toml_edit::ArrayOfTables::new();
        for r in rules {
            aot.push(new_toml_table(r));
        }
        doc.insert("overrides", toml_edit::Item::ArrayOfTables(aot));
    }
    let mut out = doc.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

fn json_object(r: &OverrideRule) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("table".into(), r.table.clone().into());
    m.insert("ip".into(), r.ip.to_string().into());
    for (name, v) in fields(r) {
        match v {
            Some(FieldValue::Str(s)) => {
                m.insert(name.into(), s.into());
            }
            Some(FieldValue::Int(i)) => {
                m.insert(name.into(), i.into());
            }
            None => {}
        }
    }
    serde_json::Value::Object(m)
}

fn json_overrides(text: &str, rules: &[OverrideRule]) -> Result<String, String> {
    let mut doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the document is not JSON: {e}"))?;
    let Some(top) = doc.as_object_mut() else {
        return Err("the document is not a JSON object".into());
    };
    if rules.is_empty() {
        top.remove("overrides");
    } else {
        let list: Vec<serde_json::Value> = rules.iter().map(json_object).collect();
        top.insert("overrides".into(), list.into());
    }
    let mut out = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::desired::parse_desired;
    use crate::table::BackendState;

    const DOC: &str = r#"# the fleet's tables
[[tables]]
name = "web" # the web VIP
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }]

# drained for the kernel upgrade
[[overrides]]
table = "web"
ip = "10.1.0.1"
state = "draining" # until Tuesday
"#;

    fn rule(ip: &str, state: Option<BackendState>, weight: Option<u32>) -> OverrideRule {
        OverrideRule {
            table: "web".into(),
            ip: ip.parse().unwrap(),
            state,
            weight,
            health: None,
        }
    }

    #[test]
    fn toml_edits_keep_comments_and_round_trip() {
        let keep = rule("10.1.0.1", Some(BackendState::Draining), None);
        let add = rule("10.1.0.2", None, Some(3));
        let out = write_overrides(
            DOC.as_bytes(),
            Format::NativeToml,
            &[keep.clone(), add.clone()],
        )
        .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        for c in [
            "# the fleet's tables",
            "# the web VIP",
            "# drained for the kernel upgrade",
            "# until Tuesday",
        ] {
            assert!(text.contains(c), "{c} lost:\n{text}");
        }
        let d = parse_desired(&out, "out").unwrap();
        assert_eq!(d.overrides, vec![keep.clone(), add]);
        // Removing every override removes the section; the rest stays.
        let out = write_overrides(&out, Format::NativeToml, &[]).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            !text.contains("[[overrides]]") && text.contains("# the web VIP"),
            "{text}"
        );
        assert!(parse_desired(&out, "out").unwrap().overrides.is_empty());
        // And adding to a document without any.
        let out = write_overrides(&out, Format::NativeToml, std::slice::from_ref(&keep)).unwrap();
        assert_eq!(parse_desired(&out, "out").unwrap().overrides, vec![keep]);
    }

    #[test]
    fn inline_override_arrays_are_edited_in_place() {
        let doc = DOC.split("# drained").next().unwrap().replace(
            "# the fleet's tables",
            "overrides = [{ table = \"web\", ip = \"10.1.0.2\", weight = 2 }]",
        );
        assert_eq!(
            parse_desired(doc.as_bytes(), "in").unwrap().overrides.len(),
            1
        );
        let r = rule("10.1.0.2", Some(BackendState::Inactive), None);
        let out =
            write_overrides(doc.as_bytes(), Format::NativeToml, std::slice::from_ref(&r)).unwrap();
        assert_eq!(parse_desired(&out, "out").unwrap().overrides, vec![r]);
    }

    #[test]
    fn json_documents_get_a_top_level_overrides_array() {
        let json = r#"{"tables": [{"name": "t", "hash_key": "12345678901234561234567890123456",
            "seed": "34567890123456783456789012345678",
            "binds": [{"ip": "1.1.1.1", "proto": "tcp", "port": 80}],
            "backends": [{"ip": "10.1.0.1", "state": "active", "healthy": true}]}]}"#;
        let mut r = rule("10.1.0.1", None, None);
        r.table = "t".into();
        r.health = Some(false);
        let out =
            write_overrides(json.as_bytes(), Format::GlbJson, std::slice::from_ref(&r)).unwrap();
        let d = parse_desired(&out, "out").unwrap();
        assert_eq!(d.overrides, vec![r]);
        let out = write_overrides(&out, Format::GlbJson, &[]).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("overrides"));
    }
}
