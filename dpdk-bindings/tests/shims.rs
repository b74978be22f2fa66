//! Exercises every C shim and the pure-Rust mbuf helpers against a real EAL
//! (`--no-huge`, vdevs net_ring0 + net_null0).
//!
//! EAL can be initialised once per process and binds the main lcore to the
//! initialising thread, so all checks run in order inside ONE `#[test]`;
//! plain `cargo test` works (no `--test-threads=1` needed).
//!
//! The `SAFETY:` comments rely on how `dpdk_shims`, the only entry point,
//! drives the private helpers below: they all run on the test thread (the main
//! lcore), after `eal()` returned `Ok` and before `rte_eal_cleanup`; and every
//! `pool` argument is the pktmbuf pool `check_pool_create` returned, which is
//! freed only at the end of `dpdk_shims`, after the last check.

use dpdk_sys::*;
use std::ffi::CString;
use std::io::Write;
use std::ptr;
use std::sync::OnceLock;

const ENOENT: i32 = 2;
const EINVAL: i32 = 22;
const ENODEV: i32 = 19;

const POOL_SIZE: u32 = 1023;
const BUF_SIZE: u16 = RTE_MBUF_DEFAULT_BUF_SIZE as u16; // 2048 + 128
const HEADROOM: u16 = RTE_PKTMBUF_HEADROOM as u16;

/// `Ok(())` once EAL is up, `Err(reason)` if it could not initialise here.
static EAL: OnceLock<Result<(), String>> = OnceLock::new();

fn eal() -> &'static Result<(), String> {
    EAL.get_or_init(|| {
        let prefix = format!("rondo-sys-{}", std::process::id());
        let args = [
            "dpdk-sys-test",
            "--no-huge",
            "-m",
            "256",
            "--no-shconf",
            "--file-prefix",
            &prefix,
            "--vdev",
            "net_ring0",
            "--vdev",
            "net_null0",
            "-l",
            "0",
            "--log-level=1",
            // No telemetry socket, so the runtime dir is empty and removable.
            "--no-telemetry",
        ];
        // SAFETY: eal_init may run at most once per process: OnceLock runs
        // this closure at most once and nothing else in this binary calls it.
        match unsafe { eal_init(&args) } {
            Ok(n) => {
                assert_eq!(n, args.len() - 1, "EAL should consume every option");
                Ok(())
            }
            Err(e) => Err(format!(
                "rte_eal_init({}) failed: rte_errno={e} ({})",
                args[1..].join(" "),
                strerror(e)
            )),
        }
    })
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn port_by_name(name: &str) -> Option<u16> {
    let mut id = u16::MAX;
    // SAFETY: the CString temporary is dropped only at the end of this
    // statement, so the name is a valid NUL-terminated string for the whole
    // call; `id` is a live u16 for DPDK to write the port id into.
    let rc = unsafe { rte_eth_dev_get_port_by_name(cstr(name).as_ptr(), &mut id) };
    (rc == 0).then_some(id)
}

fn avail(pool: *mut rte_mempool) -> u32 {
    // SAFETY: callers pass only the live pool from check_pool_create (see the
    // top of the file); this only reads its ring and cache counters.
    unsafe { rte_mempool_avail_count(pool) }
}

fn in_use(pool: *mut rte_mempool) -> u32 {
    // SAFETY: as in `avail`: `pool` is the live pool, only its counters are read.
    unsafe { rte_mempool_in_use_count(pool) }
}

#[test]
fn dpdk_shims() {
    if let Err(reason) = eal() {
        // CI installs DPDK and runs every test: there a skip is a failure.
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("dpdk_shims cannot run here ({reason}), and with CI=true every test must run");
        }
        // Written straight to the stderr handle, which libtest does not capture, in the
        // form `scripts/test` counts as a skipped test (as the root package's tests do).
        let _ = writeln!(
            std::io::stderr(),
            "rondo-test-skipped: dpdk-sys::dpdk_shims: {reason}"
        );
        return;
    }

    check_lcore_id();
    check_constants_and_version();
    let pool = check_pool_create();
    check_errno(pool);
    check_alloc_free(pool);
    check_data_room_ops(pool);
    check_bulk(pool);
    check_ethdev_count();
    check_ring_loopback(pool);
    check_rings_and_port_from_rings(pool);
    check_null_port(pool);
    check_vdev_init_uninit();

    assert_eq!(
        avail(pool),
        POOL_SIZE,
        "every mbuf must be back in the pool"
    );
    assert_eq!(in_use(pool), 0);
    // SAFETY: last use of `pool`: every mbuf is back in it (asserted above) and
    // the two ports whose rx queue allocated from it were closed by stop_port.
    unsafe { rte_mempool_free(pool) };
    // EAL leaves its (empty, with --no-shconf) runtime dir behind: remove ours.
    // SAFETY: rte_eal_get_runtime_dir returns EAL's static NUL-terminated path
    // buffer; it is copied into a String here, before rte_eal_cleanup.
    let run_dir = unsafe { std::ffi::CStr::from_ptr(rte_eal_get_runtime_dir()) }
        .to_string_lossy()
        .into_owned();
    assert!(
        run_dir.ends_with(&format!("rondo-sys-{}", std::process::id())),
        "{run_dir}"
    );
    // SAFETY: EAL was initialised by eal() on this thread; the pool is freed,
    // both started ports are closed, and no DPDK call follows this one.
    assert_eq!(unsafe { rte_eal_cleanup() }, 0, "rte_eal_cleanup");
    let _ = std::fs::remove_dir(&run_dir);
}

fn check_constants_and_version() {
    // SAFETY: the shim returns a compile-time constant; no preconditions.
    let c = unsafe { rte_eth_rss_ip_tcp_udp_() };
    assert_eq!(c, RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    assert_eq!(c.count_ones(), 13, "7 IP + 3 TCP + 3 UDP flow types");
    // rte_version() says "DPDK 22.11.x"; pkg-config said "22.11.x".
    let v = runtime_version();
    assert!(v.starts_with("DPDK "), "{v}");
    assert!(v.contains(DPDK_VERSION), "{v} vs {DPDK_VERSION}");
}

fn check_lcore_id() {
    // Main thread: lcore 0 (`-l 0`), and it agrees with rte_get_main_lcore().
    // SAFETY: rte_lcore_id only reads the calling thread's lcore thread-local.
    assert_eq!(unsafe { rte_lcore_id() }, 0);
    // SAFETY: reads the main lcore id from rte_config, set by eal() already.
    assert_eq!(unsafe { rte_get_main_lcore() }, 0);
    // SAFETY: reads the lcore count from rte_config, set by eal() already.
    assert_eq!(unsafe { rte_lcore_count() }, 1);
    // The value is a thread-local: an unregistered std::thread sees LCORE_ID_ANY.
    // SAFETY: a thread-local read, valid on any thread, EAL-registered or not.
    let other = std::thread::spawn(|| unsafe { rte_lcore_id() })
        .join()
        .unwrap();
    assert_eq!(other, LCORE_ID_ANY);
    // SAFETY: rte_socket_id only reads the calling thread's socket thread-local.
    let sock = unsafe { rte_socket_id() };
    assert!(
        sock == 0 || sock as i32 == SOCKET_ID_ANY,
        "socket id {sock}"
    );
}

fn check_pool_create() -> *mut rte_mempool {
    let name = cstr("rondo_sys_test");
    // SAFETY: EAL is up, so its memory and mempool list exist; `name` is a
    // NUL-terminated string alive across the call (DPDK copies it); cache size
    // 0 and private size 0 are valid; rte_socket_id reads a thread-local.
    let pool = unsafe {
        rte_pktmbuf_pool_create(
            name.as_ptr(),
            POOL_SIZE,
            0,
            0,
            BUF_SIZE,
            rte_socket_id() as i32,
        )
    };
    assert!(
        !pool.is_null(),
        "rte_pktmbuf_pool_create: {}",
        // SAFETY: only reads the calling thread's rte_errno thread-local.
        strerror(unsafe { rte_errno() })
    );
    assert_eq!(avail(pool), POOL_SIZE);
    assert_eq!(in_use(pool), 0);
    // SAFETY: `name` is still alive and NUL-terminated; the lookup only walks
    // EAL's mempool list.
    assert_eq!(unsafe { rte_mempool_lookup(name.as_ptr()) }, pool);
    pool
}

fn check_errno(pool: *mut rte_mempool) {
    // rte_mempool_lookup reports a missing pool only through rte_errno.
    // SAFETY: only writes the calling thread's rte_errno thread-local.
    unsafe { rte_errno_set(0) };
    // SAFETY: only reads the calling thread's rte_errno thread-local.
    assert_eq!(unsafe { rte_errno() }, 0);
    // SAFETY: the CString temporary lives until the end of this statement, so
    // the name is valid for the call; EAL is up, so the mempool list exists.
    let p = unsafe { rte_mempool_lookup(cstr("no_such_pool").as_ptr()) };
    assert!(p.is_null());
    // SAFETY: only reads the calling thread's rte_errno thread-local.
    assert_eq!(unsafe { rte_errno() }, ENOENT);

    // A different failure gives a different value: priv_size must be aligned.
    // SAFETY: only writes the calling thread's rte_errno thread-local.
    unsafe { rte_errno_set(0) };
    // SAFETY: EAL is up and the CString temporary outlives the call; DPDK
    // rejects priv_size 3 (not a multiple of RTE_MBUF_PRIV_ALIGN) with EINVAL
    // before it allocates anything.
    let p = unsafe {
        rte_pktmbuf_pool_create(cstr("bad_priv").as_ptr(), 63, 0, 3, BUF_SIZE, SOCKET_ID_ANY)
    };
    assert!(p.is_null());
    // SAFETY: only reads the calling thread's rte_errno thread-local.
    assert_eq!(unsafe { rte_errno() }, EINVAL);

    // ethdev returns its errors directly: invalid port -> -ENODEV.
    let conf = rte_eth_conf::default();
    // SAFETY: ethdev range-checks the port id before touching any device state
    // (RTE_MAX_ETHPORTS is out of range); `conf` is a live local it may read.
    let rc = unsafe { rte_eth_dev_configure(RTE_MAX_ETHPORTS as u16, 1, 1, &conf) };
    assert_eq!(rc, -ENODEV);
    assert!(
        strerror(ENODEV).to_lowercase().contains("device"),
        "{}",
        strerror(ENODEV)
    );
    assert_eq!(avail(pool), POOL_SIZE);
}

fn check_alloc_free(pool: *mut rte_mempool) {
    // SAFETY: `pool` is the live pktmbuf pool from check_pool_create.
    let m = unsafe { rte_pktmbuf_alloc(pool) };
    assert!(!m.is_null());
    assert_eq!(avail(pool), POOL_SIZE - 1);
    assert_eq!(in_use(pool), 1);
    // SAFETY: `m` is non-null (asserted above), came from rte_pktmbuf_alloc on
    // the live pool and is owned only here until rte_pktmbuf_free, its last
    // use. buf_len == BUF_SIZE is asserted before `base.add(HEADROOM)`, so that
    // offset stays inside m's data buffer.
    unsafe {
        assert_eq!((*m).pool, pool);
        assert_eq!(pktmbuf_data_off(m), HEADROOM);
        assert_eq!(pktmbuf_data_len(m), 0);
        assert_eq!(pktmbuf_pkt_len(m), 0);
        assert_eq!(pktmbuf_buf_len(m), BUF_SIZE);
        assert_eq!(rte_pktmbuf_headroom(m), HEADROOM);
        assert_eq!(rte_pktmbuf_tailroom(m), BUF_SIZE - HEADROOM);
        assert_eq!(pktmbuf_tailroom(m), BUF_SIZE - HEADROOM);
        let base = (*m).buf_addr as *mut u8;
        assert_eq!(rte_pktmbuf_mtod(m) as *mut u8, base.add(HEADROOM as usize));
        assert_eq!(pktmbuf_mtod(m), base.add(HEADROOM as usize));
        rte_pktmbuf_free(m);
    }
    assert_eq!(avail(pool), POOL_SIZE);
    assert_eq!(in_use(pool), 0);
    // SAFETY: rte_pktmbuf_free accepts null and then does nothing.
    unsafe { rte_pktmbuf_free(ptr::null_mut()) }; // documented no-op
    assert_eq!(avail(pool), POOL_SIZE);
}

/// Asserts data_off / data_len / pkt_len, and that mtod, headroom and tailroom
/// (shim and Rust helper) are consistent with them.
///
/// # Safety
/// `m` must be a valid mbuf (allocated, not yet freed) owned by the caller.
unsafe fn expect_layout(m: *mut rte_mbuf, off: u16, len: u16) {
    // SAFETY: the caller guarantees `m` is a valid mbuf it owns. `base.add(off)`
    // runs only after `data_off == off` is asserted, and DPDK keeps data_off
    // <= buf_len, so the offset stays inside m's data buffer.
    unsafe {
        assert_eq!(pktmbuf_data_off(m), off, "data_off");
        assert_eq!(pktmbuf_data_len(m), len, "data_len");
        assert_eq!(pktmbuf_pkt_len(m), len as u32, "pkt_len");
        let base = (*m).buf_addr as *mut u8;
        assert_eq!(
            rte_pktmbuf_mtod(m) as *mut u8,
            base.add(off as usize),
            "mtod shim"
        );
        assert_eq!(pktmbuf_mtod(m), base.add(off as usize), "mtod helper");
        assert_eq!(rte_pktmbuf_headroom(m), off, "headroom");
        assert_eq!(
            rte_pktmbuf_tailroom(m),
            BUF_SIZE - off - len,
            "tailroom shim"
        );
        assert_eq!(pktmbuf_tailroom(m), BUF_SIZE - off - len, "tailroom helper");
    }
}

fn check_data_room_ops(pool: *mut rte_mempool) {
    // SAFETY: `pool` is the live pool; `m` is used only after the non-null
    // assert and is owned here until rte_pktmbuf_free, its last use. Each
    // `pktmbuf_data(m)` slice is a temporary that ends before the next call
    // that changes `m`, so it never aliases a write by DPDK. The `base.add`
    // offsets (h - 14, h, h + 4) all lie inside m's BUF_SIZE-byte buffer.
    unsafe {
        let m = rte_pktmbuf_alloc(pool);
        assert!(!m.is_null());
        let base = (*m).buf_addr as *mut u8;
        let h = HEADROOM;

        // append: returns the old tail, grows data_len/pkt_len.
        let p = rte_pktmbuf_append(m, 100) as *mut u8;
        assert_eq!(p, base.add(h as usize));
        expect_layout(m, h, 100);
        for (i, b) in pktmbuf_data(m).iter_mut().enumerate() {
            *b = i as u8;
        }
        // too much: null, unchanged.
        assert!(rte_pktmbuf_append(m, BUF_SIZE).is_null());
        expect_layout(m, h, 100);

        // prepend 14: data_off -= 14, data_len += 14, returns new start.
        let p = rte_pktmbuf_prepend(m, 14) as *mut u8;
        assert_eq!(p, base.add((h - 14) as usize));
        expect_layout(m, h - 14, 114);
        assert_eq!(pktmbuf_data(m)[14], 0);
        assert_eq!(pktmbuf_data(m)[14 + 99], 99);
        assert!(rte_pktmbuf_prepend(m, h).is_null(), "headroom is h-14 now");
        expect_layout(m, h - 14, 114);

        // adj 18: data_off += 18, data_len -= 18, returns new start.
        let p = rte_pktmbuf_adj(m, 18) as *mut u8;
        assert_eq!(p, base.add((h + 4) as usize));
        expect_layout(m, h + 4, 96);
        assert_eq!(pktmbuf_data(m)[0], 4);
        assert!(rte_pktmbuf_adj(m, 97).is_null());
        expect_layout(m, h + 4, 96);

        // trim 6: data_len -= 6, data_off unchanged, returns 0.
        assert_eq!(rte_pktmbuf_trim(m, 6), 0);
        expect_layout(m, h + 4, 90);
        assert_eq!(*pktmbuf_data(m).last().unwrap(), 93);
        assert_eq!(rte_pktmbuf_trim(m, 91), -1);
        expect_layout(m, h + 4, 90);

        rte_pktmbuf_free(m);
    }
    assert_eq!(avail(pool), POOL_SIZE);
}

fn check_bulk(pool: *mut rte_mempool) {
    const N: usize = 64;
    let mut bufs = [ptr::null_mut::<rte_mbuf>(); N];
    // SAFETY: `pool` is the live pool. The single mbuf is checked non-null
    // before append and not used after its free. alloc_bulk writes at most
    // `count` pointers, which is exactly the length of `bufs` / `big`; it
    // returned 0 for `bufs`, so all N entries are valid mbufs owned here until
    // free_bulk returns exactly those N, after which they are not touched.
    unsafe {
        // Dirty one mbuf first to see that bulk alloc resets it.
        let m = rte_pktmbuf_alloc(pool);
        assert!(!m.is_null());
        assert!(!rte_pktmbuf_append(m, 50).is_null());
        rte_pktmbuf_free(m);

        assert_eq!(rte_pktmbuf_alloc_bulk(pool, bufs.as_mut_ptr(), N as u32), 0);
        assert_eq!(avail(pool), POOL_SIZE - N as u32);
        assert_eq!(in_use(pool), N as u32);
        let mut seen = std::collections::HashSet::new();
        for &m in &bufs {
            assert!(!m.is_null());
            assert!(seen.insert(m as usize), "duplicate mbuf");
            expect_layout(m, HEADROOM, 0);
            assert_eq!((*m).nb_segs, 1);
            assert_eq!((*m).refcnt, 1);
        }
        rte_pktmbuf_free_bulk(bufs.as_mut_ptr(), N as u32);
        assert_eq!(avail(pool), POOL_SIZE);

        // More than the pool holds: fails as a whole, takes nothing.
        let mut big = vec![ptr::null_mut::<rte_mbuf>(); POOL_SIZE as usize + 1];
        let rc = rte_pktmbuf_alloc_bulk(pool, big.as_mut_ptr(), big.len() as u32);
        assert!(rc < 0, "alloc_bulk beyond the pool returned {rc}");
        assert_eq!(avail(pool), POOL_SIZE);
    }
}

fn check_ethdev_count() {
    // SAFETY: only reads ethdev's port table (rte_eth_devices).
    assert!(unsafe { rte_eth_dev_count_avail() } >= 2);
    // SAFETY: both only read ethdev's port table (rte_eth_devices).
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, unsafe {
        rte_eth_dev_count_total()
    });
    let ring = port_by_name("net_ring0").expect("net_ring0 port");
    let null = port_by_name("net_null0").expect("net_null0 port");
    assert_ne!(ring, null);
    assert!(port_by_name("net_nope9").is_none());
    // SAFETY: accepts any u16: it range-checks it and reads the port's state.
    assert_eq!(unsafe { rte_eth_dev_is_valid_port(ring) }, 1);
    assert_eq!(
        // SAFETY: as above; RTE_MAX_ETHPORTS fails the range check, yielding 0.
        unsafe { rte_eth_dev_is_valid_port(RTE_MAX_ETHPORTS as u16) },
        0
    );
}

/// Configures 1 rx + 1 tx queue on `port` and starts it.
fn start_port(port: u16, pool: *mut rte_mempool) {
    // SAFETY: each ethdev control call validates `port` (and queue ids against
    // the configured counts) before use, and runs on the test thread only;
    // `info` and `conf` are live locals; null rx/tx confs mean driver
    // defaults. `pool` is the live pktmbuf pool the rx queue allocates from,
    // and it outlives the port: stop_port closes it before the pool is freed.
    unsafe {
        let mut info = rte_eth_dev_info::default();
        assert_eq!(rte_eth_dev_info_get(port, &mut info), 0);
        assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);
        let conf = rte_eth_conf::default();
        assert_eq!(rte_eth_dev_configure(port, 1, 1, &conf), 0);
        let sock = rte_eth_dev_socket_id(port);
        let sock = if sock < 0 { SOCKET_ID_ANY } else { sock };
        assert_eq!(
            rte_eth_rx_queue_setup(port, 0, 256, sock as u32, ptr::null(), pool),
            0
        );
        assert_eq!(
            rte_eth_tx_queue_setup(port, 0, 256, sock as u32, ptr::null()),
            0
        );
        assert_eq!(rte_eth_dev_start(port), 0);
        assert_eq!(rte_eth_stats_reset(port), 0);
    }
}

fn stop_port(port: u16) {
    // SAFETY: ethdev validates `port`; only the test thread uses the port, so
    // no rx/tx burst can run on its queues while it is stopped and closed.
    unsafe {
        assert_eq!(rte_eth_dev_stop(port), 0);
        assert_eq!(rte_eth_dev_close(port), 0);
    }
}

fn xstat(port: u16, wanted: &str) -> Option<u64> {
    // SAFETY: ethdev validates `port`. With a null array and size 0 the first
    // call only returns the count; the next two write at most `n` entries,
    // and `names` / `vals` hold exactly `n`.
    let (names, vals) = unsafe {
        let n = rte_eth_xstats_get_names(port, ptr::null_mut(), 0);
        assert!(n > 0, "xstats count {n}");
        let mut names = vec![rte_eth_xstat_name::default(); n as usize];
        let mut vals = vec![rte_eth_xstat::default(); n as usize];
        assert_eq!(
            rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32),
            n
        );
        assert_eq!(rte_eth_xstats_get(port, vals.as_mut_ptr(), n as u32), n);
        (names, vals)
    };
    vals.iter().find_map(|v| {
        // Bounded by the array, so a name missing its NUL cannot overrun it.
        let raw = names[v.id as usize].name.map(|c| c as u8);
        let name = std::ffi::CStr::from_bytes_until_nul(&raw).ok()?;
        (name.to_str().ok()? == wanted).then_some(v.value)
    })
}

fn check_ring_loopback(pool: *mut rte_mempool) {
    const N: usize = 16;
    let port = port_by_name("net_ring0").unwrap();
    start_port(port, pool);
    // SAFETY: start_port just configured and started `port` with rx and tx
    // queue 0, and only this thread bursts on them; `link`, `mac` and `st` are
    // live locals. alloc_bulk returned 0, so `tx` holds N valid mbufs owned
    // here; each is filled only after append succeeded, and tx_burst takes all
    // N (asserted), after which they are only compared as pointers. rx_burst
    // writes at most `rx.len()` pointers; the received mbufs are dereferenced
    // only after `got == N` is asserted and are owned here until free_bulk
    // returns exactly those N.
    unsafe {
        let mut link = rte_eth_link::default();
        assert_eq!(rte_eth_link_get_nowait(port, &mut link), 0);
        assert_eq!(link.link_status(), RTE_ETH_LINK_UP as u16);
        assert_eq!(rte_eth_promiscuous_enable(port), 0);
        assert_eq!(rte_eth_promiscuous_get(port), 1);
        let mut mac = rte_ether_addr::default();
        assert_eq!(rte_eth_macaddr_get(port, &mut mac), 0);

        let mut tx = [ptr::null_mut::<rte_mbuf>(); N];
        assert_eq!(rte_pktmbuf_alloc_bulk(pool, tx.as_mut_ptr(), N as u32), 0);
        for (i, &m) in tx.iter().enumerate() {
            let p = rte_pktmbuf_append(m, 60 + i as u16) as *mut u8;
            assert!(!p.is_null());
            pktmbuf_data(m).fill(i as u8);
        }
        let sent = rte_eth_tx_burst(port, 0, tx.as_mut_ptr(), N as u16);
        assert_eq!(sent as usize, N, "ring tx");
        assert_eq!(in_use(pool), N as u32, "tx'd mbufs sit in the ring");

        // net_ring created by --vdev uses the same ring for rx and tx queue 0:
        // what was sent comes back, same mbufs, same order.
        let mut rx = [ptr::null_mut::<rte_mbuf>(); 32];
        let got = rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), rx.len() as u16);
        assert_eq!(got as usize, N, "ring rx");
        for i in 0..N {
            assert_eq!(rx[i], tx[i]);
            assert_eq!(pktmbuf_data_len(rx[i]), 60 + i as u16);
            assert!(pktmbuf_data(rx[i]).iter().all(|&b| b == i as u8));
        }
        assert_eq!(
            rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), 32),
            0,
            "ring drained"
        );

        let mut st = rte_eth_stats::default();
        assert_eq!(rte_eth_stats_get(port, &mut st), 0);
        assert_eq!((st.opackets, st.ipackets), (N as u64, N as u64));
        assert_eq!(xstat(port, "tx_good_packets"), Some(N as u64));
        assert_eq!(xstat(port, "rx_good_packets"), Some(N as u64));
        assert_eq!(rte_eth_xstats_reset(port), 0);
        assert_eq!(xstat(port, "tx_good_packets"), Some(0));

        rte_pktmbuf_free_bulk(rx.as_mut_ptr(), N as u32);
    }
    assert_eq!(avail(pool), POOL_SIZE);
    stop_port(port);
}

fn check_rings_and_port_from_rings(pool: *mut rte_mempool) {
    let (rx_name, tx_name) = (cstr("shim_rx"), cstr("shim_tx"));
    // SAFETY: EAL is up (see the file comment); the names are valid C strings
    // for the calls (DPDK copies them); the flags ask for single-producer /
    // single-consumer rings, and only this thread uses them below.
    let (rxr, txr) = unsafe {
        let f = RING_F_SP_ENQ | RING_F_SC_DEQ;
        (
            rte_ring_create(rx_name.as_ptr(), 64, SOCKET_ID_ANY, f),
            rte_ring_create(tx_name.as_ptr(), 64, SOCKET_ID_ANY, f),
        )
    };
    assert!(!rxr.is_null() && !txr.is_null());
    // SAFETY: the name is a valid C string; the lookup only reads the registry.
    assert_eq!(unsafe { rte_ring_lookup(rx_name.as_ptr()) }, rxr);
    let name = cstr("shim_ringport");
    // SAFETY: both ring arrays hold one live ring each, as the counts say.
    let port = unsafe { rte_eth_from_rings(name.as_ptr(), &rxr, 1, &txr, 1, 0) };
    assert!(port >= 0, "rte_eth_from_rings: {port}");
    let port = port as u16;
    let mut buf = [0 as std::ffi::c_char; 64];
    // SAFETY: `port` is valid; `buf` has RTE_ETH_NAME_MAX_LEN (64) bytes.
    let rc = unsafe { rte_eth_dev_get_name_by_port(port, buf.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: DPDK NUL-terminated the name inside `buf`.
    let got = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(got.to_str(), Ok("net_ring_shim_ringport"), "ethdev name");
    assert_eq!(port_by_name("net_ring_shim_ringport"), Some(port));
    start_port(port, pool);
    // SAFETY: the port is started with one queue pair, used only by this
    // thread; alloc_bulk returned 0 so `m` holds 4 valid mbufs owned here;
    // ownership moves into the rx ring (enqueue of all 4 asserted), back to
    // us through rx_burst (4 asserted), into the tx ring through tx_burst (4
    // asserted), back through dequeue (4 asserted), and to the pool by
    // free_bulk of exactly those 4.
    unsafe {
        let mut m = [ptr::null_mut::<rte_mbuf>(); 4];
        assert_eq!(rte_pktmbuf_alloc_bulk(pool, m.as_mut_ptr(), 4), 0);
        let mut free = 0;
        let n = rte_ring_enqueue_burst(rxr, m.as_ptr().cast(), 4, &mut free);
        assert_eq!((n, free), (4, 63 - 4), "a ring of 64 holds 63");
        assert_eq!(rte_ring_count(rxr), 4);
        let mut got = [ptr::null_mut::<rte_mbuf>(); 8];
        assert_eq!(rte_eth_rx_burst(port, 0, got.as_mut_ptr(), 8), 4);
        assert_eq!(&got[..4], &m[..]);
        assert_eq!(rte_ring_count(rxr), 0);
        assert_eq!(rte_eth_tx_burst(port, 0, got.as_mut_ptr(), 4), 4);
        assert_eq!(rte_ring_count(txr), 4, "tx lands in the tx ring");
        let mut back = [ptr::null_mut::<rte_mbuf>(); 8];
        let mut left = 99;
        let n = rte_ring_dequeue_burst(txr, back.as_mut_ptr().cast(), 8, &mut left);
        assert_eq!((n, left), (4, 0));
        assert_eq!(&back[..4], &m[..]);
        rte_pktmbuf_free_bulk(back.as_mut_ptr(), 4);
    }
    assert_eq!(avail(pool), POOL_SIZE);
    stop_port(port);
    // SAFETY: the port is closed, so nothing refers to the rings any more.
    unsafe {
        rte_ring_free(rxr);
        rte_ring_free(txr);
    }
}

fn check_null_port(pool: *mut rte_mempool) {
    let port = port_by_name("net_null0").unwrap();
    start_port(port, pool);
    // SAFETY: start_port just configured and started `port` with rx and tx
    // queue 0, and only this thread bursts on them; `st` is a live local.
    // alloc_bulk returned 0, so `tx` holds 8 valid mbufs, all taken (and
    // freed) by tx_burst (asserted) and not touched after. rx_burst writes at
    // most 4 pointers into `rx`; they are dereferenced only after 4 is
    // asserted, and are owned here until free_bulk returns exactly those 4.
    unsafe {
        // tx: net_null frees what it is given.
        let mut tx = [ptr::null_mut::<rte_mbuf>(); 8];
        assert_eq!(rte_pktmbuf_alloc_bulk(pool, tx.as_mut_ptr(), 8), 0);
        assert_eq!(avail(pool), POOL_SIZE - 8);
        assert_eq!(rte_eth_tx_burst(port, 0, tx.as_mut_ptr(), 8), 8);
        assert_eq!(avail(pool), POOL_SIZE, "net_null tx frees the mbufs");

        // rx: net_null generates packets (default 64 bytes) from our pool.
        let mut rx = [ptr::null_mut::<rte_mbuf>(); 4];
        assert_eq!(rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), 4), 4);
        assert_eq!(in_use(pool), 4);
        for &m in &rx {
            assert_eq!((*m).pool, pool);
            assert_eq!(pktmbuf_pkt_len(m), 64);
        }
        let mut st = rte_eth_stats::default();
        assert_eq!(rte_eth_stats_get(port, &mut st), 0);
        assert_eq!((st.opackets, st.ipackets), (8, 4));
        rte_pktmbuf_free_bulk(rx.as_mut_ptr(), 4);
    }
    assert_eq!(avail(pool), POOL_SIZE);
    stop_port(port);
}

fn check_vdev_init_uninit() {
    let name = cstr("net_null1");
    // SAFETY: only reads ethdev's port table (rte_eth_devices).
    let before = unsafe { rte_eth_dev_count_avail() };
    // SAFETY: EAL is up (vdev bus scanned, net_null PMD loaded); `name` is a
    // NUL-terminated string alive across the call; null args means "no args".
    assert_eq!(unsafe { rte_vdev_init(name.as_ptr(), ptr::null()) }, 0);
    // SAFETY: only reads ethdev's port table (rte_eth_devices).
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, before + 1);
    assert!(port_by_name("net_null1").is_some());
    // SAFETY: `name` is still alive; net_null1 was created above and never
    // configured or started, so removing it leaves nothing using it.
    assert_eq!(unsafe { rte_vdev_uninit(name.as_ptr()) }, 0);
    // SAFETY: only reads ethdev's port table (rte_eth_devices).
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, before);
    assert!(port_by_name("net_null1").is_none());
}
