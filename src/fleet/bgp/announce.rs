//! What a director wants announced: one [`Announcement`] per prefix, the [`Desired`] set.
//!
//! Every value here is typed and validated on construction, so whatever renders them
//! (see [`super::bird_conf`]) never sees free text.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 prefix with its length; host bits are zero (checked on construction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prefix {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

/// Why a prefix, community or other announcement value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("prefix {0:?}: expected ADDRESS/LENGTH (e.g. 192.0.2.1/32 or 2001:db8::/64) or a bare address")]
    PrefixSyntax(String),
    #[error("prefix {text:?}: length {len} is longer than {max}, the most for this family")]
    PrefixLength { text: String, len: u32, max: u8 },
    #[error("prefix {text:?}: address has bits set past the /{len} (did you mean {network}?)")]
    HostBits {
        text: String,
        len: u8,
        network: String,
    },
    #[error("community {0:?}: expected ASN:VALUE with both in 0..=65535 (e.g. 65000:100)")]
    Community(String),
    #[error("large community {0:?}: expected GLOBAL:LOCAL1:LOCAL2, each in 0..=4294967295 (e.g. 65000:1:2)")]
    LargeCommunity(String),
}

impl Prefix {
    /// The prefix `addr/len`; refused when `len` is too long or host bits are set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, ValueError> {
        let text = format!("{addr}/{len}");
        match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(ValueError::PrefixLength {
                        text,
                        len: len.into(),
                        max: 32,
                    });
                }
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let net = Ipv4Addr::from(u32::from(a) & mask);
                if net != a {
                    return Err(ValueError::HostBits {
                        text,
                        len,
                        network: format!("{net}/{len}"),
                    });
                }
                Ok(Prefix::V4(a, len))
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(ValueError::PrefixLength {
                        text,
                        len: len.into(),
                        max: 128,
                    });
                }
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let net = Ipv6Addr::from(u128::from(a) & mask);
                if net != a {
                    return Err(ValueError::HostBits {
                        text,
                        len,
                        network: format!("{net}/{len}"),
                    });
                }
                Ok(Prefix::V6(a, len))
            }
        }
    }

    /// A host route: /32 or /128.
    pub fn host(addr: IpAddr) -> Prefix {
        match addr {
            IpAddr::V4(a) => Prefix::V4(a, 32),
            IpAddr::V6(a) => Prefix::V6(a, 128),
        }
    }

    pub fn addr(&self) -> IpAddr {
        match *self {
            Prefix::V4(a, _) => a.into(),
            Prefix::V6(a, _) => a.into(),
        }
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        match *self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => l,
        }
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self, Prefix::V4(..))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix_len())
    }
}

impl FromStr for Prefix {
    type Err = ValueError;

    /// `ADDR/LEN`, or a bare address as a host route.
    fn from_str(s: &str) -> Result<Prefix, ValueError> {
        let bad = || ValueError::PrefixSyntax(s.to_string());
        match s.split_once('/') {
            None => s.parse::<IpAddr>().map(Prefix::host).map_err(|_| bad()),
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad())?;
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) || l.len() > 3 {
                    return Err(bad());
                }
                let len: u32 = l.parse().map_err(|_| bad())?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                if len > max {
                    return Err(ValueError::PrefixLength {
                        text: s.to_string(),
                        len,
                        max: max as u8,
                    });
                }
                Prefix::new(addr, len as u8)
            }
        }
    }
}

/// A standard BGP community (RFC 1997), `ASN:VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u16, pub u16);

/// RFC 8326 GRACEFUL_SHUTDOWN: receivers lower the route's preference to 0.
pub const GRACEFUL_SHUTDOWN: Community = Community(65535, 0);

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl FromStr for Community {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Community, ValueError> {
        let bad = || ValueError::Community(s.to_string());
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        Ok(Community(num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?))
    }
}

/// A large BGP community (RFC 8092), `GLOBAL:LOCAL1:LOCAL2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

impl FromStr for LargeCommunity {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<LargeCommunity, ValueError> {
        let bad = || ValueError::LargeCommunity(s.to_string());
        let mut it = s.split(':');
        let mut next = || it.next().and_then(num).ok_or_else(bad);
        let v = LargeCommunity(next()?, next()?, next()?);
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

/// Decimal digits only (no sign, no spaces), within `T`.
fn num<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One route a director asks its BGP daemon to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub prefix: Prefix,
    /// Standard communities, in the order given (duplicates are rendered once).
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// MULTI_EXIT_DISC, when set.
    pub med: Option<u32>,
    /// Also attach [`GRACEFUL_SHUTDOWN`] (RFC 8326): announced before a planned withdrawal so
    /// routers move traffic away first.
    pub graceful_shutdown: bool,
}

impl Announcement {
    /// `prefix` with no attributes.
    pub fn new(prefix: Prefix) -> Announcement {
        Announcement {
            prefix,
            communities: Vec::new(),
            large_communities: Vec::new(),
            med: None,
            graceful_shutdown: false,
        }
    }

    /// The standard communities as announced: the configured ones, then GRACEFUL_SHUTDOWN
    /// when asked for, each once.
    pub fn effective_communities(&self) -> Vec<Community> {
        let mut out: Vec<Community> = Vec::with_capacity(self.communities.len() + 1);
        let extra = self.graceful_shutdown.then_some(GRACEFUL_SHUTDOWN);
        for c in self.communities.iter().copied().chain(extra) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

/// The routes a director wants announced, keyed (and so rendered) in prefix order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    routes: BTreeMap<Prefix, Announcement>,
}

impl Desired {
    pub fn new() -> Desired {
        Desired::default()
    }

    /// Announce `a`, replacing any announcement of the same prefix.
    pub fn insert(&mut self, a: Announcement) -> Option<Announcement> {
        self.routes.insert(a.prefix, a)
    }

    /// Withdraw `prefix`.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<Announcement> {
        self.routes.remove(prefix)
    }

    pub fn get(&self, prefix: &Prefix) -> Option<&Announcement> {
        self.routes.get(prefix)
    }

    pub fn contains(&self, prefix: &Prefix) -> bool {
        self.routes.contains_key(prefix)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// In prefix order (IPv4 before IPv6).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Announcement> {
        self.routes.values()
    }
}

impl FromIterator<Announcement> for Desired {
    fn from_iter<I: IntoIterator<Item = Announcement>>(iter: I) -> Desired {
        let mut d = Desired::new();
        for a in iter {
            d.insert(a);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_refuse() {
        assert_eq!(
            "192.0.2.1".parse::<Prefix>().unwrap(),
            Prefix::V4(Ipv4Addr::new(192, 0, 2, 1), 32)
        );
        assert_eq!(
            "2001:db8::/64".parse::<Prefix>().unwrap().to_string(),
            "2001:db8::/64"
        );
        assert_eq!(
            "10.0.0.0/0".parse::<Prefix>(),
            Err(ValueError::HostBits {
                text: "10.0.0.0/0".into(),
                len: 0,
                network: "0.0.0.0/0".into()
            })
        );
        assert!(matches!(
            "10.0.0.1/24".parse::<Prefix>(),
            Err(ValueError::HostBits { ref network, .. }) if network == "10.0.0.0/24"
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(ValueError::PrefixLength { len: 33, .. })
        ));
        assert!(matches!(
            "::/129".parse::<Prefix>(),
            Err(ValueError::PrefixLength { len: 129, .. })
        ));
        for bad in [
            "",
            "/",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "x/8",
            "10.0.0.0/99999999999",
            "\"; }",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad:?}");
        }
        // IPv4 sorts before IPv6, then by address and length.
        let mut v: Vec<Prefix> = ["::1", "10.0.0.2", "10.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        assert_eq!(v[0].to_string(), "10.0.0.1/32");
        assert_eq!(v[2].to_string(), "::1/128");
    }

    #[test]
    fn communities_parse_and_refuse() {
        assert_eq!("65000:100".parse::<Community>(), Ok(Community(65000, 100)));
        assert_eq!(
            "4200000000:1:2".parse::<LargeCommunity>(),
            Ok(LargeCommunity(4_200_000_000, 1, 2))
        );
        for bad in ["65536:1", "1", "1:", ":1", "-1:2", "1:2:3", " 1:2", "1:2\n"] {
            assert!(bad.parse::<Community>().is_err(), "{bad:?}");
        }
        for bad in ["1:2", "1:2:3:4", "4294967296:0:0", "a:b:c", "1::2"] {
            assert!(bad.parse::<LargeCommunity>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn graceful_shutdown_adds_the_rfc_8326_community_once() {
        let mut a = Announcement::new("192.0.2.1".parse().unwrap());
        a.communities = vec![Community(65000, 1), Community(65000, 1)];
        assert_eq!(a.effective_communities(), vec![Community(65000, 1)]);
        a.graceful_shutdown = true;
        assert_eq!(
            a.effective_communities(),
            vec![Community(65000, 1), Community(65535, 0)]
        );
        a.communities.push(GRACEFUL_SHUTDOWN);
        assert_eq!(a.effective_communities().len(), 2);
    }

    #[test]
    fn desired_set_replaces_and_withdraws_by_prefix() {
        let p: Prefix = "192.0.2.1".parse().unwrap();
        let mut d: Desired = [Announcement::new(p)].into_iter().collect();
        let mut b = Announcement::new(p);
        b.med = Some(5);
        assert!(d.insert(b).is_some());
        assert_eq!(d.len(), 1);
        assert_eq!(d.get(&p).unwrap().med, Some(5));
        assert!(d.remove(&p).is_some());
        assert!(d.is_empty());
    }
}
