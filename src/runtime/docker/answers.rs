//! What Docker's answers say: an inspect response as the container's
//! status, start time, IP address and health; a list entry as a
//! [`Container`]; and a bollard error as a [`RuntimeError`] naming the
//! container, with whether another try may help.

use super::*;

/// Whether a failed call may succeed when made again: the server's own
/// error (5xx), a timeout, or a connection lost or refused. A 4xx (no such
/// container, a bad request) will not.
pub fn transient(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { status_code, .. } => *status_code >= 500,
        E::RequestTimeoutError
        | E::IOError { .. }
        | E::HyperResponseError { .. }
        | E::HyperLegacyError { .. } => true,
        _ => false,
    }
}

/// Maps a bollard error to ours, naming the container.
pub(super) fn classify(c: &Container, op: &'static str, e: bollard::errors::Error) -> RuntimeError {
    use bollard::errors::Error as E;
    if fenced::is_fenced(&e) {
        return RuntimeError::Fenced {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
        };
    }
    match e {
        E::DockerResponseServerError {
            status_code: 404, ..
        } => RuntimeError::NotFound {
            host: c.host.clone(),
            container: c.name.clone(),
        },
        E::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Api {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            reason: format!("{status_code}: {message}"),
        },
        E::RequestTimeoutError => RuntimeError::Timeout {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            secs: 0.0,
        },
        E::IOError { .. } | E::HyperResponseError { .. } | E::HyperLegacyError { .. } => {
            RuntimeError::Unreachable {
                host: c.host.clone(),
                reason: format!("{op} {}: {}", c.name, with_causes(&e)),
            }
        }
        other => RuntimeError::Api {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            reason: other.to_string(),
        },
    }
}

pub(super) fn status_of(r: &ContainerInspectResponse) -> ContainerStatus {
    let st = r.state.as_ref();
    let state = match st {
        Some(s) if s.restarting == Some(true) => ContainerState::Restarting,
        Some(s) => s
            .status
            .map(|x| ContainerState::parse(x.as_ref()))
            .unwrap_or_default(),
        None => ContainerState::default(),
    };
    ContainerStatus {
        state,
        started_at: st.and_then(|s| s.started_at.clone()).unwrap_or_default(),
        address: container_ip(r).and_then(|ip| ip.parse().ok()),
    }
}

pub(super) fn container_ip(r: &ContainerInspectResponse) -> Option<String> {
    let nets = r.network_settings.as_ref()?.networks.as_ref()?;
    let mut names: Vec<&String> = nets.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| nets[n].ip_address.clone())
        .find(|ip| !ip.is_empty())
}

/// An RFC 3339 time as Docker writes it (`2026-11-30T21:10:43.123456789Z`,
/// or with an offset) in nanoseconds since the Unix epoch; `None` before
/// the epoch (a container never started: `0001-01-01T00:00:00Z`) or when
/// it cannot be read.
pub fn rfc3339_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        let kept = &digits[..digits.len().min(9)];
        frac_ns = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    if secs < 0 {
        return None;
    }
    Some(secs as u64 * 1_000_000_000 + frac_ns as u64)
}

/// Whether the container's image defines a HEALTHCHECK (its config's
/// test, or a health state Docker keeps).
pub(super) fn has_healthcheck(r: &ContainerInspectResponse) -> bool {
    let configured = r
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|t| t != "NONE");
    let reported = r
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .is_some_and(|s| !matches!(s, HealthStatusEnum::NONE | HealthStatusEnum::EMPTY));
    configured || reported
}

/// Health as Docker reports it: the container's HEALTHCHECK status, or
/// "running" when the image defines none.
pub(super) fn docker_health(r: &ContainerInspectResponse) -> Health {
    let Some(st) = r.state.as_ref() else {
        return Health::Starting;
    };
    if st.restarting == Some(true) {
        return Health::Starting;
    }
    if st.running != Some(true) {
        return Health::Down;
    }
    match st.health.as_ref().and_then(|h| h.status) {
        None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) => Health::Healthy,
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
    }
}

/// A container as a list call reports it, or `None` without an id.
pub fn summary_to_container(
    spec: &HostSpec,
    s: bollard::models::ContainerSummary,
) -> Option<Container> {
    let id = s.id.clone()?;
    let name = s
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| id.chars().take(12).collect());
    let labels: Labels = s.labels.unwrap_or_default().into_iter().collect();
    let dns_name = labels.get("rekindle.dns_name").map(str::to_string);
    let mut ports: Vec<u16> = s
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| p.private_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    Some(Container {
        id,
        name,
        host: spec.name.clone(),
        labels,
        dns_name,
        ports,
        state: s
            .state
            .map(|st| ContainerState::parse(st.as_ref()))
            .unwrap_or_default(),
        primary: false,
    })
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ns;

    #[test]
    fn reads_docker_times() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ns("2026-11-30T21:10:43.123456789Z"),
            Some(1_796_073_043_123_456_789)
        );
        // An offset, fewer digits, a leap day.
        assert_eq!(
            rfc3339_ns("2000-02-29T01:02:03.5+02:00"),
            Some(951_778_923_500_000_000)
        );
        // More than nanoseconds: the rest is dropped.
        assert_eq!(
            rfc3339_ns("1970-01-01T00:00:01.0000000019Z"),
            Some(1_000_000_001)
        );
        // Never started, or not a time.
        assert_eq!(rfc3339_ns("0001-01-01T00:00:00Z"), None);
        for bad in [
            "",
            "2026-11-30",
            "2026-13-01T00:00:00Z",
            "2026-11-30T21:10:43.Z",
            "2026-11-30T21:10:43",
            "2026-11-30T21:10:43+0200",
            "2026-11-30T2x:10:43Z",
            "２026-11-30T21:10:43Z",
        ] {
            assert_eq!(rfc3339_ns(bad), None, "{bad:?}");
        }
    }
}
