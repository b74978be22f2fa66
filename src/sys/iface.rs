//! Network interfaces: names as the kernel checks them, `struct ifreq`, the interface
//! ioctls (flags, MTU, MAC address), name-to-index lookups and the host's IPv4 addresses
//! with their netmasks (`getifaddrs`).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::socket::{cvt, new_socket};

/// `IFNAMSIZ`: an interface name has at most `IFNAMSIZ - 1` bytes.
pub const IFNAMSIZ: usize = 16;

/// Check an interface name as the kernel would (`dev_valid_name`) so that a bad name is
/// reported as such rather than as a failed syscall.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty interface name".into());
    }
    if name.len() >= IFNAMSIZ {
        return Err(format!(
            "interface name is {} bytes long, Linux allows at most {}",
            name.len(),
            IFNAMSIZ - 1
        ));
    }
    if name == "." || name == ".." {
        return Err("not a valid interface name".into());
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return Err("interface names cannot contain '/', ':', NUL or whitespace".into());
    }
    Ok(())
}

/// The index of interface `name` (`if_nametoindex`); `ENODEV` when there is none.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `cname` is a valid NUL-terminated string living across the call.
    let i = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// Every IPv4 address of the host's interfaces (this network namespace) with its prefix
/// length, from `getifaddrs(3)`.
pub fn ipv4_addresses() -> io::Result<Vec<(Ipv4Addr, u8)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success the list is freed below.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` points to a sockaddr of at least its family's size.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: both are AF_INET sockaddrs (the netmask has the address's family), so
        // they are `sockaddr_in`; read unaligned to make no assumption on alignment.
        let (addr, mask) = unsafe {
            (
                std::ptr::read_unaligned(ifa.ifa_addr as *const libc::sockaddr_in),
                std::ptr::read_unaligned(ifa.ifa_netmask as *const libc::sockaddr_in),
            )
        };
        let a = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
        let bits = u32::from_be(mask.sin_addr.s_addr).leading_ones() as u8;
        out.push((a, bits));
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// `struct ifreq` as the kernel sees it: a name and a 24-byte union (on 64-bit targets;
/// 16 on 32-bit, so this is large enough everywhere). Fields are parsed from bytes, so no
/// union is read.
#[repr(C, align(8))]
pub struct IfReq {
    pub name: [u8; IFNAMSIZ],
    pub data: [u8; 24],
}

impl IfReq {
    /// A request for interface `name` (cut to 15 bytes; callers check names first).
    pub fn new(name: &str) -> IfReq {
        let mut r = IfReq {
            name: [0; IFNAMSIZ],
            data: [0; 24],
        };
        for (d, s) in r.name.iter_mut().zip(name.bytes().take(IFNAMSIZ - 1)) {
            *d = s;
        }
        r
    }
    /// The name the kernel wrote back (e.g. after TUNSETIFF).
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
    /// `ifr_flags` (and the other `short` members of the union).
    pub fn short(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }
    pub fn set_short(&mut self, v: i16) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }
    /// `ifr_mtu`, `ifr_ifindex` (the `int` members of the union).
    pub fn int(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }
    pub fn set_int(&mut self, v: i32) {
        self.data[..4].copy_from_slice(&v.to_ne_bytes());
    }
    /// `ifr_hwaddr`: (`sa_family`, the first six bytes of `sa_data`).
    pub fn hwaddr(&self) -> (u16, [u8; 6]) {
        let family = u16::from_ne_bytes([self.data[0], self.data[1]]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.data[2..8]);
        (family, mac)
    }
    /// Set `ifr_hwaddr` to an Ethernet address (for SIOCSIFHWADDR).
    pub fn set_hwaddr(&mut self, mac: [u8; 6]) {
        self.data[..2].copy_from_slice(&(libc::ARPHRD_ETHER).to_ne_bytes());
        self.data[2..8].copy_from_slice(&mac);
    }
}

/// `ioctl(fd, req, &mut ifreq)`, for the interface requests that take a `struct ifreq`
/// (`SIOCGIF*`, `SIOCSIFFLAGS`, `SIOCSIFMTU`, `SIOCSIFHWADDR`, `TUNSETIFF`).
pub fn ioctl_ifreq(fd: RawFd, req: libc::Ioctl, ifr: &mut IfReq) -> io::Result<()> {
    // SAFETY: `ifr` is an exclusively borrowed, initialised buffer at least as large and as
    // aligned as `struct ifreq` that outlives the call; the interface requests used with it
    // (SIOCGIF*/SIOCSIFFLAGS/SIOCSIFMTU/SIOCSIFHWADDR/TUNSETIFF) read and write at most
    // `sizeof(struct ifreq)` bytes.
    cvt(unsafe { libc::ioctl(fd, req, ifr as *mut IfReq) }).map(|_| ())
}

/// A socket to send interface ioctls through (any socket does).
#[derive(Debug)]
pub struct IfCtl {
    fd: OwnedFd,
}

impl IfCtl {
    /// A control socket: `AF_INET` datagram, else `AF_UNIX` (a kernel without IPv4).
    pub fn open() -> io::Result<IfCtl> {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
            .or_else(|_| new_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0))?;
        Ok(IfCtl { fd })
    }

    /// Send the ioctls through `fd`, a socket the caller opened anyway.
    pub fn with_socket(fd: OwnedFd) -> IfCtl {
        IfCtl { fd }
    }

    fn ioctl(&self, req: libc::Ioctl, ifr: &mut IfReq) -> io::Result<()> {
        ioctl_ifreq(self.fd.as_raw_fd(), req, ifr)
    }

    /// `IFF_*` flags of interface `name` (`SIOCGIFFLAGS`).
    pub fn flags(&self, name: &str) -> io::Result<i16> {
        let mut ifr = IfReq::new(name);
        self.ioctl(libc::SIOCGIFFLAGS, &mut ifr)?;
        Ok(ifr.short())
    }

    /// Set the `IFF_*` flags of interface `name` (`SIOCSIFFLAGS`); `flags(name) |
    /// IFF_UP` brings it up.
    pub fn set_flags(&self, name: &str, flags: i16) -> io::Result<()> {
        let mut ifr = IfReq::new(name);
        ifr.set_short(flags);
        self.ioctl(libc::SIOCSIFFLAGS, &mut ifr)
    }

    /// The MTU of interface `name` (`SIOCGIFMTU`).
    pub fn mtu(&self, name: &str) -> io::Result<i32> {
        let mut ifr = IfReq::new(name);
        self.ioctl(libc::SIOCGIFMTU, &mut ifr)?;
        Ok(ifr.int())
    }

    /// Set the MTU of interface `name` (`SIOCSIFMTU`).
    pub fn set_mtu(&self, name: &str, mtu: i32) -> io::Result<()> {
        let mut ifr = IfReq::new(name);
        ifr.set_int(mtu);
        self.ioctl(libc::SIOCSIFMTU, &mut ifr)
    }

    /// The link type (`ARPHRD_*`) and hardware address of interface `name`
    /// (`SIOCGIFHWADDR`).
    pub fn hwaddr(&self, name: &str) -> io::Result<(u16, [u8; 6])> {
        let mut ifr = IfReq::new(name);
        self.ioctl(libc::SIOCGIFHWADDR, &mut ifr)?;
        Ok(ifr.hwaddr())
    }

    /// Give Ethernet interface `name` the address `mac` (`SIOCSIFHWADDR`).
    pub fn set_hwaddr(&self, name: &str, mac: [u8; 6]) -> io::Result<()> {
        let mut ifr = IfReq::new(name);
        ifr.set_hwaddr(mac);
        self.ioctl(libc::SIOCSIFHWADDR, &mut ifr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        assert!(check_ifname("a234567890123456")
            .unwrap_err()
            .contains("at most 15"));
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
        assert!(check_ifname("..").is_err());
    }

    #[test]
    fn ifreq_round_trips() {
        let mut r = IfReq::new("a234567890123456789");
        assert_eq!(r.name(), "a23456789012345");
        r.set_short(0x1043);
        assert_eq!(r.short(), 0x1043);
        r.data[2..8].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        assert_eq!(r.hwaddr().1, [2, 0, 0, 0, 0, 1]);
        r.set_hwaddr([2, 9, 8, 7, 6, 5]);
        assert_eq!(r.hwaddr(), (libc::ARPHRD_ETHER, [2, 9, 8, 7, 6, 5]));
        r.set_int(9000);
        assert_eq!(r.int(), 9000);
        assert!(std::mem::size_of::<IfReq>() >= 40);
    }

    #[test]
    fn ipv4_addresses_list_loopback_with_its_prefix() {
        let all = ipv4_addresses().unwrap();
        assert!(
            all.iter()
                .any(|&(a, bits)| a.is_loopback() && (8..=32).contains(&bits)),
            "{all:?}"
        );
    }

    /// The loopback interface exists in every network namespace, is up, and has index 1.
    #[test]
    fn loopback_is_read_through_the_ioctls() {
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert_eq!(
            ifindex("rdo-none0").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
        let ctl = IfCtl::open().unwrap();
        assert_ne!(i32::from(ctl.flags("lo").unwrap()) & libc::IFF_LOOPBACK, 0);
        assert!(ctl.mtu("lo").unwrap() > 0);
        assert_eq!(ctl.hwaddr("lo").unwrap().0, libc::ARPHRD_LOOPBACK);
        assert_eq!(
            ctl.flags("rdo-none0").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }
}
