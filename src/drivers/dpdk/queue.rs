//! RX and TX queues of a started DPDK port: one pair per worker, plus an extra TX queue for
//! the exception path when the device has one.
#![allow(unsafe_code)]

use std::sync::Arc;

use dpdk_sys::rte_mbuf;

use super::mbuf::Mbuf;
use super::port::PortHandle;
use crate::drivers::{Burst, RxQueue, TxQueue};

/// Receive side of one queue. Holds the port open while it lives.
pub struct DpdkRx {
    pub(crate) port: Arc<PortHandle>,
    pub(crate) queue: u16,
    pub(crate) registered: bool,
}

/// Transmit side of one queue.
pub struct DpdkTx {
    pub(crate) port: Arc<PortHandle>,
    pub(crate) queue: u16,
}

impl RxQueue for DpdkRx {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<Mbuf>) -> usize {
        let (port, queue) = (self.port.id, self.queue);
        // SAFETY: the port is started and stays so while `self.port` is held, and this
        // queue is polled only by the thread that owns this DpdkRx. Mbuf is
        // repr(transparent) over NonNull<rte_mbuf>, so the free slots are an array of mbuf
        // pointers; rx_burst writes at most `slots.len()` (at most BURST_MAX, a u16) of
        // them, each a valid mbuf (never null) that it hands over to us, and returns how
        // many it wrote.
        unsafe {
            out.fill_raw(|slots| {
                usize::from(dpdk_sys::rte_eth_rx_burst(
                    port,
                    queue,
                    slots.as_mut_ptr().cast::<*mut rte_mbuf>(),
                    slots.len() as u16,
                ))
            })
        }
    }

    fn attach_thread(&mut self) -> Result<(), String> {
        super::eal::register_thread()?;
        self.registered = true;
        Ok(())
    }

    fn detach_thread(&mut self) {
        if std::mem::take(&mut self.registered) {
            super::eal::unregister_thread();
        }
    }
}

impl TxQueue for DpdkTx {
    type Buf = Mbuf;

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Burst<Mbuf>) -> usize {
        let s = pkts.as_mut_slice();
        if s.is_empty() {
            return 0;
        }
        let len = s.len().min(u16::MAX as usize) as u16;
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the slice is an
        // array of `len` valid mbuf pointers; the port is started and this queue is used
        // only by the thread owning this DpdkTx. The driver takes the first `n`.
        let n = unsafe {
            dpdk_sys::rte_eth_tx_burst(
                self.port.id,
                self.queue,
                s.as_mut_ptr().cast::<*mut rte_mbuf>(),
                len,
            )
        } as usize;
        // Ownership of the first n passed to the driver: forget them without freeing.
        for m in pkts.drain_front(n) {
            let _ = m.into_raw();
        }
        n
    }
}
