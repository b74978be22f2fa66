//! A director: a compiled [`Snapshot`] and the real [`process_burst`].

use rondo::datapath::{process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict};

/// One director of the fleet.
#[derive(Debug)]
pub struct Director {
    /// `None` while the director is down.
    pub snap: Option<Snapshot>,
    pub counters: CoreCounters,
    /// Frames handed to the director this tick (Ethernet, from the router).
    pub inbox: Vec<Vec<u8>>,
}

impl Director {
    pub fn new(snap: Snapshot) -> Director {
        Director {
            snap: Some(snap),
            counters: CoreCounters::default(),
            inbox: Vec::new(),
        }
    }

    pub fn alive(&self) -> bool {
        self.snap.is_some()
    }

    /// Run the inbox through the pipeline; returns the encapsulated frames (Ethernet, outer
    /// IPv4 to the first hop). A dead director loses its inbox.
    pub fn process(&mut self) -> Vec<Vec<u8>> {
        let frames = std::mem::take(&mut self.inbox);
        let Some(snap) = &self.snap else {
            return Vec::new();
        };
        let mut bufs: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
        let mut verdicts = vec![Verdict::Forward; bufs.len()];
        process_burst(snap, &mut bufs, &mut verdicts, &mut self.counters);
        bufs.iter()
            .zip(&verdicts)
            .filter(|(_, v)| **v == Verdict::Forward)
            .map(|(b, _)| b.data().to_vec())
            .collect()
    }
}
