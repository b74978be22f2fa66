//! The end-to-end topology in network namespaces, shared by tests/e2e.rs (TCP) and
//! tests/e2e_quic.rs (QUIC): clients, a router, director hosts and backends, each test with
//! its own namespace prefix and 10.x address ranges ([`Plan`]) so that both can run on one
//! machine at once.
//!
//! ```text
//!  clients ns C              router ns R (ip_forward, L4 multipath hash)     director ns DK
//!  c0 10.N.0.2 ------------- rc 10.N.0.1                                     dK 10.M.K+1.2
//!  10.N+1.0.1.. on lo        rdK 10.M.K+1.1 (static neighbour = dK's MAC) -- (af_packet for
//!                            rbr 10.P.0.1 bridge                               `rondo run`)
//!                              |-- bK (backend ns BK) 10.P.0.11+K, the VIPs on lo,
//!                                  default route via 10.P.0.1
//! ```
//! N = [`Plan::client_net`], M = [`Plan::director_net`], P = [`Plan::backend_net`]. The
//! route to the VIPs (BGP or static, ECMP over the directors) is the test's business.

use std::net::Ipv4Addr;

use super::netns::sysctl;
use super::veth::Netns;

/// Names, sizes and address ranges of one test's topology.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Namespace names `<prefix><tag><pid>`: tags `C` (clients), `R` (router), `D`, `E`, ...
    /// (director hosts), `0`, `1`, ... (backends).
    pub prefix: &'static str,
    pub directors: usize,
    pub backends: usize,
    /// The clients' link is 10.N.0.0/24; their source addresses 10.N+1.0.1.. on lo.
    pub client_net: u8,
    /// How many client source addresses.
    pub client_addrs: u8,
    /// Director host K's link: 10.M.K+1.0/24.
    pub director_net: u8,
    /// The backends' bridge: 10.P.0.0/24.
    pub backend_net: u8,
    /// Addresses every backend holds on lo.
    pub vips: &'static [Ipv4Addr],
}

impl Plan {
    pub fn netns(&self, tag: char) -> Result<Netns, String> {
        Netns::prefixed(self.prefix, tag)
    }

    pub fn backend_ip(&self, b: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.backend_net, 0, 11 + b as u8)
    }

    /// The router's address on the backends' bridge (their default route).
    pub fn backend_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.backend_net, 0, 1)
    }

    /// The backends' network, as `rondo redirect`'s `backends` allowlist.
    pub fn backends_cidr(&self) -> String {
        format!("10.{}.0.0/24", self.backend_net)
    }

    /// Every director host's link, as `rondo redirect`'s `directors` allowlist.
    pub fn directors_cidr(&self) -> String {
        format!("10.{}.0.0/16", self.director_net)
    }

    pub fn director_ip(&self, d: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.director_net, d as u8 + 1, 2)
    }

    /// The router's address on director host `d`'s link.
    pub fn router_side(&self, d: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.director_net, d as u8 + 1, 1)
    }

    pub fn director_mac(&self, d: usize) -> String {
        format!("02:e2:00:00:{:02x}:02", d + 1)
    }

    /// The router's MAC on director host `d`'s link (the director's outbound gateway).
    pub fn router_mac(&self, d: usize) -> String {
        format!("02:e2:00:00:{:02x}:01", d + 1)
    }

    /// Client source address `i` (modulo [`Plan::client_addrs`]).
    pub fn client_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            10,
            self.client_net + 1,
            0,
            1 + (i % self.client_addrs as usize) as u8,
        )
    }
}

/// The namespaces, built and wired; deleted on drop (fields drop in order: clients,
/// router, directors, backends).
pub struct Topology {
    pub c: Netns,
    pub r: Netns,
    pub d: Vec<Netns>,
    pub b: Vec<Netns>,
}

impl Topology {
    /// Build it around the clients' namespace `c` (made first by the caller, so that a
    /// machine where no namespace can be made is told apart from a failure later).
    pub fn build_in(plan: &Plan, c: Netns) -> Result<Topology, String> {
        let r = plan.netns('R')?;
        let d = (0..plan.directors)
            .map(|i| plan.netns(char::from(b'D' + i as u8)))
            .collect::<Result<Vec<_>, _>>()?;
        let b = (0..plan.backends)
            .map(|i| plan.netns(char::from(b'0' + i as u8)))
            .collect::<Result<Vec<_>, _>>()?;
        for kv in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.fib_multipath_hash_policy=1",
        ] {
            sysctl(&r, kv);
        }
        for ns in b.iter().chain([&c]) {
            sysctl(ns, "net.ipv4.conf.all.rp_filter=0");
            sysctl(ns, "net.ipv4.conf.default.rp_filter=0");
        }
        for ns in &d {
            sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1");
            sysctl(ns, "net.ipv6.conf.default.disable_ipv6=1");
        }
        for ns in [&c, &r].into_iter().chain(&d).chain(&b) {
            ns.ip(&["link", "set", "lo", "up"])?;
        }
        // Clients.
        let n = plan.client_net;
        r.ip(&[
            "link", "add", "rc", "type", "veth", "peer", "name", "c0", "netns", &c.name,
        ])?;
        r.ip(&["addr", "add", &format!("10.{n}.0.1/24"), "dev", "rc"])?;
        r.ip(&["link", "set", "rc", "up"])?;
        c.ip(&["addr", "add", &format!("10.{n}.0.2/24"), "dev", "c0"])?;
        c.ip(&["link", "set", "c0", "up"])?;
        c.ip(&["route", "add", "default", "via", &format!("10.{n}.0.1")])?;
        for i in 0..plan.client_addrs as usize {
            c.ip(&[
                "addr",
                "add",
                &format!("{}/32", plan.client_addr(i)),
                "dev",
                "lo",
            ])?;
        }
        r.ip(&[
            "route",
            "add",
            &format!("10.{}.0.0/24", n + 1),
            "via",
            &format!("10.{n}.0.2"),
        ])?;
        // Directors: a veth each, addressed on both ends (a BGP session may run over it),
        // the router's neighbour entry for the director's address.
        for (i, ns) in d.iter().enumerate() {
            let (rd, dd) = (format!("rd{i}"), format!("d{i}"));
            r.ip(&[
                "link",
                "add",
                &rd,
                "address",
                &plan.router_mac(i),
                "type",
                "veth",
                "peer",
                "name",
                &dd,
                "address",
                &plan.director_mac(i),
                "netns",
                &ns.name,
            ])?;
            r.ip(&[
                "addr",
                "add",
                &format!("{}/24", plan.router_side(i)),
                "dev",
                &rd,
            ])?;
            r.ip(&["link", "set", &rd, "up"])?;
            r.ip(&[
                "neigh",
                "replace",
                &plan.director_ip(i).to_string(),
                "lladdr",
                &plan.director_mac(i),
                "dev",
                &rd,
                "nud",
                "permanent",
            ])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/24", plan.director_ip(i)),
                "dev",
                &dd,
            ])?;
            ns.ip(&["link", "set", &dd, "up"])?;
        }
        // Backends on a bridge in the router.
        let gw = plan.backend_gateway().to_string();
        r.ip(&["link", "add", "rbr", "type", "bridge"])?;
        r.ip(&["addr", "add", &format!("{gw}/24"), "dev", "rbr"])?;
        r.ip(&["link", "set", "rbr", "up"])?;
        for (i, ns) in b.iter().enumerate() {
            let (rb, bb) = (format!("rb{i}"), format!("b{i}"));
            r.ip(&[
                "link", "add", &rb, "type", "veth", "peer", "name", &bb, "netns", &ns.name,
            ])?;
            r.ip(&["link", "set", &rb, "master", "rbr", "up"])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/24", plan.backend_ip(i)),
                "dev",
                &bb,
            ])?;
            ns.ip(&["link", "set", &bb, "up"])?;
            ns.ip(&["route", "add", "default", "via", &gw])?;
            for vip in plan.vips {
                ns.ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
            }
        }
        Ok(Topology { c, r, d, b })
    }
}
