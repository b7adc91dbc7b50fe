//! A demo routing network on loopback (`signgate route demo`): a province node and two commune
//! nodes of the 2025 two-level structure, or (`--structure 2024`) the three-level chain
//! province → district → commune for documents from before 1 July 2025.
//!
//! [`DemoNetwork::prepare`] writes, once, into one folder: a fresh demo PKI (the generator of
//! `signgate pki demo`, with its publication point's URL) plus a node certificate and an agency
//! signing certificate per node; each node's `signgate.toml` (a complete node configuration);
//! the agency directory (units from `data/vn-admin`, **test** agency identifiers `DEMO.*`)
//! imported into each node's database; one client per agency with its token; an example
//! document metadata file; and `env`, a shell file with the URLs, tokens and configurations.
//! A second run over the same folder reuses it. The adapter then starts the nodes with
//! [`super::Gateway::start`] and the publication point with [`DemoNetwork::publication`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::admin::NewClient;
use super::{GatewayConfig, GatewayError, Services};
use crate::directory::Structure;
use crate::pki::demo::{DemoOptions, LeafProfile, LeafSpec};

/// The unit files and test identifiers of the demo (Hà Nội; `DEMO.*` are not real codes).
const UNITS_2025: &str = include_str!("../../examples/route-demo/units-2025.csv");
const CODES_2025: &str = include_str!("../../examples/route-demo/codes-2025.csv");
const UNITS_2024: &str = include_str!("../../examples/route-demo/units-2024.csv");
const CODES_2024: &str = include_str!("../../examples/route-demo/codes-2024.csv");
const DOCUMENT: &str = include_str!("../../examples/route-demo/document.toml");
const LICENCE: &str =
    include_str!("../../data/vn-admin/LICENSE-thanglequoc-vietnamese-provinces-database.txt");

/// Password of every demo key (CONTRACTS §2).
pub const PASSWORD: &str = "demo";

/// One node of the demo network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoNode {
    /// `province`, `commune-a`, `commune-b` (2025) or `province`, `district`, `commune` (2024).
    pub name: String,
    /// The agency it serves (test identifier).
    pub organ_id: String,
    /// The agency's name.
    pub organ_name: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// API port.
    pub api_port: u16,
    /// Node-to-node (mutual TLS) port.
    pub peer_port: u16,
    /// Bearer token of the agency's client (test data).
    pub token: String,
}

impl DemoNode {
    /// The API's base URL, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The prefix of its variables in `env`: `PROVINCE`, `COMMUNE_A`, …
    fn var(&self) -> String {
        self.name.to_uppercase().replace('-', "_")
    }
}

/// The demo network written in a folder (`network.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoNetwork {
    /// The folder.
    pub dir: PathBuf,
    /// `2025` (two levels) or `2024` (three levels).
    pub structure: String,
    /// Port of the PKI's publication point (CRLs, CA certificates, OCSP).
    pub publication_port: u16,
    /// The nodes, the province first.
    pub nodes: Vec<DemoNode>,
}

/// (name, GSO code, level) of the demo's units.
fn units(structure: Structure) -> &'static [(&'static str, &'static str)] {
    match structure {
        Structure::S2025 => &[
            ("province", "01"),
            ("commune-a", "00004"),
            ("commune-b", "00008"),
        ],
        Structure::S2024 => &[
            ("province", "01"),
            ("district", "001"),
            ("commune", "00001"),
        ],
    }
}

fn io(what: &Path, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Io(format!("{}: {e}", what.display()))
}

fn free_port() -> Result<u16, GatewayError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| GatewayError::Listen {
            addr: "127.0.0.1:0".into(),
            reason: e.to_string(),
        })
}

/// The environment the demo's configurations read (the demo password unless set).
fn demo_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if var == "SIGNGATE_KEY_PASSWORD" => Some(PASSWORD.into()),
        Err(_) => None,
    }
}

impl DemoNetwork {
    /// The network already written in `dir`, if any.
    pub fn load(dir: &Path) -> Result<Option<Self>, GatewayError> {
        let path = dir.join("network.json");
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).map_err(|e| io(&path, e))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// The network in `dir`: the one already there (of the same structure), else a new one
    /// on ports from `port_base` (the publication point, then API and peer port of each
    /// node in turn; 0: free ports).
    pub async fn prepare(
        dir: &Path,
        structure: Structure,
        port_base: u16,
    ) -> Result<Self, GatewayError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let dir = std::path::absolute(dir).map_err(|e| io(dir, e))?;
        if let Some(net) = Self::load(&dir)? {
            if net.structure != structure.as_str() {
                return Err(GatewayError::Invalid(format!(
                    "{} holds a {} demo network; use another --dir",
                    dir.display(),
                    net.structure
                )));
            }
            return Ok(net);
        }
        let mut next = port_base;
        let mut port = || -> Result<u16, GatewayError> {
            if port_base == 0 {
                return free_port();
            }
            let p = next;
            next = next.saturating_add(1);
            Ok(p)
        };
        let publication_port = port()?;
        let (units_csv, codes_csv) = match structure {
            Structure::S2025 => (UNITS_2025, CODES_2025),
            Structure::S2024 => (UNITS_2024, CODES_2024),
        };
        let codes = codes_by_gso(codes_csv);
        let names = names_by_gso(units_csv);
        let pki_dir = dir.join("pki");
        let base_url = format!("http://127.0.0.1:{publication_port}/");
        let mut pki = crate::pki::demo::generate(&pki_dir, &DemoOptions::with_base_url(&base_url))
            .map_err(crate::Error::from)?;
        let mut nodes = Vec::new();
        let mut fingerprints = Vec::new();
        for (name, gso) in units(structure) {
            let organ_id = codes
                .iter()
                .find(|(g, _)| g == gso)
                .map(|(_, id)| id.clone())
                .ok_or_else(|| GatewayError::Config(format!("no demo code for unit {gso}")))?;
            let organ_name = names
                .iter()
                .find(|(g, _)| g == gso)
                .map(|(_, n)| n.clone())
                .unwrap_or_else(|| organ_id.clone());
            let node_cert = pki
                .issue_leaf(
                    &LeafSpec::new(&format!("signgate demo node {name} ({organ_id})"))
                        .with_profile(LeafProfile::Node),
                    &pki_dir.join(format!("node-{name}.p12")),
                )
                .map_err(crate::Error::from)?;
            let der = node_cert
                .certificate
                .to_der()
                .map_err(|e| GatewayError::Config(format!("node certificate: {e}")))?;
            fingerprints.push(hex::encode(openssl::sha::sha256(&der)));
            pki.issue_leaf(
                &LeafSpec::new(&organ_name).with_subject(vec![
                    (openssl::nid::Nid::ORGANIZATIONNAME, organ_name.clone()),
                    (openssl::nid::Nid::ORGANIZATIONALUNITNAME, organ_id.clone()),
                    (
                        openssl::nid::Nid::COMMONNAME,
                        format!("{organ_name} (demo)"),
                    ),
                ]),
                &pki_dir.join(format!("agency-{name}.p12")),
            )
            .map_err(crate::Error::from)?;
            nodes.push(DemoNode {
                name: name.to_string(),
                organ_id,
                organ_name,
                config: dir.join(name).join("signgate.toml"),
                api_port: port()?,
                peer_port: port()?,
                token: String::new(),
            });
        }
        for (i, node) in nodes.iter().enumerate() {
            let toml = node_config(&dir, &nodes, &fingerprints, i);
            let folder = dir.join(&node.name);
            std::fs::create_dir_all(&folder).map_err(|e| io(&folder, e))?;
            std::fs::write(&node.config, toml).map_err(|e| io(&node.config, e))?;
        }
        let directory = dir.join("directory");
        std::fs::create_dir_all(&directory).map_err(|e| io(&directory, e))?;
        for (file, text) in [
            (format!("units-{}.csv", structure.as_str()), units_csv),
            (format!("codes-{}.csv", structure.as_str()), codes_csv),
            (
                "LICENSE-thanglequoc-vietnamese-provinces-database.txt".into(),
                LICENCE,
            ),
        ] {
            let path = directory.join(file);
            std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        }
        for node in &mut nodes {
            let config = Self::config_of(&node.config)?;
            let services = Services::open(&config).await?;
            services
                .directory()
                .import(structure, units_csv, Some(codes_csv))
                .await
                .map_err(crate::Error::from)?;
            let created = services
                .add_client(NewClient {
                    agency: node.organ_id.clone(),
                    name: format!("demo clerk of {}", node.organ_name),
                    keys: vec![node.name.clone()],
                    cert_fingerprint: None,
                })
                .await?;
            node.token = created.token;
            services.close().await;
        }
        // addressed to commune A (2025), or to the commune below the district (2024)
        let to = match structure {
            Structure::S2025 => nodes.get(1),
            Structure::S2024 => nodes.last(),
        };
        let document = match to {
            Some(n) => DOCUMENT.replace("DEMO.H01.00004", &n.organ_id),
            None => DOCUMENT.to_string(),
        };
        let path = dir.join("document.toml");
        std::fs::write(&path, document).map_err(|e| io(&path, e))?;
        let net = Self {
            dir: dir.clone(),
            structure: structure.as_str().into(),
            publication_port,
            nodes,
        };
        net.write_env()?;
        let path = dir.join("network.json");
        let json = serde_json::to_vec_pretty(&net).map_err(|e| io(&path, e))?;
        crate::fsio::write_output(&path, &json).map_err(|e| io(&path, e))?;
        Ok(net)
    }

    /// The validated configuration of a demo node (key passwords default to the demo's).
    pub fn config_of(path: &Path) -> Result<GatewayConfig, GatewayError> {
        GatewayConfig::load_with(Some(path), None, None, demo_env)
    }

    /// The router of the demo PKI's publication point (serve it on `publication_port`).
    pub fn publication(&self) -> Result<axum::Router, GatewayError> {
        let dir = self.dir.join("pki");
        let key = crate::keys::Pkcs12Key::open(&dir.join("ocsp.p12"), PASSWORD)
            .map_err(crate::Error::from)?;
        crate::publish::router(dir, Arc::new(key)).map_err(|e| GatewayError::Config(e.to_string()))
    }

    /// Writes `env`: `. DIR/env` sets `SIGNGATE_KEY_PASSWORD`, `DEMO_DIR` and, per node,
    /// `<NODE>_URL`, `<NODE>_TOKEN`, `<NODE>_CONFIG`, `<NODE>_ORGAN`.
    fn write_env(&self) -> Result<(), GatewayError> {
        let mut text = String::from(
            "# signgate demo network: TEST DATA ONLY (DEMO.* agency codes are not real; demo keys, password \"demo\")\n",
        );
        text.push_str(&format!(
            "export SIGNGATE_KEY_PASSWORD=demo\nexport DEMO_DIR='{}'\n",
            self.dir.display()
        ));
        for n in &self.nodes {
            let v = n.var();
            text.push_str(&format!(
                "export {v}_URL='{}' {v}_TOKEN='{}' {v}_CONFIG='{}' {v}_ORGAN='{}'\n",
                n.url(),
                n.token,
                n.config.display(),
                n.organ_id
            ));
        }
        let path = self.dir.join("env");
        crate::fsio::write_output(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(&path, e))
    }
}

/// The `signgate.toml` of node `i`: its agency key, its routing table (province: each child
/// by its agencies; others: the parent as the default route, and the child below, if any).
fn node_config(dir: &Path, nodes: &[DemoNode], fingerprints: &[String], i: usize) -> String {
    let n = &nodes[i];
    let pki = dir.join("pki");
    let mut toml = format!(
        "# signgate demo node '{name}' serving {organ} ({organ_name}). TEST DATA: DEMO.* codes and keys are not real.\n\
         data_dir = {data:?}\nlisten = \"127.0.0.1:{api}\"\ntrust = [{root:?}]\n\n\
         # The demo PKI's publication point is on loopback, which [fetch] refuses unless allowed.\n\
         [fetch]\nallow = [\"127.0.0.1\"]\n\n\
         [[keys]]\nname = {name:?}\nagency = {organ:?}\np12 = {key:?}\n\n\
         [routing]\nnode_id = {name:?}\nserves = [{organ:?}]\nlisten = \"127.0.0.1:{peer}\"\n\
         identity = {identity:?}\nsigning_key = {key:?}\n\
         max_attempts = 20\nbackoff_initial_ms = 200\nbackoff_max_ms = 5000\npoll_ms = 200\npeer_timeout_secs = 20\n",
        name = n.name,
        organ = n.organ_id,
        organ_name = n.organ_name,
        data = dir.join(&n.name).join("data"),
        api = n.api_port,
        root = pki.join("root-ca.pem"),
        key = pki.join(format!("agency-{}.p12", n.name)),
        peer = n.peer_port,
        identity = pki.join(format!("node-{}.p12", n.name)),
    );
    let peer = |toml: &mut String, j: usize, serves: Vec<String>| {
        toml.push_str(&format!(
            "\n[[routing.peers]]\nnode_id = {:?}\nurl = \"https://127.0.0.1:{}/\"\ncert_fingerprint = {:?}\nserves = {:?}\n",
            nodes[j].name, nodes[j].peer_port, fingerprints[j], serves
        ));
    };
    let chain = nodes.len() == 3 && nodes[1].name == "district";
    if i == 0 {
        if chain {
            peer(
                &mut toml,
                1,
                vec![nodes[1].organ_id.clone(), nodes[2].organ_id.clone()],
            );
        } else {
            for (j, child) in nodes.iter().enumerate().skip(1) {
                peer(&mut toml, j, vec![child.organ_id.clone()]);
            }
        }
    } else {
        let parent = if chain { i - 1 } else { 0 };
        peer(&mut toml, parent, vec!["*".into()]);
        if chain && i + 1 < nodes.len() {
            peer(&mut toml, i + 1, vec![nodes[i + 1].organ_id.clone()]);
        }
    }
    toml
}

/// (GSO code, QCVN 102 identifier) of a codes file (`gso_code,organ_id_qcvn102,organ_id_d20`).
fn codes_by_gso(csv: &str) -> Vec<(String, String)> {
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

/// (GSO code, committee name) of a unit file (`code,name,level,parent_code,type`).
fn names_by_gso(csv: &str) -> Vec<(String, String)> {
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                f.first()?.to_string(),
                format!("UBND {} {}", f.get(4)?, f.get(1)?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<DemoNode> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| DemoNode {
                name: n.to_string(),
                organ_id: format!("DEMO.{i}"),
                organ_name: n.to_string(),
                config: PathBuf::from("x"),
                api_port: 1,
                peer_port: 100 + i as u16,
                token: String::new(),
            })
            .collect()
    }

    #[test]
    fn the_province_routes_to_each_commune_and_communes_go_up() {
        let n = nodes(&["province", "commune-a", "commune-b"]);
        let f = vec!["f0".to_string(), "f1".into(), "f2".into()];
        let p = node_config(Path::new("/d"), &n, &f, 0);
        assert!(
            p.contains("node_id = \"commune-a\"") && p.contains("serves = [\"DEMO.1\"]"),
            "{p}"
        );
        assert!(
            p.contains("node_id = \"commune-b\"") && p.contains("serves = [\"DEMO.2\"]"),
            "{p}"
        );
        let c = node_config(Path::new("/d"), &n, &f, 2);
        assert!(
            c.contains("cert_fingerprint = \"f0\"\nserves = [\"*\"]"),
            "{c}"
        );
        assert!(!c.contains("commune-a"), "{c}");
        let parsed: toml::Value = toml::from_str(&c).expect("valid TOML");
        assert!(parsed.get("routing").is_some());
    }

    #[test]
    fn the_three_level_variant_is_a_chain() {
        let n = nodes(&["province", "district", "commune"]);
        let f = vec!["f0".to_string(), "f1".into(), "f2".into()];
        let p = node_config(Path::new("/d"), &n, &f, 0);
        assert!(p.contains("serves = [\"DEMO.1\", \"DEMO.2\"]"), "{p}");
        let d = node_config(Path::new("/d"), &n, &f, 1);
        assert!(
            d.contains("\"f0\"\nserves = [\"*\"]") && d.contains("\"f2\"\nserves = [\"DEMO.2\"]"),
            "{d}"
        );
        let c = node_config(Path::new("/d"), &n, &f, 2);
        assert!(
            c.contains("\"f1\"\nserves = [\"*\"]") && !c.contains("\"f0\""),
            "{c}"
        );
    }

    #[test]
    fn the_shipped_units_and_codes_match() {
        for (units_csv, codes_csv, structure) in [
            (UNITS_2025, CODES_2025, Structure::S2025),
            (UNITS_2024, CODES_2024, Structure::S2024),
        ] {
            let codes = codes_by_gso(codes_csv);
            let names = names_by_gso(units_csv);
            for (_, gso) in units(structure) {
                let id = codes
                    .iter()
                    .find(|(g, _)| g == gso)
                    .expect("code")
                    .1
                    .clone();
                assert!(
                    id.starts_with("DEMO."),
                    "{id}: demo codes are marked as test data"
                );
                assert!(names.iter().any(|(g, _)| g == gso), "{gso}");
            }
        }
    }
}
