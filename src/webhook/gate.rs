//! The listener's waiting room: a connection that has not yet sent a complete request head
//! holds a pending place until it has, so many per source and in all. Such a connection needs
//! no secret, so without a cap a single address could hold every slot with idle or trickling
//! connections. Requests whose head has arrived are not counted here.
//!
//! A source's first places are held for the whole header timeout. Beyond them, a connection is
//! on probation: it must complete its head within `PROBATION` or be closed. A source may hold
//! three quarters of all places, so the last quarter is always there for other sources; a
//! connection beyond its source's share, or beyond the total, is closed at once. Probation is
//! what keeps one busy address (the TLS proxy every request comes through) from being punished:
//! a burst of real requests is accepted before its heads arrive, so at that instant it looks
//! like a crowd of idle connections, but its heads come within milliseconds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Pending connections one source may hold for the whole header timeout.
pub(crate) const MAX_PENDING_PER_ADDR: u32 = 16;

/// How long a connection over its source's share may take to complete its head. A real sender
/// writes its head right after connecting; this covers a retransmitted packet.
pub(crate) const PROBATION: Duration = Duration::from_secs(1);

/// Why a connection was refused a pending place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Its source already holds its share of the places.
    Source(IpAddr),
    /// Every pending place is held.
    Total,
}

/// How many pending places a source and all sources together may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// A source's places held for the whole header timeout; the rest are on probation.
    pub(crate) held_per_source: usize,
    /// Every source together.
    pub(crate) total: usize,
}

impl Caps {
    /// The places one source may hold, either kind.
    pub(crate) fn per_source(&self) -> usize {
        (self.total - self.total / 4).max(1)
    }
}

pub(crate) struct Gate {
    caps: Caps,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_source: HashMap<IpAddr, Counts>,
    total: usize,
}

#[derive(Default)]
struct Counts {
    held: usize,
    probation: usize,
}

/// A pending place, given back when dropped.
pub(crate) struct Pending {
    gate: Arc<Gate>,
    source: IpAddr,
    probation: bool,
}

impl Pending {
    /// The head must be complete within `PROBATION`, else the connection is closed.
    pub(crate) fn on_probation(&self) -> bool {
        self.probation
    }
}

impl Gate {
    pub(crate) fn new(caps: Caps) -> Arc<Gate> {
        Arc::new(Gate {
            caps: Caps {
                held_per_source: caps.held_per_source.max(1),
                total: caps.total.max(1),
            },
            held: Mutex::default(),
        })
    }

    /// A pending place for a connection from `peer`, if its source and the whole house have
    /// room.
    pub(crate) fn enter(self: &Arc<Self>, peer: IpAddr) -> Result<Pending, Full> {
        let source = source(peer);
        let mut held = self.held();
        if held.total >= self.caps.total {
            return Err(Full::Total);
        }
        let n = held.by_source.entry(source).or_default();
        if n.held + n.probation >= self.caps.per_source() {
            return Err(Full::Source(source));
        }
        let probation = n.held >= self.caps.held_per_source;
        match probation {
            true => n.probation += 1,
            false => n.held += 1,
        }
        held.total += 1;
        Ok(Pending {
            gate: Arc::clone(self),
            source,
            probation,
        })
    }

    /// The counts stay right even if a holder panicked: each change is one step.
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let held = self.held();
        (held.by_source.len(), held.total)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut held = self.gate.held();
        held.total -= 1;
        if let Some(n) = held.by_source.get_mut(&self.source) {
            match self.probation {
                true => n.probation -= 1,
                false => n.held -= 1,
            }
            if n.held == 0 && n.probation == 0 {
                // The map holds only the sources with a connection waiting, so it cannot grow
                // with every address ever seen.
                held.by_source.remove(&self.source);
            }
        }
    }
}

/// Whom a peer address is counted as: an IPv4 client of a dual-stack socket as its IPv4
/// address, an IPv6 one by its /64, since one host commonly owns a whole /64.
fn source(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn gate(held_per_source: usize, total: usize) -> Arc<Gate> {
        Gate::new(Caps {
            held_per_source,
            total,
        })
    }

    #[test]
    fn a_source_holds_some_then_gets_probation_up_to_its_share() {
        let gate = gate(2, 8);
        let a: Vec<Pending> = (0..6)
            .map(|_| gate.enter(ip("10.0.0.1")).unwrap())
            .collect();
        let probation: Vec<bool> = a.iter().map(Pending::on_probation).collect();
        assert_eq!(probation, [false, false, true, true, true, true]);
        assert_eq!(
            gate.enter(ip("10.0.0.1")).err(),
            Some(Full::Source(ip("10.0.0.1"))),
            "three quarters of 8"
        );
        let b: Vec<Pending> = (0..2)
            .map(|_| gate.enter(ip("10.0.0.2")).unwrap())
            .collect();
        assert!(
            b.iter().all(|p| !p.on_probation()),
            "the other source's own"
        );
        assert_eq!(gate.enter(ip("10.0.0.3")).err(), Some(Full::Total));
        drop(a);
        assert!(gate.enter(ip("10.0.0.1")).is_ok(), "places are given back");
        drop(b);
        assert_eq!(gate.counts(), (0, 0), "no source is kept once it has left");
    }

    #[test]
    fn a_v6_host_is_its_64_and_a_mapped_v4_is_v4() {
        assert_eq!(source(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(source(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        // A share of three: three quarters of 4.
        let gate = gate(1, 4);
        let _held: Vec<Pending> = (1..=3)
            .map(|i| gate.enter(ip(&format!("2001:db8:1:2::{i}"))).unwrap())
            .collect();
        assert!(gate.enter(ip("2001:db8:1:2::ffff")).is_err());
        assert!(gate.enter(ip("2001:db8:1:3::1")).is_ok());
    }
}
