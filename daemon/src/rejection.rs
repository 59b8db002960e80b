//! What a failed API request means for the caller: gone, retry soon, retry later, or a
//! rejection that only a change (of the object, of RBAC, of the server) can cure — with the
//! code, reason and message the server gave, for the log line.

use std::time::Duration;

/// The kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 404: the object is gone; nothing to retry.
    Gone,
    /// 409: someone else changed it; retry soon.
    Conflict,
    /// 429, 5xx, timeouts, connection errors: the server is busy or away; retry with back-off.
    Unavailable,
    /// 400/422 (strict field validation, invalid or immutable fields): the server will say
    /// the same until something changes; retry slowly.
    Invalid,
    /// 401/403: credentials or RBAC; retry slowly (an operator may fix them).
    Forbidden,
    /// Anything else from the server.
    Other,
}

/// A failed request, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What it means.
    pub kind: Kind,
    /// HTTP status (0 when the request never got an answer).
    pub code: u16,
    /// The Status `reason` (`Invalid`, `Forbidden`, ...) or the client error's kind.
    pub reason: String,
    /// The server's message, or the client error.
    pub message: String,
}

impl Failure {
    /// Classifies `e`.
    pub fn of(e: &kube::Error) -> Failure {
        match e {
            kube::Error::Api(s) => {
                let kind = match s.code {
                    404 | 410 => Kind::Gone,
                    409 => Kind::Conflict,
                    429 | 500..=599 => Kind::Unavailable,
                    400 | 422 => Kind::Invalid,
                    401 | 403 => Kind::Forbidden,
                    _ => Kind::Other,
                };
                Failure {
                    kind,
                    code: s.code,
                    reason: s.reason.clone(),
                    message: s.message.clone(),
                }
            }
            other => Failure {
                kind: Kind::Unavailable,
                code: 0,
                reason: "ClientError".into(),
                message: other.to_string(),
            },
        }
    }

    /// The delay before attempt `attempt + 1` (`attempt` >= 1), or `None` for [`Kind::Gone`].
    /// Conflicts retry from 100 ms, an unavailable server from 500 ms (both to 30 s); a
    /// rejection from 5 s to 5 min, so a broken object or missing permission costs one
    /// request per few minutes, not a loop.
    pub fn retry_after(&self, attempt: u32) -> Option<Duration> {
        let (first, max) = match self.kind {
            Kind::Gone => return None,
            Kind::Conflict => (Duration::from_millis(100), Duration::from_secs(30)),
            Kind::Unavailable | Kind::Other => {
                (Duration::from_millis(500), Duration::from_secs(30))
            }
            Kind::Invalid | Kind::Forbidden => (Duration::from_secs(5), Duration::from_secs(300)),
        };
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        Some(first.saturating_mul(factor).min(max))
    }

    /// Whether retrying the same request can succeed without anything changing.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, Kind::Conflict | Kind::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("boom", reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn classifies_and_backs_off() {
        let f = Failure::of(&api(422, "Invalid"));
        assert_eq!(
            (f.kind, f.code, f.reason.as_str()),
            (Kind::Invalid, 422, "Invalid")
        );
        assert_eq!(f.message, "boom");
        assert!(!f.is_transient());
        assert_eq!(f.retry_after(1), Some(Duration::from_secs(5)));
        assert_eq!(f.retry_after(20), Some(Duration::from_secs(300)));
        assert_eq!(Failure::of(&api(404, "NotFound")).retry_after(1), None);
        let c = Failure::of(&api(409, "Conflict"));
        assert!(c.is_transient());
        assert_eq!(c.retry_after(1), Some(Duration::from_millis(100)));
        assert_eq!(c.retry_after(3), Some(Duration::from_millis(400)));
        assert_eq!(
            Failure::of(&api(503, "ServiceUnavailable")).kind,
            Kind::Unavailable
        );
        assert_eq!(Failure::of(&api(403, "Forbidden")).kind, Kind::Forbidden);
    }
}
