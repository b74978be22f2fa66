//! `perf/plot.py`, the figures of perf/RESULTS.md, on the data files committed in
//! `tests/vectors/perf_plot/` (what the sections of perf/run write): every figure is an SVG
//! document that parses as XML, has the bars, lines and labels of its data, and renders with
//! `rsvg-convert` (Debian librsvg2-bin) to a PNG of its size that is not blank; a figure
//! whose data is missing or has no number is not drawn and a stale one is removed; the
//! markdown placeholders become links to the figures drawn and disappear for the others.
//!
//! Needs python3 (perf/plot.py and the XML check use its standard library only) and
//! rsvg-convert; without them it says why and is skipped (a failure with `CI=true`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::skip;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `perf/plot.py DATA OUT --markdown MD`: the names it says it drew.
fn plot(data: &Path, out: &Path, md: &Path) -> Vec<String> {
    let o = Command::new("python3")
        .arg(root().join("perf/plot.py"))
        .args([data, out])
        .arg("--markdown")
        .arg(md)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "perf/plot.py: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Parse `svg` with Python's XML parser: (root tag, width, height, element count).
fn parse_xml(svg: &Path) -> (String, u32, u32, usize) {
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E\n\
             r = E.parse(sys.argv[1]).getroot()\n\
             print(r.tag, r.get('width'), r.get('height'), len(list(r.iter())))",
        ])
        .arg(svg)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} is not XML: {}",
        svg.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let f: Vec<&str> = out.split_whitespace().collect();
    (
        f[0].to_string(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
    )
}

/// Render `svg` to a PNG next to it: (width, height, bytes).
fn render(svg: &Path) -> (u32, u32, usize) {
    let png = svg.with_extension("png");
    let o = Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png)
        .arg(svg)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "rsvg-convert {}: {}",
        svg.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let b = std::fs::read(&png).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: not a PNG",
        png.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    (w, h, b.len())
}

/// Each figure: its name, how many bars (elements with a tooltip) it has, how many lines,
/// and texts it must show.
const FIGURES: [(&str, usize, usize, &[&str]); 7] = [
    (
        "latency-af_packet",
        15,
        0,
        &[
            "af_packet: latency percentiles per load",
            "p50",
            "p90",
            "p99",
            "load sweep (rx=v2)",
            "receive ring at 50 %",
            "rx=v3",
            "1572",
            "11.8k",
            "latency (µs, log scale)",
        ],
    ),
    (
        "latency-af_xdp",
        8,
        0,
        &[
            "af_xdp: latency percentiles per load",
            "n/a",
            "2406",
            "90 %",
        ],
    ),
    (
        "rates-af_packet",
        3,
        0,
        &[
            "bare AF_PACKET loop (reference)",
            "0.408",
            "Rondo, 1 worker (verified)",
            "million packets per second (Mpps)",
        ],
    ),
    (
        "rates-af_xdp",
        4,
        0,
        &["bare AF_XDP reflector (reference)", "1.91", "offered load"],
    ),
    (
        "rates-dpdk",
        3,
        0,
        &[
            "testpmd macswap",
            "64.3",
            "34.5",
            "Rondo, full GLB encapsulation",
        ],
    ),
    (
        "scaling",
        6,
        0,
        &[
            "Rondo (2/1: 1.68×)",
            "testpmd macswap (2/1: 1.59×)",
            "2 workers (testpmd: 2 forwarding lcores)",
            "59.4",
        ],
    ),
    (
        "reload",
        0,
        2,
        &[
            "no change (reference)",
            "reload/change cycle (23 console commands: ticks)",
            "requested 0.296 Mpps",
            "seconds since pktgen started",
        ],
    ),
];

#[test]
fn plot_py_draws_every_figure_as_svg_that_renders_and_links_only_those_drawn() {
    if !have("python3", "--version") {
        skip("python3 is not installed");
        return;
    }
    if !have("rsvg-convert", "--version") {
        skip("rsvg-convert is not installed (Debian librsvg2-bin)");
        return;
    }
    let fixtures = root().join("tests/vectors/perf_plot");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("figures");
    std::fs::create_dir(&data).unwrap();
    for e in std::fs::read_dir(&fixtures).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
    }
    let md = dir.path().join("results.md");
    let mut placeholders = String::from("# Results\n\n");
    for (name, ..) in FIGURES {
        placeholders.push_str(&format!(
            "<!-- figure {name}: the {name} figure -->\n\nafter {name}\n"
        ));
    }
    placeholders.push_str("<!-- figure unknown: a figure plot.py does not know -->\n\nend\n");
    std::fs::write(&md, &placeholders).unwrap();

    // Every figure from the fixtures.
    let drawn = plot(&data, &out, &md);
    let names: Vec<&str> = FIGURES.iter().map(|f| f.0).collect();
    assert_eq!(drawn, names);
    let meta = "2 vCPUs, Intel(R) Xeon(R) Processor, 24 GiB, 2026-12-07 02:21 UTC, 828fe33";
    for (name, bars, lines, texts) in FIGURES {
        let svg = out.join(format!("{name}.svg"));
        let (tag, w, h, elements) = parse_xml(&svg);
        assert_eq!(tag, "{http://www.w3.org/2000/svg}svg", "{name}");
        assert!(elements > 30, "{name}: {elements} elements");
        let text = std::fs::read_to_string(&svg).unwrap();
        for t in texts.iter().chain([&meta]) {
            assert!(text.contains(&format!(">{t}")), "{name}: no text {t:?}");
        }
        assert_eq!(
            text.matches("\"><title>").count(),
            bars,
            "{name}: bars (elements with a tooltip)"
        );
        assert_eq!(text.matches("<polyline").count(), lines, "{name}: lines");
        let (pw, ph, bytes) = render(&svg);
        assert_eq!((pw, ph), (w, h), "{name}: PNG size");
        // A white 820 x 440 PNG is about 2 kB; axes, bars and text make it tens of kB.
        assert!(bytes > 8_000, "{name}: PNG of {bytes} bytes");
    }
    let linked = std::fs::read_to_string(&md).unwrap();
    for (name, ..) in FIGURES {
        assert!(
            linked.contains(&format!(
                "![the {name} figure](figures/{name}.svg)\n\nafter {name}\n"
            )),
            "{name} not linked:\n{linked}"
        );
    }
    assert!(
        !linked.contains("<!--") && !linked.contains("unknown"),
        "{linked}"
    );
    assert!(linked.ends_with("after reload\nend\n"), "{linked}");

    // Sections skipped: no data (scaling, reload) or no number (dpdk): no figure, the old
    // one removed, and no link.
    std::fs::remove_file(data.join("scaling.tsv")).unwrap();
    std::fs::remove_file(data.join("reload.json")).unwrap();
    std::fs::write(
        data.join("rates-dpdk.tsv"),
        "label\tmpps\tkind\ntestpmd io\tn/a\treference\nRondo\t\trondo\n",
    )
    .unwrap();
    std::fs::write(&md, &placeholders).unwrap();
    let drawn = plot(&data, &out, &md);
    let gone = ["rates-dpdk", "scaling", "reload"];
    let kept: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !gone.contains(n))
        .collect();
    assert_eq!(drawn, kept);
    let linked = std::fs::read_to_string(&md).unwrap();
    for n in gone {
        assert!(!out.join(format!("{n}.svg")).exists(), "stale {n}.svg");
        assert!(!linked.contains(&format!("figures/{n}.svg")), "{linked}");
        assert!(
            linked.contains(&format!("\nafter {n}\n")),
            "the text around {n} stays:\n{linked}"
        );
    }
    for n in kept {
        assert!(out.join(format!("{n}.svg")).exists(), "{n}.svg");
        assert!(linked.contains(&format!("(figures/{n}.svg)")), "{linked}");
    }
    assert!(!linked.contains("<!--"), "{linked}");
    // A removed placeholder takes its blank line along.
    assert!(!linked.contains("\n\n\n"), "{linked}");
}
