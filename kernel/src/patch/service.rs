//! Named patch sites: what a producer (a local core, or the host over the UART through the `live`
//! test) asks for.
//!
//! A producer names a site and hands in bytes. Unknown names are an error; a block that fails
//! the checks is refused with nothing written; one producer at a time may publish to a site (a
//! second one gets [`PatchError::Busy`] rather than wait); and a publication that times out
//! leaves the site leading to the code it led to before, and names the cores that did not
//! answer.

use super::{PlaceError, place, retire, sites};
use core::time::Duration;
use patcher::arena::SlotId;
use patcher::strategy::{IndirectSite, IpiSync, PublishError, Strategy as _};

/// Why a patch was not applied. In every case the site still leads where it led before.
pub enum PatchError {
    /// No site has this name.
    UnknownSite,
    /// Another producer is publishing to this site now.
    Busy,
    /// The block was refused before anything was written (or no slot came free).
    Place(PlaceError),
    /// The publication failed (for example an acknowledgement timed out).
    Publish(PublishError),
    /// The arena refused to retire the previous block (a bookkeeping error).
    Arena(patcher::arena::ArenaError),
}

impl defmt::Format for PatchError {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::UnknownSite => defmt::write!(f, "unknown site"),
            Self::Busy => defmt::write!(f, "another producer is publishing to this site"),
            Self::Place(e) => defmt::write!(f, "{}", e),
            Self::Publish(e) => defmt::write!(f, "publication failed: {}", defmt::Debug2Format(e)),
            Self::Arena(e) => defmt::write!(f, "arena: {}", defmt::Debug2Format(e)),
        }
    }
}

/// A site producers can name.
pub struct NamedSite {
    /// Its name.
    pub name: &'static str,
    site: &'static IndirectSite,
    /// What the site's slots are doing; the lock serializes producers.
    slots: spin::Mutex<Slots>,
}

/// The slots a named site holds.
pub struct Slots {
    /// The slot the site leads to now.
    live: Option<SlotId>,
    /// A slot some core may still run although the site no longer leads to it (a publication
    /// made the new block reachable but did not synchronize every core): retired only after the
    /// next publication that synchronizes every core.
    held_back: Option<SlotId>,
}

/// Every named site.
pub static SITES: [NamedSite; 1] = [NamedSite {
    name: "indirect",
    site: &sites::INDIRECT,
    slots: spin::Mutex::new(Slots {
        live: None,
        held_back: None,
    }),
}];

/// The site called `name`.
pub fn find(name: &str) -> Result<&'static NamedSite, PatchError> {
    SITES
        .iter()
        .find(|s| s.name == name)
        .ok_or(PatchError::UnknownSite)
}

impl NamedSite {
    /// Checks `code`, places it, publishes it with IPI synchronization (every core acknowledges
    /// within `timeout` before the pointer moves), and retires the previous block.
    ///
    /// On an error that left the new block unreachable, the new block is retired (a late
    /// acknowledgement may still be on its way, so only after a grace period) and the site is as
    /// it was. On one that made it reachable ([`PublishError::block_reachable`]) the new block is
    /// live and the previous one is held back until a later publication synchronizes everyone.
    pub fn publish(&self, code: &[u8], timeout: Duration) -> Result<(), PatchError> {
        let mut slots = self.slots.try_lock().ok_or(PatchError::Busy)?;
        let block = place(code, timeout, |_| true).map_err(PatchError::Place)?;
        if let Err(e) = IpiSync.publish(&super::env(timeout), self.site, &block) {
            if e.block_reachable() {
                if let Some(old) = slots.live.replace(block.slot())
                    && let Some(older) = slots.held_back.replace(old)
                {
                    // A second unsynchronized publication in a row: a core that missed both may
                    // still run either block. The older slot is never reused (lost to the
                    // arena) rather than reused while it may run.
                    defmt::warn!(
                        "site {=str}: slot {=usize} kept out of use for good",
                        self.name,
                        older.0
                    );
                }
            } else {
                let _ = retire(block.slot());
            }
            return Err(PatchError::Publish(e));
        }
        for old in [slots.live.replace(block.slot()), slots.held_back.take()]
            .into_iter()
            .flatten()
        {
            retire(old).map_err(PatchError::Arena)?;
        }
        Ok(())
    }

    /// Holds the site as a producer would while publishing (for tests of concurrent producers).
    pub fn hold(&self) -> Option<spin::MutexGuard<'_, Slots>> {
        self.slots.try_lock()
    }

    /// Where the site leads now.
    pub fn target(&self) -> u64 {
        self.site.target()
    }
}
