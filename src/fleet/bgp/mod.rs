//! VIPs announced and withdrawn over BGP through a real daemon (BIRD 2), never a BGP
//! speaker of Rondo's own.
//!
//! - [`announce`]: the data model ([`Announcement`], the [`Desired`] set).
//! - [`bird_conf`]: renders the set as a BIRD config include, written atomically.
//! - [`bird_ctl`]: the control-socket client (configure, show protocols, show bfd sessions).
//! - [`lifeline`]: the TAP whose death takes the routes away (see its docs for the design).
//! - [`settings`]: the `[bgp]` table, validated.
//! - [`Bird`]: the handle that ties them together. The caller decides what is announced
//!   (link, workers, tables) and calls [`Bird::apply`] with the whole desired set each time
//!   it changes; [`Bird::status`] is what a console or metrics report.
//!
//! The daemon is driven off the hot path: one short-lived control connection per call.

pub mod announce;
pub mod bird_conf;
pub mod bird_ctl;
pub mod decide;
pub mod lifeline;
pub mod settings;
pub mod shared;

use std::path::PathBuf;

pub use announce::{Announcement, Community, Desired, LargeCommunity, Prefix, GRACEFUL_SHUTDOWN};
pub use bird_ctl::{BfdSession, BfdState, BgpState, BirdCtl, CtlError, ProtocolStatus};
pub use lifeline::{Lifeline, LifelineError};
pub use settings::{BgpRunSettings, BgpSettings, SettingsError};

use crate::sys::file::{read_bounded, ReadError, CONFIG_LIMIT};

/// What went wrong driving the daemon.
#[derive(Debug, thiserror::Error)]
pub enum BgpError {
    #[error(transparent)]
    Ctl(#[from] CtlError),
    #[error(transparent)]
    Lifeline(#[from] LifelineError),
    #[error(transparent)]
    Apply(Box<ApplyError>),
}

/// A failed [`Bird::apply`] (or the empty apply of [`Bird::new`]).
#[derive(Debug, thiserror::Error)]
#[error("BGP include {}: {step} failed: {source}; {restored}", .include.display())]
pub struct ApplyError {
    pub include: PathBuf,
    pub step: &'static str,
    #[source]
    pub source: ApplyCause,
    /// What became of the previous include.
    pub restored: Restored,
}

impl BgpError {
    /// The control-socket error behind this one, if any (to tell a refused config from a
    /// daemon that is not running).
    pub fn ctl(&self) -> Option<&CtlError> {
        match self {
            BgpError::Ctl(e) => Some(e),
            BgpError::Apply(a) => match &a.source {
                ApplyCause::Ctl(e) => Some(e),
                ApplyCause::Write(_) => None,
            },
            _ => None,
        }
    }
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyCause {
    #[error(transparent)]
    Write(#[from] ReadError),
    #[error(transparent)]
    Ctl(#[from] CtlError),
}

/// What became of the previous include after a failed apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Restored {
    #[error("the previous include was restored (BIRD keeps what it announced before)")]
    Previous,
    #[error("the include did not exist before and was removed")]
    Removed,
    #[error("the file was not changed (BIRD keeps what it announced before)")]
    Untouched,
    #[error(
        "restoring the previous include FAILED ({0}): fix the file before BIRD's next reconfigure"
    )]
    Failed(String),
}

/// What [`Bird::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// False when the set rendered the same include as the last apply: nothing was sent.
    pub changed: bool,
    pub v4_routes: usize,
    pub v6_routes: usize,
    /// BIRD's final answer to `configure` (e.g. `Reconfigured`), empty when unchanged.
    pub reply: String,
}

/// The daemon's view: each configured BGP session, and the BFD sessions.
#[derive(Debug)]
pub struct BgpStatus {
    /// One per [`BgpSettings::sessions`], in order; an error for a session BIRD does not
    /// know or could not report.
    pub sessions: Vec<(String, Result<ProtocolStatus, CtlError>)>,
    /// Empty when BIRD runs no BFD protocol.
    pub bfd: Vec<BfdSession>,
    /// When the daemon started (`show status`): a change means bird was restarted.
    pub booted: String,
}

/// A BIRD 2 daemon driven through its control socket and a generated include; owns the
/// lifeline.
#[derive(Debug)]
pub struct Bird {
    settings: BgpSettings,
    lifeline: Lifeline,
    /// The include as last applied by this handle.
    applied: Vec<u8>,
}

impl Bird {
    /// Check the daemon answers, withdraw whatever a previous run left in the include (an
    /// empty set is applied), then create the lifeline. Errors: the daemon is missing or not
    /// running, refuses the config, or the lifeline cannot be created.
    pub fn new(settings: BgpSettings) -> Result<Bird, BgpError> {
        let mut ctl = BirdCtl::connect(&settings.socket, settings.timeout)?;
        tracing::info!(socket = %settings.socket.display(), daemon = %ctl.greeting, "BGP: BIRD answers");
        let empty = bird_conf::render(&Desired::new(), &settings.names).into_bytes();
        let previous = read_bounded(&settings.include, CONFIG_LIMIT, "a BIRD include").ok();
        Bird::install(&settings, &mut ctl, &empty, previous.as_deref())?;
        let lifeline = Lifeline::open(&settings.names.lifeline)?;
        tracing::info!(lifeline = lifeline.name(), include = %settings.include.display(), "BGP: lifeline up, nothing announced yet");
        Ok(Bird {
            settings,
            lifeline,
            applied: empty,
        })
    }

    pub fn settings(&self) -> &BgpSettings {
        &self.settings
    }

    pub fn lifeline(&self) -> &Lifeline {
        &self.lifeline
    }

    /// Announce exactly `desired` (withdrawing everything else): render, write, `configure
    /// check`, `configure`. On any failure the previous include is put back, so BIRD never
    /// runs a half state, and the error is returned for the caller to log and count.
    /// Rendering the same include as last time sends nothing.
    pub fn apply(&mut self, desired: &Desired) -> Result<Applied, BgpError> {
        let bytes = bird_conf::render(desired, &self.settings.names).into_bytes();
        let v4_routes = desired.iter().filter(|a| a.prefix.is_ipv4()).count();
        let v6_routes = desired.len() - v4_routes;
        if bytes == self.applied {
            return Ok(Applied {
                changed: false,
                v4_routes,
                v6_routes,
                reply: String::new(),
            });
        }
        let mut ctl = BirdCtl::connect(&self.settings.socket, self.settings.timeout)?;
        let previous = std::mem::take(&mut self.applied);
        match Bird::install(&self.settings, &mut ctl, &bytes, Some(&previous)) {
            Ok(reply) => {
                self.applied = bytes;
                tracing::info!(v4_routes, v6_routes, %reply, "BGP: BIRD reconfigured");
                Ok(Applied {
                    changed: true,
                    v4_routes,
                    v6_routes,
                    reply,
                })
            }
            Err(e) => {
                self.applied = previous;
                Err(e)
            }
        }
    }

    /// Forget what was applied: the next [`Bird::apply`] writes and reconfigures even if the
    /// set is unchanged. For when the daemon may have lost it (it was unreachable, or it
    /// restarted and read whatever include was on disk).
    pub fn invalidate(&mut self) {
        self.applied.clear();
    }

    /// Write `bytes` as the include and have BIRD check then load it; on failure put
    /// `previous` back (or remove the file when there was none).
    fn install(
        settings: &BgpSettings,
        ctl: &mut BirdCtl,
        bytes: &[u8],
        previous: Option<&[u8]>,
    ) -> Result<String, BgpError> {
        let include = &settings.include;
        let fail = |step, source: ApplyCause, wrote: bool| {
            let restored = if !wrote {
                Restored::Untouched
            } else {
                match previous {
                    Some(p) => match bird_conf::write_atomic(include, p) {
                        Ok(()) => Restored::Previous,
                        Err(e) => Restored::Failed(e.to_string()),
                    },
                    None => match std::fs::remove_file(include) {
                        Ok(()) => Restored::Removed,
                        Err(e) => Restored::Failed(format!("removing it: {e}")),
                    },
                }
            };
            BgpError::Apply(Box::new(ApplyError {
                include: include.clone(),
                step,
                source,
                restored,
            }))
        };
        bird_conf::write_atomic(include, bytes)
            .map_err(|e| fail("writing the include", e.into(), false))?;
        ctl.configure_check()
            .map_err(|e| fail("configure check", e.into(), true))?;
        let r = ctl
            .configure()
            .map_err(|e| fail("configure", e.into(), true))?;
        Ok(r.message().to_string())
    }

    /// The configured BGP sessions' state and the BFD sessions, as BIRD reports them.
    pub fn status(&self) -> Result<BgpStatus, BgpError> {
        let mut ctl = BirdCtl::connect(&self.settings.socket, self.settings.timeout)?;
        let booted = ctl.show_status()?;
        let mut sessions = Vec::with_capacity(self.settings.sessions.len());
        for s in &self.settings.sessions {
            let r = ctl.show_protocol(s.as_str());
            if let Err(e) = &r {
                // A timeout or a closed connection leaves the connection unusable.
                if !matches!(e, CtlError::Command { .. } | CtlError::Unexpected { .. }) {
                    return Err(r.unwrap_err().into());
                }
            }
            sessions.push((s.as_str().to_string(), r));
        }
        let bfd = match ctl.show_bfd_sessions() {
            Ok(b) => b,
            // No BFD protocol configured.
            Err(CtlError::Command { code: 8003, .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(BgpStatus {
            sessions,
            bfd,
            booted,
        })
    }
}
