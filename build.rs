//! Records build facts for `rondo --version`: whether the DPDK driver is compiled in and
//! against which DPDK (dpdk-sys, `links = "dpdk"`, exports it as `DEP_DPDK_VERSION`).
//! With the `af_xdp` feature it also compiles the XDP program `bpf/steer.bpf.c` with clang
//! (`-target bpf -O2 -g`) into `$OUT_DIR/steer.bpf.o`, which the driver embeds.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_DPDK_VERSION");
    let dpdk = match std::env::var("DEP_DPDK_VERSION") {
        Ok(v) if std::env::var_os("CARGO_FEATURE_DPDK").is_some() => {
            format!("DPDK {v} compiled in")
        }
        _ => "built without DPDK (enable with --features dpdk)".to_string(),
    };
    println!("cargo:rustc-env=RONDO_BUILD_DPDK={dpdk}");
    if std::env::var_os("CARGO_FEATURE_AF_XDP").is_some() {
        build_xdp_program();
    }
}

/// `clang -target bpf` on the project's XDP program; a missing clang or header fails the
/// build with what to install.
fn build_xdp_program() {
    let src = "bpf/steer.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("steer.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    // The multiarch include directory holds asm/types.h, which linux/bpf.h needs.
    let multiarch = format!(
        "/usr/include/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    let status = std::process::Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "feature af_xdp: `{clang} -target bpf` on {src} failed ({s}); it needs the headers of \
             libbpf-dev and linux-libc-dev (apt-get install clang llvm libbpf-dev)"
        ),
        Err(e) => panic!(
            "feature af_xdp: cannot run {clang} ({e}): the XDP program is compiled with clang; \
             apt-get install clang llvm libbpf-dev, or build without --features af_xdp"
        ),
    }
}
