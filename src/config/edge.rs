//! The abuse limits at the edge, as the server reads them: per-address token buckets for
//! account creation and contact uploads, the cap on password hashes running at once, and the
//! proxies whose `X-Forwarded-For` is believed (`crate::limits`, `crate::http::client`).

use ipnet::IpNet;

use super::Settings;

/// A token bucket: `burst` at once, refilled at `per_hour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_hour: u32,
    pub burst: u32,
}

/// See the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    /// `POST /v1/accounts` per client address.
    pub account_creations: Rate,
    /// `POST /v1/me/contacts` per client address.
    pub contact_uploads: Rate,
    /// Password hashes (creation, login) running at once; past it 503.
    pub password_hash_concurrency: usize,
    /// Proxies whose `X-Forwarded-For` names the client; empty: the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
}

impl EdgeLimits {
    pub(super) fn from_settings(s: &Settings) -> EdgeLimits {
        EdgeLimits {
            account_creations: Rate {
                per_hour: s.account_creations_per_hour,
                burst: s.account_creation_burst,
            },
            contact_uploads: Rate {
                per_hour: s.contact_uploads_per_hour,
                burst: s.contact_upload_burst,
            },
            // Twice the cores: a hash is pure CPU, so more at once only adds memory (19 MiB
            // each at the default cost) and latency; a few spare slots cover the moments a
            // hash waits for its thread.
            password_hash_concurrency: s
                .password_hash_concurrency
                .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, |n| n.get())),
            trusted_proxies: s.trusted_proxies.iter().map(IpNet::trunc).collect(),
        }
    }

    /// The rules the settings must follow; the message names the setting.
    pub(super) fn validate(&self) -> Result<(), String> {
        let rates = [
            ("account_creation", self.account_creations),
            ("contact_upload", self.contact_uploads),
        ];
        for (name, rate) in rates {
            if rate.per_hour == 0 || rate.burst == 0 {
                return Err(format!(
                    "{name}s_per_hour and {name}_burst must be at least 1"
                ));
            }
        }
        if self.password_hash_concurrency == 0 {
            return Err("password_hash_concurrency must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Config};
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("chorus").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_cli(&cli).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_limit_and_trust_nobody() {
        let edge = Config::default().edge;
        assert_eq!(
            edge.account_creations,
            Rate {
                per_hour: 30,
                burst: 10
            }
        );
        assert_eq!(
            edge.contact_uploads,
            Rate {
                per_hour: 60,
                burst: 20
            }
        );
        assert!(edge.password_hash_concurrency >= 2);
        assert!(edge.trusted_proxies.is_empty());
    }

    #[test]
    fn flags_set_each_limit_and_the_proxies() {
        let cfg = config(&[
            "--account-creations-per-hour",
            "5",
            "--account-creation-burst",
            "2",
            "--contact-uploads-per-hour",
            "7",
            "--contact-upload-burst",
            "3",
            "--password-hash-concurrency",
            "1",
            "--trusted-proxies",
            "10.1.2.3/8,2001:db8::/32",
        ])
        .expect("config");
        let edge = cfg.edge;
        assert_eq!(
            edge.account_creations,
            Rate {
                per_hour: 5,
                burst: 2
            }
        );
        assert_eq!(
            edge.contact_uploads,
            Rate {
                per_hour: 7,
                burst: 3
            }
        );
        assert_eq!(edge.password_hash_concurrency, 1);
        let nets: Vec<String> = edge.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "2001:db8::/32"], "host bits dropped");
    }

    #[test]
    fn proxies_come_from_the_file_too() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("chorus.toml");
        std::fs::write(&path, "trusted_proxies = [\"192.0.2.0/24\"]\n").expect("write");
        let path = path.to_string_lossy().into_owned();
        let cfg = config(&["--config", &path]).expect("config");
        let nets: Vec<String> = cfg
            .edge
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["192.0.2.0/24"]);
    }

    #[test]
    fn bad_values_are_refused_naming_the_setting() {
        let err = config(&["--trusted-proxies", "10.0.0.1"]).expect_err("not a CIDR");
        assert!(err.contains("--trusted-proxies"), "{err}");
        for (flag, name) in [
            ("--account-creations-per-hour", "account_creations_per_hour"),
            ("--account-creation-burst", "account_creation_burst"),
            ("--contact-uploads-per-hour", "contact_uploads_per_hour"),
            ("--contact-upload-burst", "contact_upload_burst"),
            ("--password-hash-concurrency", "password_hash_concurrency"),
        ] {
            let err = config(&[flag, "0"]).expect_err("zero");
            assert!(err.contains(name), "{flag}: {err}");
        }
    }
}
