//! User-agent families: a closed set, so label values never come from the client verbatim.

/// The family a `User-Agent` header belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Agent {
    Browser,
    Curl,
    Bot,
    LoadTest,
    Other,
}

/// Substrings (lower-case) naming HTTP benchmarking tools.
const LOAD_TESTERS: [&str; 9] = [
    "wrk",
    "hey/",
    "apachebench",
    "k6/",
    "locust",
    "vegeta",
    "oha/",
    "bombardier",
    "siege",
];
/// Substrings (lower-case) naming crawlers and monitoring robots.
const BOTS: [&str; 5] = ["bot", "crawler", "spider", "prometheus", "blackbox"];

impl Agent {
    pub const COUNT: usize = 5;
    pub const ALL: [Agent; Agent::COUNT] = [
        Agent::Browser,
        Agent::Curl,
        Agent::Bot,
        Agent::LoadTest,
        Agent::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Agent::Browser => "browser",
            Agent::Curl => "curl",
            Agent::Bot => "bot",
            Agent::LoadTest => "load_test",
            Agent::Other => "other",
        }
    }

    /// Load testers first (some claim to be browsers), then curl, bots, then browsers, which
    /// all announce themselves as `Mozilla/`.
    pub fn classify(user_agent: Option<&str>) -> Agent {
        let Some(ua) = user_agent.map(str::to_ascii_lowercase) else {
            return Agent::Other;
        };
        if LOAD_TESTERS.iter().any(|t| ua.contains(t)) {
            Agent::LoadTest
        } else if ua.starts_with("curl/") {
            Agent::Curl
        } else if BOTS.iter().any(|b| ua.contains(b)) {
            Agent::Bot
        } else if ua.starts_with("mozilla/") || ua.starts_with("opera/") {
            Agent::Browser
        } else {
            Agent::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Agent;

    #[test]
    fn user_agents_fall_into_a_closed_set_of_families() {
        let cases = [
            (
                Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
                Agent::Browser,
            ),
            (Some("curl/8.5.0"), Agent::Curl),
            (Some("Mozilla/5.0 (compatible; Googlebot/2.1)"), Agent::Bot),
            (Some("Prometheus/2.42.0"), Agent::Bot),
            (Some("wrk/4.2"), Agent::LoadTest),
            (Some("python-requests/2.31"), Agent::Other),
            (None, Agent::Other),
        ];
        for (ua, family) in cases {
            assert_eq!(Agent::classify(ua), family, "{ua:?}");
        }
    }
}
