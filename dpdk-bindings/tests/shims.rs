//! Exercises every C shim and the pure-Rust mbuf helpers against a real EAL
//! (`--no-huge`, vdevs net_ring0 + net_null0).
//!
//! EAL can be initialised once per process and binds the main lcore to the
//! initialising thread, so all checks run in order inside ONE `#[test]`;
//! plain `cargo test` works (no `--test-threads=1` needed).
#![allow(clippy::undocumented_unsafe_blocks)] // tests: every block is an FFI call under test

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
    let rc = unsafe { rte_eth_dev_get_port_by_name(cstr(name).as_ptr(), &mut id) };
    (rc == 0).then_some(id)
}

fn avail(pool: *mut rte_mempool) -> u32 {
    unsafe { rte_mempool_avail_count(pool) }
}

fn in_use(pool: *mut rte_mempool) -> u32 {
    unsafe { rte_mempool_in_use_count(pool) }
}

#[test]
fn dpdk_shims() {
    if let Err(reason) = eal() {
        // Written straight to the stderr handle, which libtest does not
        // capture, so the skip is visible in plain `cargo test` output.
        let _ = writeln!(std::io::stderr(), "skipped: {reason}");
        return;
    }

    check_lcore_id();
    let pool = check_pool_create();
    check_errno(pool);
    check_alloc_free(pool);
    check_data_room_ops(pool);
    check_bulk(pool);
    check_ethdev_count();
    check_ring_loopback(pool);
    check_null_port(pool);
    check_vdev_init_uninit();

    assert_eq!(
        avail(pool),
        POOL_SIZE,
        "every mbuf must be back in the pool"
    );
    assert_eq!(in_use(pool), 0);
    unsafe { rte_mempool_free(pool) };
    // EAL leaves its (empty, with --no-shconf) runtime dir behind: remove ours.
    let run_dir = unsafe { std::ffi::CStr::from_ptr(rte_eal_get_runtime_dir()) }
        .to_string_lossy()
        .into_owned();
    assert!(
        run_dir.ends_with(&format!("rondo-sys-{}", std::process::id())),
        "{run_dir}"
    );
    assert_eq!(unsafe { rte_eal_cleanup() }, 0, "rte_eal_cleanup");
    let _ = std::fs::remove_dir(&run_dir);
}

fn check_lcore_id() {
    // Main thread: lcore 0 (`-l 0`), and it agrees with rte_get_main_lcore().
    assert_eq!(unsafe { rte_lcore_id() }, 0);
    assert_eq!(unsafe { rte_get_main_lcore() }, 0);
    assert_eq!(unsafe { rte_lcore_count() }, 1);
    // The value is a thread-local: an unregistered std::thread sees LCORE_ID_ANY.
    let other = std::thread::spawn(|| unsafe { rte_lcore_id() })
        .join()
        .unwrap();
    assert_eq!(other, LCORE_ID_ANY);
    let sock = unsafe { rte_socket_id() };
    assert!(
        sock == 0 || sock as i32 == SOCKET_ID_ANY,
        "socket id {sock}"
    );
}

fn check_pool_create() -> *mut rte_mempool {
    let name = cstr("rondo_sys_test");
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
        strerror(unsafe { rte_errno() })
    );
    assert_eq!(avail(pool), POOL_SIZE);
    assert_eq!(in_use(pool), 0);
    assert_eq!(unsafe { rte_mempool_lookup(name.as_ptr()) }, pool);
    pool
}

fn check_errno(pool: *mut rte_mempool) {
    // rte_mempool_lookup reports a missing pool only through rte_errno.
    unsafe { rte_errno_set(0) };
    assert_eq!(unsafe { rte_errno() }, 0);
    let p = unsafe { rte_mempool_lookup(cstr("no_such_pool").as_ptr()) };
    assert!(p.is_null());
    assert_eq!(unsafe { rte_errno() }, ENOENT);

    // A different failure gives a different value: priv_size must be aligned.
    unsafe { rte_errno_set(0) };
    let p = unsafe {
        rte_pktmbuf_pool_create(cstr("bad_priv").as_ptr(), 63, 0, 3, BUF_SIZE, SOCKET_ID_ANY)
    };
    assert!(p.is_null());
    assert_eq!(unsafe { rte_errno() }, EINVAL);

    // ethdev returns its errors directly: invalid port -> -ENODEV.
    let conf = rte_eth_conf::default();
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
    let m = unsafe { rte_pktmbuf_alloc(pool) };
    assert!(!m.is_null());
    assert_eq!(avail(pool), POOL_SIZE - 1);
    assert_eq!(in_use(pool), 1);
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
    unsafe { rte_pktmbuf_free(ptr::null_mut()) }; // documented no-op
    assert_eq!(avail(pool), POOL_SIZE);
}

/// Asserts data_off / data_len / pkt_len, and that mtod, headroom and tailroom
/// (shim and Rust helper) are consistent with them.
unsafe fn expect_layout(m: *mut rte_mbuf, off: u16, len: u16) {
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
    unsafe {
        // Dirty one mbuf first to see that bulk alloc resets it.
        let m = rte_pktmbuf_alloc(pool);
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
    assert!(unsafe { rte_eth_dev_count_avail() } >= 2);
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, unsafe {
        rte_eth_dev_count_total()
    });
    let ring = port_by_name("net_ring0").expect("net_ring0 port");
    let null = port_by_name("net_null0").expect("net_null0 port");
    assert_ne!(ring, null);
    assert!(port_by_name("net_nope9").is_none());
    assert_eq!(unsafe { rte_eth_dev_is_valid_port(ring) }, 1);
    assert_eq!(
        unsafe { rte_eth_dev_is_valid_port(RTE_MAX_ETHPORTS as u16) },
        0
    );
}

/// Configures 1 rx + 1 tx queue on `port` and starts it.
fn start_port(port: u16, pool: *mut rte_mempool) {
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
    unsafe {
        assert_eq!(rte_eth_dev_stop(port), 0);
        assert_eq!(rte_eth_dev_close(port), 0);
    }
}

fn xstat(port: u16, wanted: &str) -> Option<u64> {
    unsafe {
        let n = rte_eth_xstats_get_names(port, ptr::null_mut(), 0);
        assert!(n > 0, "xstats count {n}");
        let mut names = vec![rte_eth_xstat_name::default(); n as usize];
        let mut vals = vec![rte_eth_xstat::default(); n as usize];
        assert_eq!(
            rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32),
            n
        );
        assert_eq!(rte_eth_xstats_get(port, vals.as_mut_ptr(), n as u32), n);
        vals.iter().find_map(|v| {
            let name = std::ffi::CStr::from_ptr(names[v.id as usize].name.as_ptr());
            (name.to_str().ok()? == wanted).then_some(v.value)
        })
    }
}

fn check_ring_loopback(pool: *mut rte_mempool) {
    const N: usize = 16;
    let port = port_by_name("net_ring0").unwrap();
    start_port(port, pool);
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

fn check_null_port(pool: *mut rte_mempool) {
    let port = port_by_name("net_null0").unwrap();
    start_port(port, pool);
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
    let before = unsafe { rte_eth_dev_count_avail() };
    assert_eq!(unsafe { rte_vdev_init(name.as_ptr(), ptr::null()) }, 0);
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, before + 1);
    assert!(port_by_name("net_null1").is_some());
    assert_eq!(unsafe { rte_vdev_uninit(name.as_ptr()) }, 0);
    assert_eq!(unsafe { rte_eth_dev_count_avail() }, before);
    assert!(port_by_name("net_null1").is_none());
}
