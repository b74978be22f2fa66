//! Batched datagram receive (`recvmmsg(2)`): one syscall fills up to a batch of datagrams,
//! each with its source address and control messages, into buffers allocated once.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;

/// Room for any socket address (`sockaddr_storage` is 128 bytes).
#[repr(C, align(8))]
struct NameBuf([u8; 128]);

/// Room for the control messages of one datagram.
#[repr(C, align(8))]
struct CtrlBuf([u8; 256]);

/// What the kernel reported for one datagram of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Meta {
    len: usize,
    truncated: bool,
    name_len: usize,
    ctrl_len: usize,
}

/// One received datagram: payload, source address bytes (`sockaddr_*`), control message
/// bytes (`cmsghdr`s), and whether the payload was cut to the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub payload: &'a [u8],
    pub truncated: bool,
    pub name: &'a [u8],
    pub control: &'a [u8],
}

/// Buffers for one `recvmmsg` batch, allocated once.
pub struct MsgBatch {
    bufs: Vec<u8>,
    buf_size: usize,
    names: Vec<NameBuf>,
    ctrl: Vec<CtrlBuf>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    meta: Vec<Meta>,
    count: usize,
}

// SAFETY: the raw pointers in `iov` and `hdrs` only ever point into this batch's own
// vectors (set right before each recvmmsg, never dereferenced by us), so moving the batch
// to another thread moves everything they point to with it.
unsafe impl Send for MsgBatch {}

impl MsgBatch {
    /// `n` datagrams (at least 1) of up to `buf_size` bytes each.
    pub fn new(n: usize, buf_size: usize) -> MsgBatch {
        let n = n.max(1);
        MsgBatch {
            bufs: vec![0; n * buf_size],
            buf_size,
            names: (0..n).map(|_| NameBuf([0; 128])).collect(),
            ctrl: (0..n).map(|_| CtrlBuf([0; 256])).collect(),
            iov: (0..n)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            // SAFETY: mmsghdr is plain data (integers and raw pointers); all-zero is a valid
            // value, and every pointer is set before the kernel sees it.
            hdrs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            meta: vec![Meta::default(); n],
            count: 0,
        }
    }

    /// Datagrams the batch holds at most.
    pub fn capacity(&self) -> usize {
        self.names.len()
    }

    /// Receive up to a batch of datagrams from `fd` without blocking; returns how many
    /// (0 when none are queued).
    pub fn recv(&mut self, fd: &impl AsRawFd) -> io::Result<usize> {
        self.count = 0;
        let n = self.names.len();
        let base = self.bufs.as_mut_ptr();
        for i in 0..n {
            self.iov[i] = libc::iovec {
                // SAFETY: `i * buf_size + buf_size <= bufs.len()` (bufs holds n buffers), so
                // the offset stays inside the allocation.
                iov_base: unsafe { base.add(i * self.buf_size) }.cast(),
                iov_len: self.buf_size,
            };
        }
        let iov = self.iov.as_mut_ptr();
        for i in 0..n {
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = self.names[i].0.as_mut_ptr().cast();
            h.msg_hdr.msg_namelen = size_of::<NameBuf>() as libc::socklen_t;
            // SAFETY: `i < n == iov.len()`: the pointer stays inside `self.iov`.
            h.msg_hdr.msg_iov = unsafe { iov.add(i) };
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.ctrl[i].0.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = size_of::<CtrlBuf>() as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        let r = loop {
            // SAFETY: `hdrs` holds `n` initialised mmsghdrs whose name, iovec, buffer and
            // control pointers all point into this batch's vectors, which are exclusively
            // borrowed and neither moved nor resized until the call returns; each length
            // passed is the size of the memory pointed to, so the kernel writes in bounds.
            let r = unsafe {
                libc::recvmmsg(
                    fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        };
        for i in 0..r.min(n) {
            let h = &self.hdrs[i];
            // `msg_controllen` is a size_t on glibc and a socklen_t on musl.
            #[allow(clippy::unnecessary_cast)]
            let ctrl_len = (h.msg_hdr.msg_controllen as usize).min(size_of::<CtrlBuf>());
            self.meta[i] = Meta {
                len: (h.msg_len as usize).min(self.buf_size),
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                name_len: (h.msg_hdr.msg_namelen as usize).min(size_of::<NameBuf>()),
                ctrl_len,
            };
        }
        self.count = r.min(n);
        Ok(self.count)
    }

    /// Datagrams of the last receive.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i` of the last receive.
    pub fn get(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.count {
            return None;
        }
        let m = self.meta.get(i)?;
        let start = i * self.buf_size;
        Some(Received {
            payload: self.bufs.get(start..start + m.len)?,
            truncated: m.truncated,
            name: self.names.get(i)?.0.get(..m.name_len)?,
            control: self.ctrl.get(i)?.0.get(..m.ctrl_len)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn receives_a_batch_and_marks_truncation() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut b = MsgBatch::new(4, 16);
        assert_eq!(b.capacity(), 4);
        assert_eq!(b.recv(&rx).unwrap(), 0, "nothing queued: no wait");
        assert!(b.is_empty() && b.get(0).is_none());
        for i in 0..6u8 {
            tx.send_to(&[i; 10], to).unwrap();
        }
        tx.send_to(&[9; 40], to).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < 7 && std::time::Instant::now() < deadline {
            let n = b.recv(&rx).unwrap();
            assert!(n <= 4);
            assert_eq!(b.len(), n);
            for i in 0..n {
                let d = b.get(i).unwrap();
                assert_eq!(d.name.len(), size_of::<libc::sockaddr_in>());
                got.push((d.payload.to_vec(), d.truncated));
            }
            assert!(b.get(n).is_none());
        }
        assert_eq!(got.len(), 7);
        for (i, (p, t)) in got.iter().take(6).enumerate() {
            assert_eq!((p.as_slice(), *t), (&[i as u8; 10][..], false));
        }
        assert_eq!((got[6].0.as_slice(), got[6].1), (&[9u8; 16][..], true));
    }
}
