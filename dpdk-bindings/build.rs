//! Finds DPDK (>= 22.11) with pkg-config, generates bindings with bindgen over
//! `src/bindings.h` and compiles the static-inline shims in `src/shim.c`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const PKG: &str = "libdpdk";
const MIN_VERSION: &str = "22.11";

fn pkg_config(args: &[&str]) -> std::process::Output {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    Command::new(&pc).args(args).output().unwrap_or_else(|e| {
        panic!("dpdk-sys: cannot run `{pc}` ({e}); install the `pkg-config` package")
    })
}

fn pkg_config_stdout(args: &[&str]) -> String {
    let out = pkg_config(args);
    if !out.status.success() {
        panic!(
            "dpdk-sys: `pkg-config {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("pkg-config output is not UTF-8")
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/bindings.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // 1. Version gate, with a message that says what to install.
    let ok = pkg_config(&[&format!("--atleast-version={MIN_VERSION}"), PKG]);
    if !ok.status.success() {
        let found = pkg_config(&["--modversion", PKG]);
        let found = if found.status.success() {
            format!("found {}", String::from_utf8_lossy(&found.stdout).trim())
        } else {
            "not found by pkg-config".to_string()
        };
        panic!(
            "dpdk-sys: DPDK >= {MIN_VERSION} is required ({PKG} {found}). \
             On Debian 12 install it with `apt-get install libdpdk-dev pkg-config` \
             (bindgen also needs `libclang-dev`), or point PKG_CONFIG_PATH at a \
             DPDK install that ships {PKG}.pc."
        );
    }
    let version = pkg_config_stdout(&["--modversion", PKG]);
    println!("cargo:version={}", version.trim());
    println!("cargo:rustc-env=DPDK_PKG_VERSION={}", version.trim());

    // 2. Full cflags (incl. `-include rte_config.h` and `-march=corei7`), kept verbatim.
    let cflags: Vec<String> = pkg_config_stdout(&["--cflags", PKG])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let include_dirs: Vec<&str> = cflags.iter().filter_map(|f| f.strip_prefix("-I")).collect();
    println!("cargo:include={}", include_dirs.join(":"));

    // 3. Link flags: every -L / -l from `--libs`, nothing hard-coded except
    //    rte_bus_vdev, which libdpdk.pc omits but rte_vdev_init lives in.
    let libs = pkg_config_stdout(&["--libs", PKG]);
    let mut linked = Vec::new();
    for flag in libs.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
            linked.push(lib.to_owned());
        }
        // Other flags (e.g. -Wl,--as-needed) are left to rustc's defaults.
    }
    // Also rte_net_ring for rte_eth_from_rings (ports over rings the caller owns, used by
    // tests as an in-process peer). Both are PMD libraries: the -dev package links them
    // into the pmds directory that EAL loads, so this is the same file, loaded once.
    for lib in ["rte_bus_vdev", "rte_net_ring"] {
        if !linked.iter().any(|l| l == lib) {
            println!("cargo:rustc-link-lib={lib}");
        }
    }

    // 4. Shims for static-inline functions, compiled with the same flags.
    let mut build = cc::Build::new();
    build
        .file("src/shim.c")
        .include("src")
        .opt_level(3)
        .warnings(true);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("rondo_dpdk_shim");

    // 5. bindgen with an explicit allowlist.
    let functions = [
        // EAL, lcores, errors
        "rte_eal_init",
        "rte_eal_cleanup",
        "rte_eal_process_type",
        "rte_eal_get_runtime_dir",
        "rte_eal_remote_launch",
        "rte_eal_wait_lcore",
        "rte_eal_mp_wait_lcore",
        "rte_lcore_count",
        "rte_lcore_index",
        "rte_lcore_to_socket_id",
        "rte_lcore_is_enabled",
        "rte_get_main_lcore",
        "rte_get_next_lcore",
        "rte_thread_register",
        "rte_thread_unregister",
        "rte_socket_id",
        "rte_socket_count",
        "rte_strerror",
        "rte_version",
        // devices
        "rte_dev_probe",
        // mempool / pktmbuf pool
        "rte_pktmbuf_pool_create",
        "rte_mempool_free",
        "rte_mempool_lookup",
        "rte_mempool_avail_count",
        "rte_mempool_in_use_count",
        "rte_pktmbuf_free_bulk",
        // ethdev
        "rte_eth_dev_configure",
        "rte_eth_rx_queue_setup",
        "rte_eth_tx_queue_setup",
        "rte_eth_dev_start",
        "rte_eth_dev_stop",
        "rte_eth_dev_close",
        "rte_eth_dev_info_get",
        "rte_eth_dev_adjust_nb_rx_tx_desc",
        "rte_eth_dev_get_mtu",
        "rte_eth_dev_socket_id",
        "rte_eth_dev_is_valid_port",
        "rte_eth_dev_count_avail",
        "rte_eth_dev_count_total",
        "rte_eth_dev_get_port_by_name",
        "rte_eth_dev_get_name_by_port",
        "rte_eth_stats_get",
        "rte_eth_stats_reset",
        "rte_eth_xstats_get",
        "rte_eth_xstats_get_names",
        "rte_eth_xstats_reset",
        "rte_eth_link_get",
        "rte_eth_link_get_nowait",
        "rte_eth_promiscuous_enable",
        "rte_eth_promiscuous_disable",
        "rte_eth_promiscuous_get",
        "rte_eth_macaddr_get",
        "rte_eth_find_next_owned_by",
        // rings (rte_ring) and ethdev ports over them (rte_eth_ring)
        "rte_ring_create",
        "rte_ring_free",
        "rte_ring_lookup",
        "rte_eth_from_rings",
        // vdev bus
        "rte_vdev_init",
        "rte_vdev_uninit",
        // our shims (trailing underscore)
        "rte_.*_",
    ];
    let types = [
        "rte_mbuf",
        "rte_mempool",
        "rte_ether_addr",
        "rte_eth_conf",
        "rte_eth_rxconf",
        "rte_eth_txconf",
        "rte_eth_dev_info",
        "rte_eth_stats",
        "rte_eth_xstat",
        "rte_eth_xstat_name",
        "rte_eth_link",
        "rte_proc_type_t",
        "rte_ring",
        "lcore_function_t",
    ];
    let vars = [
        "SOCKET_ID_ANY",
        "LCORE_ID_ANY",
        "RTE_MAX_LCORE",
        "RTE_MAX_ETHPORTS",
        "RTE_MAX_NUMA_NODES",
        "RTE_PKTMBUF_HEADROOM",
        "RTE_MBUF_DEFAULT_DATAROOM",
        "RTE_MBUF_DEFAULT_BUF_SIZE",
        "RTE_MEMPOOL_CACHE_MAX_SIZE",
        "RTE_ETHER_ADDR_LEN",
        "RTE_ETHER_HDR_LEN",
        "RTE_ETHER_MIN_LEN",
        "RTE_ETHER_MAX_LEN",
        "RTE_ETHER_MTU",
        "RTE_ETH_NAME_MAX_LEN",
        "RTE_ETH_XSTATS_NAME_SIZE",
        "RTE_ETH_LINK_.*",
        "RTE_ETH_SPEED_NUM_.*",
        "RTE_ETH_MQ_.*",
        "RTE_CACHE_LINE_SIZE",
        "RING_F_.*",
        "RTE_VER_.*",
    ];

    let mut builder = bindgen::Builder::default()
        .header("src/bindings.h")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .layout_tests(true)
        .derive_default(true)
        .derive_debug(true)
        .impl_debug(false)
        .generate_comments(true)
        .prepend_enum_name(false)
        // packed + aligned / packed + Debug: bindgen cannot represent these.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr");
    for f in functions {
        builder = builder.allowlist_function(f);
    }
    for t in types {
        builder = builder.allowlist_type(t);
    }
    for v in vars {
        builder = builder.allowlist_var(v);
    }
    let bindings = builder
        .generate()
        .expect("dpdk-sys: bindgen failed on src/bindings.h (is libclang-dev installed?)");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("cannot write bindings.rs");
}
