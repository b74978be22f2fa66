//! Records build facts for `rondo --version`: whether the DPDK driver is compiled in and
//! against which DPDK (dpdk-sys, `links = "dpdk"`, exports it as `DEP_DPDK_VERSION`).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_DPDK_VERSION");
    let dpdk = match std::env::var("DEP_DPDK_VERSION") {
        Ok(v) if std::env::var_os("CARGO_FEATURE_DPDK").is_some() => {
            format!("DPDK {v} compiled in")
        }
        _ => "built without DPDK (enable with --features dpdk)".to_string(),
    };
    println!("cargo:rustc-env=RONDO_BUILD_DPDK={dpdk}");
}
