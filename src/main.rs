//! The `reprod` command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use reprod::config::Config;
use reprod::rebuild::{self, RebuildOptions};

/// Exit code when no verdict could be reached (bad input, infrastructure down).
const EXIT_ERROR: u8 = 2;

/// `println!` for human output: what builds, documents and servers chose is made inert for a terminal.
macro_rules! say {
    ($($t:tt)*) => {
        println!("{}", reprod::text::inert(&format!($($t)*)))
    };
}

#[derive(Parser)]
#[command(
    name = "reprod",
    version,
    about = "Independent rebuilder for container images: reruns recorded provenance and compares digests"
)]
struct Cli {
    /// TOML configuration file (REPROD_* environment variables override it).
    #[arg(long, global = true, env = "REPROD_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr (the level comes from RUST_LOG, default `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// Signature material given on the command line, added to the configuration's `[trust]`.
#[derive(clap::Args)]
struct TrustArgs {
    /// A PEM public key to verify signatures with (repeatable).
    #[arg(long = "key", value_name = "PEM")]
    keys: Vec<PathBuf>,
    /// A Sigstore trusted_root.json for keyless signatures (repeatable).
    #[arg(long = "trusted-root", value_name = "JSON")]
    trusted_roots: Vec<PathBuf>,
    /// Require this certificate identity (subject alternative name, exactly) on keyless signatures; needs
    /// --issuer. A keyless signature is accepted only with both, with --any-identity, or under a trust
    /// rule naming its identity and issuer: a valid certificate alone proves only that someone signed.
    #[arg(long, value_name = "SAN", requires = "issuer")]
    identity: Option<String>,
    /// Require this OIDC issuer on keyless signatures; needs --identity.
    #[arg(long, value_name = "URL", requires = "identity")]
    issuer: Option<String>,
    /// Accept a keyless signature whatever identity its certificate names (as cosign's
    /// --certificate-identity-regexp '.*'). It must still chain to the trust root, be logged and carry a
    /// verified SCT, but anyone with an OIDC account can make one; the output says ANY identity was accepted.
    #[arg(long, conflicts_with_all = ["identity", "issuer"])]
    any_identity: bool,
}

impl TrustArgs {
    fn material(&self, config: &Config) -> anyhow::Result<reprod::trust::TrustMaterial> {
        let mut trust = config.trust.clone();
        trust.keys.extend(self.keys.iter().cloned());
        trust
            .trusted_roots
            .extend(self.trusted_roots.iter().cloned());
        let mut material = trust.load_material().map_err(anyhow::Error::msg)?;
        material.identity = self.identity.clone();
        material.issuer = self.issuer.clone();
        material.any_identity = self.any_identity;
        Ok(material)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Rebuild from one provenance document and print the verdict.
    ///
    /// Exit status: 0 reproducible; 1 any other verdict (unreproducible, build-failed, unrebuildable,
    /// rejected); 2 no verdict could be reached (unreadable input, Docker down, ...).
    Rebuild {
        /// The provenance document (any container `verify-provenance` reads).
        provenance: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Print the verdict as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Keep the job directory (workspace, results, scripts) and print its path; with --vary, keep
        /// every build's.
        #[arg(long)]
        keep_workspace: bool,
        /// Rebuild again under environment variations (clock, SOURCE_DATE_EPOCH, build path, hostname,
        /// timezone, locale, umask, user id, CPU count, environment order) and name the variation that
        /// changes the output. Exit status: 0 no variation changes it, 1 one does, 2 error (including a
        /// control build that produced nothing to compare).
        #[arg(long)]
        vary: bool,
    },
    /// Run the daemon: intake (`POST /v1/provenance` with a token, the inbox directory, watched
    /// registries), a durable queue, in-process and remote workers, verdicts signed with
    /// `server.signing_key` and published (JSON API, /metrics, pages, Atom feed), until SIGTERM or SIGINT
    /// (running rebuilds get `server.shutdown_grace_secs` to finish, then are given back to the queue).
    Serve,
    /// Rebuild for a `reprod serve` elsewhere: lease jobs over HTTP, rebuild here, report the verdict with
    /// the lease token. Stops after the current job on SIGTERM/SIGINT.
    Worker {
        /// The server's base URL, e.g. http://10.0.0.5:8780.
        #[arg(long)]
        server: String,
        /// This worker's token (one of the server's `server.worker_tokens`).
        #[arg(long, env = "REPROD_WORKER_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Find the statements in a provenance document, verify their signatures offline, and show the
    /// normalized recipe of each.
    ///
    /// Reads bare in-toto statements, DSSE envelopes, JSON Lines of either, Sigstore bundles v0.1-v0.3,
    /// Cloud Build `--show-provenance` output, npm attestation responses, cosign `.att` manifests (the DSSE
    /// layer beside the file) and `rekor-cli get` output. Keys and roots from the configuration's `[trust]`
    /// section are used too, and so is its trust policy: a signer `rebuild` would refuse is not verified
    /// here either (a keyless signature needs --identity and --issuer, --any-identity, or a trust rule
    /// naming its identity and issuer). Exit status: 0 every statement verified and its signer accepted;
    /// 1 a signature is missing, fails, cannot be checked offline or is not accepted; 2 the input cannot
    /// be read or parsed.
    VerifyProvenance {
        file: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare two images and explain every difference, classified.
    ///
    /// A and B are OCI layout directories, OCI archives (tarballs of a layout), `docker save` archives, or
    /// registry references `docker://NAME@sha256:<hex>` (fetched with skopeo, digests verified).
    /// Exit status: 0 identical; 1 different; 2 error.
    Diff {
        a: String,
        b: String,
        /// Print the report as JSON (schema `https://reprod.dev/diff/v1`).
        #[arg(long)]
        json: bool,
        /// Differences printed in text mode (the JSON has all).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Decompressed bytes allowed per layer; a decompression bomb stops here.
        #[arg(long, default_value_t = 64 << 30)]
        max_layer_bytes: u64,
        /// Also hash every layer blob read and refuse one that does not match its digest (indexes,
        /// manifests and configs are always checked). Costs a second hash of the compressed bytes.
        #[arg(long)]
        verify_layers: bool,
    },
    /// Scan a directory the way a rebuild scans its workspace, and print the outputs and digests found.
    ///
    /// Shows what reprod would compare subjects with: OCI layouts and tarballs with every index and manifest
    /// digest, plain files with their sha256, and any blob that is missing or does not match its digest.
    /// Exit status 1 when a problem was found.
    Scan {
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration (file + environment + defaults) as TOML, secrets redacted.
    Config,
    /// Create the ECDSA P-256 key pair verdicts are signed with: PREFIX.key (PKCS#8 PEM, mode 0600) and
    /// PREFIX.pub (the public key to give to `reprod verify` and other verifiers). Never overwrites a file.
    Keygen {
        /// Path prefix of the two files.
        #[arg(default_value = "reprod")]
        prefix: PathBuf,
    },
    /// Check a signed verdict (a DSSE envelope from `/v1/jobs/{id}/attestations/...`) offline and print
    /// what it vouches for; with --digest, use it as a deploy gate.
    ///
    /// The signature is checked over the exact bytes before anything in them is read. A verification
    /// summary is accepted only when it says PASSED (unless --any-result); a rebuild provenance verifies as
    /// such but vouches for no digest. As a deploy gate: `reprod verify vsa.json --key rebuilder.pub
    /// --digest sha256:<hex>` exits 0 only for a summary that names that digest and says PASSED.
    ///
    /// Exit status: 0 verified and every requirement holds; 1 the signature does not verify, the statement
    /// is not a reprod summary or rebuild provenance, or a requirement does not hold (FAILED, another
    /// digest, another verifier, not a summary); 2 the file or a key cannot be read, or an argument is
    /// malformed.
    Verify {
        attestation: PathBuf,
        /// The rebuilder's PEM public key (repeatable: any one may have signed).
        #[arg(long = "key", value_name = "PUB", required = true)]
        keys: Vec<PathBuf>,
        /// Require a verification summary that names this digest (`sha256:<64 hex>`).
        #[arg(long, value_name = "DIGEST")]
        digest: Option<String>,
        /// Require a verification summary that says PASSED (a rebuild provenance does not qualify).
        #[arg(long)]
        require_passed: bool,
        /// Accept a summary whatever result it states (it must still verify and name --digest).
        #[arg(long, conflicts_with = "require_passed")]
        any_result: bool,
        /// Require this verifier: the summary's `verifier.id` or the rebuild provenance's `builder.id`.
        #[arg(long, value_name = "URI")]
        verifier_id: Option<String>,
        /// Print the verified statement as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a reprod server whether an image digest was rebuilt bit for bit.
    ///
    /// The deciding verdict is a reproducible one if any verdict names the digest (under IMAGE first, when
    /// given), else the latest. With
    /// --key, the answer counts only if the verdict's signed summary (VSA) verifies with that key and says
    /// the same. Exit status: 0 reproducible; 1 any other verdict; 2 no verdict names the digest, the server
    /// cannot be asked, or (with --key) the signed summary is missing, does not verify or disagrees.
    Status {
        /// IMAGE@sha256:<hex> or sha256:<hex>.
        reference: String,
        #[command(flatten)]
        server: ServerArgs,
        /// The rebuilder's PEM public key: check the verdict's signature instead of trusting the connection.
        #[arg(long = "key", value_name = "PUB")]
        keys: Vec<PathBuf>,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a provenance document to a reprod server's queue.
    ///
    /// Exit status: 0 queued (or already known); 1 refused (signature, policy) or, with --wait, a verdict
    /// other than reproducible; 2 error.
    Submit {
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        /// A submit token (one of the server's server.submit_tokens).
        #[arg(long, env = "REPROD_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Wait for the verdict and exit as `status` does.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (exit 2).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where the reprod server is.
#[derive(clap::Args)]
struct ServerArgs {
    /// The server's base URL (default: server.public_url, else http://<server.listen>).
    #[arg(long = "server", env = "REPROD_SERVER")]
    url: Option<String>,
}

impl ServerArgs {
    fn client(
        &self,
        config: &Config,
        token: Option<String>,
    ) -> anyhow::Result<reprod::client::Client> {
        let url = self.url.clone().unwrap_or_else(|| config.server.base_url());
        Ok(reprod::client::Client::new(&url, token)?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", reprod::text::inert(&format!("{e:#}")));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: in a file or a journal they are escape sequences in the way, and a line
    // without them shows any that reached it from a client or a build (those are made inert).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The trust material (loaded now, so a bad key fails at start) and a runtime for `serve` and `worker`.
fn long_running(
    config: &Config,
) -> anyhow::Result<(tokio::runtime::Runtime, reprod::trust::TrustMaterial)> {
    let material = config
        .trust
        .load_material()
        .map_err(anyhow::Error::msg)
        .context("loading the trust material")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok((runtime, material))
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())
        .context("loading the configuration")?;
    match cli.command {
        Command::Config => {
            print!(
                "{}",
                toml::to_string_pretty(&config.redacted())
                    .context("rendering the configuration")?
            );
            Ok(0)
        }
        Command::Diff {
            a,
            b,
            json,
            limit,
            max_layer_bytes,
            verify_layers,
        } => {
            let scratch = tempfile::tempdir().context("creating a scratch directory")?;
            let local = |arg: &str, side: &str| -> anyhow::Result<PathBuf> {
                if !arg.starts_with("docker://") {
                    return Ok(PathBuf::from(arg));
                }
                let dest = scratch.path().join(side);
                let limits = config.images.fetch_limits(reprod::oci::registry_of(arg));
                reprod::oci::fetch(arg, &dest, &limits)?;
                Ok(dest)
            };
            let (pa, pb) = (local(&a, "a")?, local(&b, "b")?);
            let mut report = reprod::diff::diff(
                &pa,
                &pb,
                &reprod::diff::DiffOptions {
                    max_layer_bytes,
                    verify_layers,
                    deadline: None,
                },
            )
            .context("comparing the images")?;
            report.a = a;
            report.b = b;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("rendering the report")?
                );
            } else {
                print!("{}", reprod::text::inert(&report.human(limit)));
            }
            Ok(report.exit_code())
        }
        Command::Scan { dir, json } => {
            anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
            let outputs = reprod::oci::collect(&dir);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&outputs).context("rendering the outputs")?
                );
            } else {
                for image in &outputs.images {
                    for e in &image.entries {
                        let name = e.ref_name.as_deref().unwrap_or("-");
                        say!(
                            "{}\t{}\t{}\t{name}",
                            image.kind.as_str(),
                            image.path,
                            e.digest
                        );
                    }
                    for p in &image.problems {
                        say!("problem\t{}\t{p}", image.path);
                    }
                }
                for f in &outputs.files {
                    say!("file\t{}\t{}", f.path, f.digest);
                }
                for p in &outputs.problems {
                    say!("problem\t-\t{p}");
                }
            }
            let clean =
                outputs.problems.is_empty() && outputs.images.iter().all(|i| i.problems.is_empty());
            Ok(if clean { 0 } else { 1 })
        }
        Command::Keygen { prefix } => keygen(&prefix),
        Command::Verify {
            attestation,
            keys,
            digest,
            require_passed,
            any_result,
            verifier_id,
            json,
        } => {
            let gate = reprod::attest::Gate {
                digest,
                require_passed,
                any_result,
                verifier_id,
            };
            verify(&attestation, &keys, &gate, json)
        }
        Command::Status {
            reference,
            server,
            keys,
            json,
        } => {
            let keys = load_public_keys(&keys)?;
            status(&server.client(&config, None)?, &reference, &keys, json)
        }
        Command::Submit {
            file,
            server,
            token,
            wait,
            timeout,
            json,
        } => {
            let client = server.client(&config, token)?;
            let bytes = rebuild::read_provenance(&file, config.max_document_bytes)?;
            submit(
                &client,
                &bytes,
                wait,
                std::time::Duration::from_secs(timeout),
                json,
            )
        }
        Command::Serve => {
            let (runtime, material) = long_running(&config)?;
            runtime.block_on(reprod::daemon::serve(config, material))?;
            Ok(0)
        }
        Command::Worker { server, token } => {
            let (runtime, material) = long_running(&config)?;
            let client = reprod::client::Client::new(&server, Some(token))?;
            runtime.block_on(reprod::remote_worker::run(config, material, client))?;
            Ok(0)
        }
        Command::VerifyProvenance { file, trust, json } => {
            let material = trust.material(&config)?;
            let bytes = rebuild::read_provenance(&file, config.max_document_bytes)?;
            let blobs = reprod::provenance::container::DirBlobs {
                dir: file.parent().map(PathBuf::from).unwrap_or_default(),
                max_bytes: config.max_document_bytes,
            };
            let mut findings =
                reprod::examine::examine(&bytes, config.max_document_bytes, &blobs, &material)
                    .with_context(|| format!("{} cannot be parsed", file.display()))?;
            config.trust.settle(&mut findings);
            if json {
                let doc = serde_json::json!({
                    "file": file.display().to_string(),
                    "sha256": reprod::oci::sha256_bytes(&bytes),
                    "findings": findings,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).context("rendering the findings")?
                );
            } else {
                print!(
                    "{}",
                    reprod::text::inert(&reprod::examine::human(
                        &file.display().to_string(),
                        &findings
                    ))
                );
            }
            Ok(if findings.iter().all(|f| f.verification.is_verified()) {
                0
            } else {
                1
            })
        }
        Command::Rebuild {
            provenance,
            trust,
            json,
            keep_workspace,
            vary,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let material = trust.material(&config)?;
            let blobs = reprod::provenance::container::DirBlobs {
                dir: provenance.parent().map(PathBuf::from).unwrap_or_default(),
                max_bytes: config.max_document_bytes,
            };
            let bytes = rebuild::read_provenance(&provenance, config.max_document_bytes)?;
            let on_terminal = std::io::stderr().is_terminal();
            let progress = move |line: &str| {
                if on_terminal {
                    eprintln!("reprod: {}", reprod::text::inert(line));
                } else if let Some(warning) = line.strip_prefix("warning: ") {
                    // Warnings reach logs at the default level; progress stays at info.
                    tracing::warn!("{warning}");
                } else {
                    tracing::info!("{line}");
                }
            };
            let opts = RebuildOptions {
                origin: provenance.display().to_string(),
                keep_workspace,
                progress: &progress,
                variations: Default::default(),
                material,
                blobs: &blobs,
                collected: false,
            };
            if vary {
                let report =
                    runtime.block_on(reprod::vary::vary(&config, &bytes, &opts, keep_workspace))?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).context("rendering the report")?
                    );
                } else {
                    print!("{}", reprod::text::inert(&report.human()));
                }
                return Ok(report.exit_code());
            }
            // SIGINT/SIGTERM: the rebuild is dropped (its job directory removes itself), then this
            // process's build containers are removed before it exits.
            let outcome = runtime.block_on(async {
                tokio::select! {
                    v = rebuild::rebuild(&config, &bytes, &opts) => Some(v),
                    () = reprod::daemon::shutdown_signal() => None,
                }
            });
            let Some(verdict) = outcome else {
                let removed = runtime.block_on(async {
                    reprod_sandbox::Sandbox::connect(config.policy())
                        .await?
                        .remove_own_containers()
                        .await
                });
                match removed {
                    Ok(n) => eprintln!(
                        "reprod rebuild: interrupted; no verdict. Removed {n} build container(s) and the job directory."
                    ),
                    Err(e) => eprintln!(
                        "reprod rebuild: interrupted; no verdict. Could not remove the build containers: {e}"
                    ),
                }
                return Ok(EXIT_ERROR);
            };
            let verdict = verdict?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&verdict).context("rendering the verdict")?
                );
            } else {
                print!("{}", reprod::text::inert(&verdict.human()));
            }
            Ok(verdict.exit_code() as u8)
        }
    }
}

fn keygen(prefix: &std::path::Path) -> anyhow::Result<u8> {
    // Appended, not substituted: `ci.example` gives `ci.example.key`.
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (private, public) = (with(".key"), with(".pub"));
    let pair = reprod::attest::key::generate_key_pair()?;
    reprod::attest::key::write_key_pair(&pair, &private, &public)?;
    println!(
        "private key: {} (mode 0600; keep it secret)",
        private.display()
    );
    println!("public key:  {}", public.display());
    println!("key id:      {}", pair.key_id);
    Ok(0)
}

/// Largest attestation `reprod verify` reads.
const MAX_ATTESTATION_BYTES: u64 = 16 << 20;

fn load_public_keys(keys: &[PathBuf]) -> anyhow::Result<Vec<reprod::trust::keys::PublicKey>> {
    keys.iter()
        .map(|k| {
            let pem =
                std::fs::read(k).with_context(|| format!("reading the key {}", k.display()))?;
            Ok(reprod::trust::keys::PublicKey::from_pem(
                &pem,
                k.display().to_string(),
            )?)
        })
        .collect()
}

fn verify(
    attestation: &std::path::Path,
    keys: &[PathBuf],
    gate: &reprod::attest::Gate,
    json: bool,
) -> anyhow::Result<u8> {
    let loaded = load_public_keys(keys)?;
    if let Some(d) = &gate.digest {
        anyhow::ensure!(
            reprod::verdict::is_sha256(d),
            "--digest {d:?}: expected sha256:<64 lowercase hex digits>"
        );
    }
    let size = std::fs::metadata(attestation)
        .with_context(|| format!("reading {}", attestation.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_ATTESTATION_BYTES,
        "{}: {size} bytes is over the {MAX_ATTESTATION_BYTES}-byte limit for an attestation",
        attestation.display()
    );
    let bytes =
        std::fs::read(attestation).with_context(|| format!("reading {}", attestation.display()))?;
    let refuse = |verified: bool, why: String| {
        if json {
            println!(
                "{}",
                serde_json::json!({"verified": verified, "accepted": false, "error": why})
            );
        }
        eprintln!(
            "reprod verify: {}: {}: {}",
            attestation.display(),
            if verified {
                "the signature verifies, but it is NOT accepted"
            } else {
                "NOT verified"
            },
            reprod::text::inert_line(&why)
        );
        Ok(1)
    };
    let v = match reprod::attest::verify_attestation(&bytes, &loaded) {
        Ok(v) => v,
        Err(e) => return refuse(false, e.to_string()),
    };
    if let Err(why) = gate.check(&v) {
        return refuse(true, why);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", reprod::text::inert(&v.human()));
        if let Some(d) = &gate.digest {
            println!("accepted: {} for {d}", v.result);
        }
    }
    Ok(0)
}

fn status(
    client: &reprod::client::Client,
    reference: &str,
    keys: &[reprod::trust::keys::PublicKey],
    json: bool,
) -> anyhow::Result<u8> {
    let (name, digest) = reprod::client::parse_reference(reference)?;
    let Some(answer) = client.verdicts_for(digest, name)? else {
        if json {
            println!(
                "{}",
                serde_json::json!({"digest": digest, "status": "unknown"})
            );
        } else {
            say!("unknown: no verdict names {digest} (never submitted, or its rebuild has not finished)");
        }
        return Ok(EXIT_ERROR);
    };
    let decided = &answer.decided_by;
    let history_total = answer.history_total;
    let verdict = decided.status.as_str();
    let signed = if keys.is_empty() {
        None
    } else {
        Some(check_signed_summary(client, decided, digest, keys)?)
    };
    if json {
        /// The server's answer, with what was verified of the signed summary.
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            answer: &'a reprod::wire::DigestAnswer,
            #[serde(skip_serializing_if = "Option::is_none")]
            signed_summary: Option<&'a reprod::attest::Vouched>,
        }
        let shown = Shown {
            answer: &answer,
            signed_summary: signed.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        say!("{verdict}: {reference}");
        if let Some(reason) = &decided.reason {
            say!("  reason:   {reason}");
        }
        say!(
            "  job:      {} (recorded {})",
            decided.job,
            decided.recorded_at
        );
        if history_total > 1 {
            say!(
                "  history:  {} other verdict(s) name this digest; a reproducible one decides, else the latest",
                history_total - 1
            );
        }
        for kind in &decided.attestations {
            say!(
                "  signed:   {kind} /v1/jobs/{}/attestations/{kind}",
                decided.job
            );
        }
        if let Some(v) = &signed {
            say!(
                "  verified: the signed summary says {} for this digest (key {})",
                v.result,
                v.key_id
            );
        }
        if let Some(name) = name {
            let names: Vec<&str> = decided
                .subjects
                .iter()
                .filter(|s| s.digest == digest)
                .map(|s| s.name.as_str())
                .collect();
            if !names.is_empty() && !names.contains(&name) {
                say!(
                    "  note:     the verdict names this digest {}, not {name}; the digest is what was rebuilt",
                    names.join(", ")
                );
            }
        }
    }
    Ok(if decided.status == reprod::verdict::Status::Reproducible {
        0
    } else {
        1
    })
}

/// Fetches the deciding verdict's VSA, verifies it offline with `keys`, and checks it names `digest` and
/// says what the server's answer says. Any doubt is an error (exit 2): with --key, only signed words count.
fn check_signed_summary(
    client: &reprod::client::Client,
    decided: &reprod::wire::RecordView,
    digest: &str,
    keys: &[reprod::trust::keys::PublicKey],
) -> anyhow::Result<reprod::attest::Vouched> {
    let state = decided
        .subjects
        .iter()
        .find(|s| s.digest == digest)
        .map(|s| s.state);
    // The summary that can speak for this digest: the PASSED one when it was rebuilt bit for bit, the
    // FAILED one when it was compared and not; a digest never compared has none.
    let kind = match state {
        _ if decided.attestations.iter().any(|k| k == "vsa") => "vsa",
        Some(reprod::verdict::SubjectState::Matched) => "vsa-passed",
        Some(reprod::verdict::SubjectState::Differs | reprod::verdict::SubjectState::NotFound) => {
            "vsa-failed"
        }
        _ => anyhow::bail!(
            "job {}: the verdict ({}) never compared {digest}, so no signed summary speaks for it",
            decided.job,
            decided.status.as_str()
        ),
    };
    anyhow::ensure!(
        decided.attestations.iter().any(|k| k == kind),
        "job {}: the verdict has no `{kind}` summary to check (recorded before verdicts were signed?)",
        decided.job
    );
    let bytes = client.attestation(&decided.job, kind)?;
    let vouched = reprod::attest::verify_attestation(&bytes, keys)
        .map_err(|e| anyhow::anyhow!("job {}: the signed summary: {e}", decided.job))?;
    anyhow::ensure!(
        vouched.predicate_type == reprod::attest::uri::VSA_V1,
        "job {}: the attestation served as the summary is a {}",
        decided.job,
        vouched.predicate_type
    );
    let names_digest = vouched
        .subjects
        .iter()
        .any(|s| s == digest || s.ends_with(&format!("@{digest}")));
    anyhow::ensure!(
        names_digest,
        "job {}: the signed summary does not name {digest} (it names {})",
        decided.job,
        vouched.subjects.join(", ")
    );
    let passed = vouched.result == "PASSED";
    let matched = state == Some(reprod::verdict::SubjectState::Matched);
    anyhow::ensure!(
        passed == matched && (passed || decided.status != reprod::verdict::Status::Reproducible),
        "job {}: the server says {} ({}), but the signed summary says {}",
        decided.job,
        decided.status.as_str(),
        state.map_or("unknown", |s| s.as_str()),
        vouched.result
    );
    Ok(vouched)
}

fn submit(
    client: &reprod::client::Client,
    bytes: &[u8],
    wait: bool,
    timeout: std::time::Duration,
    json: bool,
) -> anyhow::Result<u8> {
    let answer = match client.submit(bytes) {
        Ok(a) => a,
        Err(reprod::client::ClientError::Api {
            status: 422,
            code,
            message,
            ..
        }) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"refused": {"code": code, "message": message}})
                );
            } else {
                say!("refused ({code}): {message}");
            }
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    if !wait {
        if json {
            println!("{}", serde_json::to_string(&answer)?);
        } else {
            for j in &answer.jobs {
                let how = match j.status {
                    reprod::wire::Submission::New => "new",
                    reprod::wire::Submission::Duplicate => "duplicate",
                };
                say!("queued: job {} ({how})", j.id);
            }
        }
        return Ok(0);
    }
    let jobs: Vec<String> = answer.jobs.into_iter().map(|j| j.id).collect();
    let deadline = std::time::Instant::now() + timeout;
    let mut worst = 0;
    for id in jobs {
        let job = loop {
            let job = client.job(&id)?;
            if job.verdict.is_some() || job.state == "dead" {
                break job;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "job {id}: no verdict within {}s (state {})",
                timeout.as_secs(),
                job.state
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        };
        let status = job.verdict.as_ref().map(|v| v.status);
        if json {
            println!("{}", serde_json::to_string(&job)?);
        } else {
            say!(
                "{}: job {id}",
                status.map_or("error", reprod::verdict::Status::as_str)
            );
            if let Some(v) = &job.verdict {
                say!("  {}", v.detail);
            }
            if let Some(e) = job.last_error.as_deref().filter(|_| status.is_none()) {
                say!("  given up after retries: {e}");
            }
        }
        let code = match status {
            Some(reprod::verdict::Status::Reproducible) => 0,
            None => EXIT_ERROR,
            Some(_) => 1,
        };
        worst = worst.max(code);
    }
    Ok(worst)
}
