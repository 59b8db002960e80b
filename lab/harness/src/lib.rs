//! Network-namespace test harness for ferrolb — a lab and test fixture, not a product
//! component.
//!
//! * [`Lab`] owns a topology: namespaces ([`Lab::netns`]), veth pairs ([`Lab::veth`]),
//!   bridges ([`Lab::bridge`], [`Lab::connect`]) and every process started in them. Names are
//!   unique per process and run (`flb-{pid}-{sfx}`, <= 15 bytes). Dropping the lab — also
//!   while a panic unwinds — stops processes (SIGTERM, then SIGKILL), deletes root-namespace
//!   links and namespaces. [`cleanup_stale`] removes leftovers of crashed runs.
//! * [`Netns`] runs commands inside a namespace ([`Netns::exec`], [`Netns::spawn`]) and reads
//!   kernel state as data ([`Netns::routes`], [`Netns::addresses`], [`Netns::links`]).
//! * [`Gobgpd`], [`Bird`] and [`Frr`] (zebra + bgpd/bfdd) start real daemons from generated config, wait until they
//!   answer, and read sessions and RIBs as data ([`RibRoute`], [`RibPath`]).
//!
//! Everything is driven through iproute2, gobgp and birdc with deadlines: nothing here can
//! hang a test, and failures name the command, its status and its stderr or log tail.
//!
//! ```no_run
//! use std::time::Duration;
//! use ferrolb_netns::*;
//!
//! # fn main() -> ferrolb_netns::Result<()> {
//! if let Err(skip) = require_root() { eprintln!("{skip}"); return Ok(()); }
//! let lab = Lab::new()?;
//! let (r, n) = (lab.netns("router")?, lab.netns("node")?);
//! let v = lab.veth(&r, &n)?;
//! r.add_addr(&v.a, "10.0.0.1/24".parse().unwrap())?;
//! n.add_addr(&v.b, "10.0.0.2/24".parse().unwrap())?;
//! let g = Gobgpd::start(&r, &GobgpConfig::new(65000, "10.0.0.1".parse().unwrap())
//!     .neighbor(GobgpNeighbor::new("10.0.0.2".parse().unwrap(), 65001)))?;
//! let b = Bird::start(&n, &BirdConfig::new("10.0.0.2".parse().unwrap())
//!     .bgp(BirdBgp::new("router", 65001, "10.0.0.1".parse().unwrap(), 65000))
//!     .route(BirdStatic::blackhole("10.200.0.1/32".parse().unwrap())))?;
//! g.wait_established("10.0.0.2".parse().unwrap(), Duration::from_secs(30))?;
//! let route = g.wait_route("10.200.0.1/32".parse().unwrap(), Duration::from_secs(30))?;
//! assert_eq!(route.best().unwrap().as_path, vec![65001]);
//! # drop(b); Ok(()) }
//! ```

mod bird;
mod cmd;
mod daemon;
mod error;
mod frr;
mod gobgp;
mod kernel;
mod lab;
mod names;
mod netns;
mod process;
mod rib;
mod root;
mod wait;

pub use bird::{
    Bird, BirdBfdSession, BirdBgp, BirdChannel, BirdConfig, BirdKernel, BirdProtocol, BirdState,
    BirdStatic, parse_bfd_sessions as parse_bird_bfd_sessions,
    parse_protocols as parse_bird_protocols, parse_routes as parse_bird_routes,
};
pub use cmd::{CmdOutput, DEFAULT_TIMEOUT, check_binary};
pub use error::{Error, Result};
pub use frr::{
    Frr, FrrBfdPeer, FrrConfig, parse_bfd_peers as parse_frr_bfd_peers,
    parse_bgp_summary as parse_frr_bgp_summary,
};
pub use gobgp::{
    GobgpConfig, GobgpNeighbor, GobgpPeer, GobgpState, Gobgpd,
    parse_neighbors as parse_gobgp_neighbors, parse_rib as parse_gobgp_rib,
};
pub use kernel::{
    Address, Family, KernelRoute, Link, NextHop, parse_routes as parse_kernel_routes,
};
pub use lab::{KEEP_DIR_ENV, Lab, StaleReport, Veth, cleanup_stale, work_root};
pub use names::{DEFAULT_PREFIX, IFNAME_MAX, owner_pid, unique_name};
pub use netns::Netns;
pub use process::{KILL_GRACE, Proc};
pub use rib::{Community, LargeCommunity, RibPath, RibRoute, find as find_route};
pub use root::{Skip, is_root, require_root};
pub use wait::{POLL_INTERVAL, wait_for, wait_for_state};

/// Re-exported so callers can signal a [`Proc`] without adding `nix` themselves.
pub use nix::sys::signal::Signal;
