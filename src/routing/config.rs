//! `[routing]` in the gateway's TOML file: who this node is, which agencies it serves, its
//! peers, and the delivery policy (backoff, dead-letter limit, leases). Validated once at
//! start-up into [`RoutingConfig`]; [`RoutingConfig::next_hop`] is the routing table.

use crate::edxml::{StatusCode, StatusCodes};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::RoutingError;

/// `[routing]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFileConfig {
    /// This node's id (how peers name it).
    pub node_id: String,
    /// Agency ids (edXML OrganId) whose documents this node delivers to its own inbox.
    #[serde(default)]
    pub serves: Vec<String>,
    /// Address of the node-to-node mutual-TLS listener (`HOST:PORT`).
    pub listen: String,
    /// PKCS#12 file with the node certificate (serverAuth + clientAuth) and key; it also signs
    /// the status messages this node sends.
    pub identity: PathBuf,
    /// Environment variable holding the identity's password (default `SIGNGATE_KEY_PASSWORD`).
    pub password_env: Option<String>,
    /// PKCS#12 file of the key that signs this node's status messages (same password). A TLS
    /// node certificate (EKU serverAuth/clientAuth only) is not accepted as a document signer
    /// by the verifier's policy, so this is normally the node's own signing certificate;
    /// default: `identity`.
    pub signing_key: Option<PathBuf>,
    /// CA certificates (PEM files) that peer node certificates must chain to (default: the
    /// gateway's `trust`).
    #[serde(default)]
    pub peer_trust: Vec<PathBuf>,
    /// Attempts before an outbox item is dead-lettered (default 10).
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds (default 1000); doubles each attempt, with jitter.
    pub backoff_initial_ms: Option<u64>,
    /// Longest retry delay in milliseconds (default 300000).
    pub backoff_max_ms: Option<u64>,
    /// How long a claimed outbox item stays leased to one worker, in seconds (default 60).
    pub lease_secs: Option<u64>,
    /// How often the worker looks for due work, in milliseconds (default 500).
    pub poll_ms: Option<u64>,
    /// Seconds to wait for a peer to answer (default 30).
    pub peer_timeout_secs: Option<u64>,
    /// Status code sent when a recipient agrees to an update (unconfirmed in QCVN 102; default 15).
    pub update_agreed_code: Option<String>,
    /// Status code sent when a recipient refuses an update (unconfirmed; default 16).
    pub update_refused_code: Option<String>,
    /// First re-validation delay, in milliseconds, of an envelope held because the revocation
    /// status of its signer could not be obtained (default 30000); doubles, with jitter.
    pub revalidate_initial_ms: Option<u64>,
    /// Longest re-validation delay in milliseconds (default 900000).
    pub revalidate_max_ms: Option<u64>,
    /// How long such an envelope is held before it is answered 02, in seconds (default 86400).
    pub revalidate_deadline_secs: Option<u64>,
    /// Whether a recall, update or replace must name its target in its signed `MessageHeader`
    /// (`ResponseFor` with the target DocumentId), so that the agency's signature covers what
    /// it acts on (default true).
    pub signed_recall_reference: Option<bool>,
    /// This node is the directory authority (the province node): it signs its directory
    /// changes with `signing_key` and sends them to its peers (default false).
    pub directory_authority: Option<bool>,
    /// The certificate (PEM) of the directory authority's `signing_key`: signed directory
    /// updates verified against it are applied here and passed on to the peers below; none
    /// means this node takes no directory updates.
    pub directory_authority_cert: Option<PathBuf>,
    /// Attempts before a webhook delivery is given up (default 15).
    pub webhook_max_attempts: Option<u32>,
    /// First webhook retry delay in milliseconds (default 1000); doubles each attempt, with
    /// jitter.
    pub webhook_backoff_initial_ms: Option<u64>,
    /// Longest webhook retry delay in milliseconds (default 600000).
    pub webhook_backoff_max_ms: Option<u64>,
    /// Seconds to wait for a webhook receiver to answer (default 10).
    pub webhook_timeout_secs: Option<u64>,
    /// The nodes this node talks to.
    #[serde(default)]
    pub peers: Vec<PeerFileConfig>,
}

/// `[[routing.peers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFileConfig {
    /// The peer's node id.
    pub node_id: String,
    /// Its node-to-node URL (`https://HOST:PORT/`).
    pub url: String,
    /// SHA-256 of its node certificate (DER), hex; colons and case are ignored.
    pub cert_fingerprint: String,
    /// Agency ids reached through this peer (its own and those below it); `*` makes it the
    /// default route (the parent in the hierarchy).
    #[serde(default)]
    pub serves: Vec<String>,
    /// Agency ids whose whole subtree in the agency directory (the agency and every unit under
    /// it, e.g. a province and all its communes) is reached through this peer, instead of
    /// listing each OrganId in `serves`.
    #[serde(default)]
    pub serves_below: Vec<String>,
}

/// A validated peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Node id.
    pub node_id: String,
    /// Base URL, ending in `/`.
    pub url: String,
    /// Certificate fingerprint, lowercase hex without separators.
    pub fingerprint: String,
    /// Agency ids reached through it.
    pub serves: Vec<String>,
    /// Agency ids whose directory subtree is reached through it.
    pub serves_below: Vec<String>,
}

/// Delivery policy of the outbox worker.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Lease of a claimed item.
    pub lease: Duration,
    /// Poll interval.
    pub poll: Duration,
    /// Peer answer timeout.
    pub peer_timeout: Duration,
    /// First re-validation delay of an envelope held for its revocation status.
    pub revalidate_initial: Duration,
    /// Longest re-validation delay.
    pub revalidate_max: Duration,
    /// How long such an envelope is held before it is answered 02.
    pub revalidate_deadline: Duration,
}

/// Delivery policy of the webhook worker (`webhook_*` in `[routing]`).
#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    /// Attempts before a delivery is given up (`dead`, with an alert in the log).
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Receiver answer timeout (connecting and reading).
    pub timeout: Duration,
}

/// `[routing]`, validated.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// This node's id.
    pub node_id: String,
    /// Agencies delivered locally.
    pub serves: Vec<String>,
    /// mTLS listen address.
    pub listen: String,
    /// Node identity (PKCS#12).
    pub identity: PathBuf,
    /// Identity password (from the environment; never from the file; never printed).
    pub identity_password: secrecy::SecretString,
    /// Key that signs status messages (PKCS#12, same password).
    pub signing_key: PathBuf,
    /// CA certificates for peer certificates.
    pub peer_trust: Vec<PathBuf>,
    /// Peers.
    pub peers: Vec<Peer>,
    /// Retry and lease settings.
    pub delivery: DeliveryPolicy,
    /// Webhook retry settings (leases and polling as `delivery`).
    pub webhooks: WebhookPolicy,
    /// This node signs and sends its directory changes.
    pub directory_authority: bool,
    /// The directory authority's certificate (PEM file), when this node takes its updates.
    pub directory_authority_cert: Option<PathBuf>,
    /// The status code table, with this network's update agreed / refused codes (checked
    /// when the configuration is read).
    pub status_codes: StatusCodes,
    /// A recall, update or replace must name its target in its signed header.
    pub signed_recall_reference: bool,
}

/// The code table of `[routing]`: the standard's defaults unless the update codes are set.
fn status_codes(file: &RoutingFileConfig) -> Result<StatusCodes, RoutingError> {
    let defaults = StatusCodes::default();
    let agreed = file.update_agreed_code.as_deref();
    let refused = file.update_refused_code.as_deref();
    StatusCodes::new(
        agreed.unwrap_or(defaults.code(StatusCode::UpdateAgreed)),
        refused.unwrap_or(defaults.code(StatusCode::UpdateRefused)),
    )
    .map_err(|e| RoutingError::Config(format!("routing update codes: {e}")))
}

/// Where a document for one recipient goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// The recipient is served here: the local inbox.
    Local,
    /// Hand it to this peer.
    Peer(String),
}

/// Lowercase hex without `:` separators.
pub fn normalize_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl RoutingConfig {
    /// Validates `file`; `default_trust` is the gateway's trust list, `env` reads variables.
    pub fn from_file(
        file: &RoutingFileConfig,
        default_trust: &[PathBuf],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RoutingError> {
        let bad = |m: String| RoutingError::Config(m);
        if file.node_id.trim().is_empty() {
            return Err(bad("routing.node_id is empty".into()));
        }
        let var = file
            .password_env
            .clone()
            .unwrap_or_else(|| "SIGNGATE_KEY_PASSWORD".into());
        let identity_password = env(&var).ok_or_else(|| {
            bad(format!(
                "routing.identity: environment variable {var} is not set"
            ))
        })?;
        let mut peers = Vec::new();
        for p in &file.peers {
            let fingerprint = normalize_fingerprint(&p.cert_fingerprint);
            if fingerprint.len() != 64 {
                return Err(bad(format!(
                    "peer '{}': cert_fingerprint must be a SHA-256 (64 hex digits)",
                    p.node_id
                )));
            }
            if !(p.url.starts_with("https://")) {
                return Err(bad(format!("peer '{}': url must be https://", p.node_id)));
            }
            if peers.iter().any(|q: &Peer| q.node_id == p.node_id) {
                return Err(bad(format!("peer '{}' is listed twice", p.node_id)));
            }
            let url = if p.url.ends_with('/') {
                p.url.clone()
            } else {
                format!("{}/", p.url)
            };
            peers.push(Peer {
                node_id: p.node_id.clone(),
                url,
                fingerprint,
                serves: p.serves.clone(),
                serves_below: p.serves_below.clone(),
            });
        }
        let ms = |v: Option<u64>, d: u64| Duration::from_millis(v.unwrap_or(d));
        let peer_trust = if file.peer_trust.is_empty() {
            default_trust.to_vec()
        } else {
            file.peer_trust.clone()
        };
        if peer_trust.is_empty() {
            return Err(bad(
                "routing needs peer_trust (or trust) to check peer certificates".into(),
            ));
        }
        Ok(Self {
            node_id: file.node_id.clone(),
            serves: file.serves.clone(),
            listen: file.listen.clone(),
            identity: file.identity.clone(),
            identity_password: identity_password.into(),
            signing_key: file
                .signing_key
                .clone()
                .unwrap_or_else(|| file.identity.clone()),
            peer_trust,
            peers,
            delivery: DeliveryPolicy {
                max_attempts: file.max_attempts.unwrap_or(10).max(1),
                backoff_initial: ms(file.backoff_initial_ms, 1000),
                backoff_max: ms(file.backoff_max_ms, 300_000),
                lease: Duration::from_secs(file.lease_secs.unwrap_or(60).max(1)),
                poll: ms(file.poll_ms, 500),
                peer_timeout: Duration::from_secs(file.peer_timeout_secs.unwrap_or(30)),
                revalidate_initial: ms(file.revalidate_initial_ms, 30_000),
                revalidate_max: ms(file.revalidate_max_ms, 900_000),
                revalidate_deadline: Duration::from_secs(
                    file.revalidate_deadline_secs.unwrap_or(86_400),
                ),
            },
            directory_authority: file.directory_authority.unwrap_or(false),
            directory_authority_cert: file.directory_authority_cert.clone(),
            webhooks: WebhookPolicy {
                max_attempts: file.webhook_max_attempts.unwrap_or(15).max(1),
                backoff_initial: ms(file.webhook_backoff_initial_ms, 1000),
                backoff_max: ms(file.webhook_backoff_max_ms, 600_000),
                timeout: Duration::from_secs(file.webhook_timeout_secs.unwrap_or(10).max(1)),
            },
            signed_recall_reference: file.signed_recall_reference.unwrap_or(true),
            status_codes: status_codes(file)?,
        })
    }

    /// The operator statuses, for messages: `03, 04, 05, 06, 15 or 16`.
    pub fn operator_codes(&self) -> String {
        let c = &self.status_codes;
        format!(
            "03, 04, 05, 06, {} or {}",
            c.code(StatusCode::UpdateAgreed),
            c.code(StatusCode::UpdateRefused)
        )
    }

    /// The organ id this node writes in the trace headers it appends (its first served agency,
    /// else its node id).
    pub fn trace_organ(&self) -> &str {
        self.serves
            .first()
            .map(String::as_str)
            .unwrap_or(&self.node_id)
    }

    /// True when `organ` is delivered here.
    pub fn serves(&self, organ: &str) -> bool {
        self.serves.iter().any(|s| s == organ)
    }

    /// The routing table: local when served here, else the peer that lists `organ`, else the
    /// default route (`*`); `None` when no route exists.
    pub fn next_hop(&self, organ: &str) -> Option<Hop> {
        if self.serves(organ) {
            return Some(Hop::Local);
        }
        self.peers
            .iter()
            .find(|p| p.serves.iter().any(|s| s == organ))
            .or_else(|| {
                self.peers
                    .iter()
                    .find(|p| p.serves.iter().any(|s| s == "*"))
            })
            .map(|p| Hop::Peer(p.node_id.clone()))
    }

    /// The peer that lists `organ` itself in `serves` (not the default route).
    pub fn listed_peer(&self, organ: &str) -> Option<&Peer> {
        self.peers
            .iter()
            .find(|p| p.serves.iter().any(|s| s == organ))
    }

    /// The peer whose `serves_below` names `organ` (an agency whose subtree it reaches).
    pub fn subtree_peer(&self, organ: &str) -> Option<&Peer> {
        self.peers
            .iter()
            .find(|p| p.serves_below.iter().any(|s| s == organ))
    }

    /// Whether some peer reaches a directory subtree (routing then asks the directory).
    pub fn has_subtrees(&self) -> bool {
        self.peers.iter().any(|p| !p.serves_below.is_empty())
    }

    /// The default route (`*`).
    pub fn default_peer(&self) -> Option<&Peer> {
        self.peers
            .iter()
            .find(|p| p.serves.iter().any(|s| s == "*"))
    }

    /// The peer whose certificate has `fingerprint` (lowercase hex).
    pub fn peer_by_fingerprint(&self, fingerprint: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.fingerprint == fingerprint)
    }

    /// The peer named `node_id`.
    pub fn peer(&self, node_id: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.node_id == node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<RoutingConfig, RoutingError> {
        let file: RoutingFileConfig = toml::from_str(text).expect("toml");
        RoutingConfig::from_file(&file, &[PathBuf::from("root.pem")], |_| Some("pw".into()))
    }

    const FP: &str = "AA:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99";

    #[test]
    fn routes_local_then_listed_peer_then_default() {
        let text = format!(
            "node_id = \"district\"\nserves = [\"D1\"]\nlisten = \"127.0.0.1:0\"\nidentity = \"n.p12\"\n\
             [[peers]]\nnode_id = \"province\"\nurl = \"https://127.0.0.1:1\"\ncert_fingerprint = \"{FP}\"\nserves = [\"P\", \"*\"]\n\
             [[peers]]\nnode_id = \"commune\"\nurl = \"https://127.0.0.1:2/\"\ncert_fingerprint = \"{}\"\nserves = [\"C1\"]\n",
            "1".repeat(64)
        );
        let c = config(&text).expect("valid");
        assert_eq!(c.next_hop("D1"), Some(Hop::Local));
        assert_eq!(c.next_hop("C1"), Some(Hop::Peer("commune".into())));
        assert_eq!(c.next_hop("X9"), Some(Hop::Peer("province".into())));
        assert_eq!(c.peers[0].url, "https://127.0.0.1:1/");
        assert_eq!(
            c.peer_by_fingerprint(&normalize_fingerprint(FP))
                .map(|p| p.node_id.as_str()),
            Some("province")
        );
        assert_eq!(c.trace_organ(), "D1");
    }

    #[test]
    fn a_peer_may_serve_a_directory_subtree() {
        let text = format!(
            "node_id = \"p\"\nserves = [\"P\"]\nlisten = \"127.0.0.1:0\"\nidentity = \"n.p12\"\n\
             [[peers]]\nnode_id = \"d\"\nurl = \"https://127.0.0.1:1\"\ncert_fingerprint = \"{FP}\"\nserves_below = [\"D\"]\n"
        );
        let c = config(&text).expect("valid");
        assert!(c.has_subtrees());
        assert_eq!(c.subtree_peer("D").map(|p| p.node_id.as_str()), Some("d"));
        assert!(c.listed_peer("D").is_none() && c.default_peer().is_none());
    }

    #[test]
    fn no_default_route_means_unroutable_and_bad_peers_are_refused() {
        let base =
            "node_id = \"c\"\nserves = [\"C1\"]\nlisten = \"127.0.0.1:0\"\nidentity = \"n.p12\"\n";
        assert_eq!(config(base).expect("valid").next_hop("X"), None);
        let short = format!(
            "{base}[[peers]]\nnode_id = \"p\"\nurl = \"https://h/\"\ncert_fingerprint = \"abcd\"\n"
        );
        assert!(matches!(config(&short), Err(RoutingError::Config(_))));
        let plain = format!(
            "{base}[[peers]]\nnode_id = \"p\"\nurl = \"http://h/\"\ncert_fingerprint = \"{}\"\n",
            "a".repeat(64)
        );
        assert!(matches!(config(&plain), Err(RoutingError::Config(_))));
    }
}
