//! Allocation errors. Their text goes verbatim into Kubernetes Events, so every message says
//! what was asked, what is in the way and why.

use std::net::IpAddr;

use thiserror::Error;

use super::scope::ScopeReason;
use super::types::{Family, Port};

/// Why an IP held by another Service cannot be shared with the requesting one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConflictReason {
    #[error("this service does not set allow-shared-ip")]
    RequesterNotSharing,
    #[error("it does not set allow-shared-ip")]
    HolderNotSharing,
    #[error("different sharing key (\"{requested}\" vs \"{held}\")")]
    DifferentSharingKey { requested: String, held: String },
    #[error("port conflict on {port}")]
    PortConflict { port: Port },
    #[error(
        "externalTrafficPolicy/pod selector mismatch (sharing needs both Cluster, or both Local with identical selectors)"
    )]
    BackendMismatch,
}

/// Coarse class of an [`AllocError`], for the controller's choice of Event and retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The Service's own request is malformed (`LoadBalancerFailed`); retry only when it changes.
    InvalidRequest,
    /// The request is well-formed but the config cannot satisfy it (unknown pool, address or
    /// family outside the pools); retry on config change.
    NotInConfig,
    /// Another Service holds the address; retry when Services are released.
    Conflict,
    /// No free address; retry when addresses are freed or pools grow.
    Exhausted,
}

/// Why `assign` or `restore` failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllocError {
    #[error("requested IP {ip} is not in any configured address pool")]
    NotInAnyPool { ip: IpAddr },
    #[error(
        "requested IP {ip} ends in .0 or .255, which address pool {pool} avoids (avoid-buggy-ips)"
    )]
    AvoidedBuggyIp { ip: IpAddr, pool: String },
    #[error("requested IP {ip} is not in the requested address pool {pool}")]
    NotInRequestedPool { ip: IpAddr, pool: String },
    #[error(
        "requested IPs {first} and {second} are in different address pools ({first_pool}, {second_pool}); both families must come from one pool"
    )]
    DifferentPools {
        first: IpAddr,
        second: IpAddr,
        first_pool: String,
        second_pool: String,
    },
    #[error("IP {ip} is already in use by service {holder} and cannot be shared: {reason}")]
    InUse {
        ip: IpAddr,
        holder: String,
        reason: ConflictReason,
    },
    #[error("unknown address pool {pool}")]
    UnknownPool { pool: String },
    #[error("address pool {pool} is not available to this service: {reason}")]
    PoolNotForService { pool: String, reason: ScopeReason },
    #[error(
        "requested IP {ip} is in address pool {pool}, which is not available to this service: {reason}"
    )]
    RequestedIpNotForService {
        ip: IpAddr,
        pool: String,
        reason: ScopeReason,
    },
    #[error("no available IPs in pool {pool}")]
    PoolExhausted { pool: String },
    #[error("no available IPs")]
    NoAvailableIps,
    #[error("address pool {pool} has no {family} addresses")]
    FamilyNotInPool { pool: String, family: Family },
    #[error("no address pool available for automatic assignment has {family} addresses")]
    FamilyNotAvailable { family: Family },
    #[error("RequireDualStack: no address pool has both IPv4 and IPv6 addresses")]
    NoDualStackPool,
    #[error("requested IPs {first} and {second} are both {family}; give at most one per family")]
    SameFamilyTwice {
        first: IpAddr,
        second: IpAddr,
        family: Family,
    },
    #[error("more than two IPs requested ({count}); give at most one per family")]
    TooManyIps { count: usize },
    #[error("requested IP {ip} is {family} but the service is {policy}")]
    FamilyMismatch {
        ip: IpAddr,
        family: Family,
        policy: String,
    },
    #[error(
        "the service is RequireDualStack but requests only {ip}; request one IP per family or none"
    )]
    DualStackNeedsBoth { ip: IpAddr },
    #[error("nothing to restore: the service status has no IPs")]
    NothingToRestore,
}

impl AllocError {
    /// The class of this error (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            AllocError::SameFamilyTwice { .. }
            | AllocError::TooManyIps { .. }
            | AllocError::FamilyMismatch { .. }
            | AllocError::DualStackNeedsBoth { .. }
            | AllocError::NothingToRestore => ErrorKind::InvalidRequest,
            AllocError::NotInAnyPool { .. }
            | AllocError::AvoidedBuggyIp { .. }
            | AllocError::NotInRequestedPool { .. }
            | AllocError::DifferentPools { .. }
            | AllocError::UnknownPool { .. }
            | AllocError::PoolNotForService { .. }
            | AllocError::RequestedIpNotForService { .. }
            | AllocError::FamilyNotInPool { .. }
            | AllocError::FamilyNotAvailable { .. }
            | AllocError::NoDualStackPool => ErrorKind::NotInConfig,
            AllocError::InUse { .. } => ErrorKind::Conflict,
            AllocError::PoolExhausted { .. } | AllocError::NoAvailableIps => ErrorKind::Exhausted,
        }
    }
}
