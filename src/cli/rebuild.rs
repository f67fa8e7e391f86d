//! `reprod rebuild`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;

use reprod::config::Config;
use reprod::rebuild::{self, RebuildOptions};
use reprod::vary::Variation;

use super::common::{print_result, TrustArgs};
use super::Exit;

/// Rebuild from one provenance document and print the verdict.
///
/// Exit status: 0 reproducible; 1 any other verdict (unreproducible, build-failed, unrebuildable,
/// rejected); 2 no verdict could be reached (unreadable input, Docker down, ...).
#[derive(clap::Args)]
pub struct RebuildArgs {
    /// The provenance document (any container `verify-provenance` reads), or an image in a registry,
    /// `docker://HOST[:PORT]/REPO@sha256:DIGEST` (an index or a manifest, pinned by digest): its
    /// attestations are fetched as the registry watcher finds them (cosign `.att`, OCI referrers,
    /// BuildKit attestation manifests in the index) and the first that yields a recipe is rebuilt.
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
    /// With --vary: try only these variations (repeatable or comma-separated).
    #[arg(long, value_name = "NAME", requires = "vary", conflicts_with = "skip", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(Variation::ALL.map(Variation::name)))]
    only: Vec<String>,
    /// With --vary: try every variation but these (repeatable or comma-separated).
    #[arg(long, value_name = "NAME", requires = "vary", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(Variation::ALL.map(Variation::name)))]
    skip: Vec<String>,
    /// The steps' network: `none` (no network at all), `proxy` (reprod's recording proxy, letting
    /// through only what --allow names) or `replay` (only what --replay-from recorded, from the cache,
    /// nothing fetched). Overrides sandbox.network.mode and its rules; proxy and replay need
    /// sandbox.network.holder_image.
    #[arg(long, value_name = "MODE")]
    network: Option<reprod::network::NetworkMode>,
    /// What the proxy lets through (repeatable): `host`, `*.domain`, `host:port`, `ip:port`, or a URL
    /// prefix `http(s)://host[:port]/path`. Replaces sandbox.network.allow.
    #[arg(long, value_name = "ENTRY")]
    allow: Vec<String>,
    /// With --network replay: the earlier rebuild to replay, as its verdict (`reprod rebuild --json`
    /// output, or a job from `GET /v1/jobs/{id}`). Its steps are served only the bodies it fetched, from
    /// this data directory's network cache, and nothing is fetched.
    #[arg(long, value_name = "VERDICT")]
    replay_from: Option<PathBuf>,
}

/// The configuration with the command line's network grant in place of the configured one (mode and
/// allow-list for every document; no rules).
fn with_network(
    config: &Config,
    mode: Option<reprod::network::NetworkMode>,
    allow: Vec<String>,
    replay_from: Option<PathBuf>,
) -> anyhow::Result<Config> {
    use reprod::network::NetworkMode;
    let mut config = config.clone();
    let net = &mut config.sandbox.network;
    match (mode, &replay_from) {
        (Some(NetworkMode::Replay), None) => anyhow::bail!(
            "--network replay needs --replay-from VERDICT.json: the earlier rebuild whose fetches are served"
        ),
        (Some(NetworkMode::Replay), Some(path)) => net.replay = Some(replay_set(path)?),
        (_, Some(_)) => anyhow::bail!("--replay-from is for --network replay"),
        _ => {}
    }
    if let Some(mode) = mode {
        net.mode = mode;
        net.rules.clear();
    }
    if !allow.is_empty() {
        if net.mode == reprod::network::NetworkMode::None {
            anyhow::bail!(
                "--allow names what the proxy lets through, but the network mode is none: add --network proxy"
            );
        }
        net.allow = allow;
        net.rules.clear();
    }
    net.validate()
        .map_err(|e| anyhow::anyhow!("the build network: {e}"))?;
    Ok(config)
}

/// The part of a verdict (`reprod rebuild --json`) or of a job holding one (`GET /v1/jobs/{id}`) that
/// replay reads: what the build fetched.
#[derive(serde::Deserialize)]
struct Replayable {
    verdict: Option<NetworkOf>,
    network: Option<reprod::verdict::NetworkRecord>,
}

#[derive(serde::Deserialize)]
struct NetworkOf {
    network: Option<reprod::verdict::NetworkRecord>,
}

/// What `path` (a verdict, or a job holding one) recorded its build fetching.
fn replay_set(path: &std::path::Path) -> anyhow::Result<reprod::network::ReplaySet> {
    const LIMIT: usize = 64 << 20;
    let bytes = rebuild::read_provenance(path, LIMIT)
        .with_context(|| format!("reading the verdict to replay, {}", path.display()))?;
    let recorded: Replayable = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a verdict (from `reprod rebuild --json`) or a job (from GET /v1/jobs/{{id}})",
            path.display()
        )
    })?;
    let network = match recorded {
        Replayable {
            verdict: Some(NetworkOf { network }),
            ..
        }
        | Replayable {
            verdict: None,
            network,
        } => network,
    };
    let Some(record) = network else {
        anyhow::bail!(
            "{}: the verdict has no network record (its steps had no network), so there is nothing to replay",
            path.display()
        );
    };
    Ok(reprod::network::ReplaySet::from_record(
        &record.exchanges,
        path.display().to_string(),
    ))
}

pub fn run(args: RebuildArgs, config: &Config) -> anyhow::Result<Exit> {
    let RebuildArgs {
        provenance,
        trust,
        json,
        keep_workspace,
        vary,
        only,
        skip,
        network,
        allow,
        replay_from,
    } = args;
    // The variations --vary tries: --only's, or all but --skip's (the names were checked by clap).
    let variations: Vec<Variation> = Variation::ALL
        .into_iter()
        .filter(|v| {
            let named = |list: &[String]| list.iter().any(|n| n == v.name());
            (only.is_empty() || named(&only)) && !named(&skip)
        })
        .collect();
    anyhow::ensure!(
        !vary || !variations.is_empty(),
        "--skip leaves no variation to try"
    );
    let config = &with_network(config, network, allow, replay_from)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let material = trust.material(config)?;
    let blobs = reprod::provenance::container::DirBlobs {
        dir: provenance.parent().map(PathBuf::from).unwrap_or_default(),
        max_bytes: config.max_document_bytes,
    };
    // A document from a registry comes admitted (choosing among its attestations took that); a file is
    // admitted here, once.
    let admitted = match provenance
        .to_str()
        .and_then(|p| p.strip_prefix("docker://"))
    {
        Some(reference) => from_registry(config, reference, &material)?,
        None => {
            let bytes = rebuild::read_provenance(&provenance, config.max_document_bytes)?;
            reprod::examine::admit(config, &bytes, &blobs, &material)
        }
    };
    let on_terminal = std::io::stderr().is_terminal();
    let status = super::watch::StatusLine::default();
    let watch = |label: &str, chunk: &[u8]| status.chunk(label, chunk);
    let progress = |line: &str| {
        if on_terminal {
            status.clear();
            eprintln!("reprod: {}", reprod::text::inert(line));
        } else if let Some(warning) = line.strip_prefix("warning: ") {
            // Warnings reach logs at the default level; progress stays at info.
            tracing::warn!("{warning}");
        } else {
            tracing::info!("{line}");
        }
    };
    let admitted = admitted.map_err(|error| rebuild::RebuildError::Parse {
        path: provenance.display().to_string(),
        error,
    })?;
    let opts = RebuildOptions {
        origin: provenance.display().to_string(),
        keep_workspace,
        progress: &progress,
        // On a terminal, the running step's output as it comes; off one, the plain lines only.
        watch: on_terminal.then_some(&watch as rebuild::Watch<'_>),
        environment: &rebuild::Faithful,
        explain: true,
        collected: false,
    };
    // A document nothing can be run for gets its verdict without an engine.
    if let Some(outcome) = rebuild::settled(&admitted, &provenance.display().to_string()) {
        rebuild::announce(&admitted, &opts);
        let verdict = reprod::verdict::decide(&admitted, outcome);
        if vary {
            let report = reprod::vary::VaryReport::nothing_to_vary(verdict);
            print_result(json, &report, "report", |r| r.human())?;
            return Ok(Exit::from_code(report.exit_code()));
        }
        print_result(json, &verdict, "verdict", |v| v.human())?;
        return Ok(Exit::from_code(verdict.exit_code()));
    }
    // One engine connection for the whole command: the rebuild (or every build of --vary), and the
    // cleanup when interrupted.
    let executor = runtime
        .block_on(reprod::execute::connect(config))
        .map_err(|e| rebuild::RebuildError::Infrastructure(e.to_string()))?;
    if vary {
        let vary = reprod::vary::vary(
            config,
            &admitted,
            &executor,
            &opts,
            keep_workspace,
            &variations,
        );
        let report = interruptible(&runtime, &executor, vary);
        status.clear();
        let Some(report) = report else {
            return Ok(Exit::Error);
        };
        let report = report?;
        print_result(json, &report, "report", |r| r.human())?;
        return Ok(Exit::from_code(report.exit_code()));
    }
    let rebuilt = rebuild::rebuild(config, &admitted, &executor, &opts, None);
    let outcome = interruptible(&runtime, &executor, rebuilt);
    status.clear();
    let Some(outcome) = outcome else {
        return Ok(Exit::Error);
    };
    let verdict = reprod::verdict::decide(&admitted, outcome?);
    print_result(json, &verdict, "verdict", |v| v.human())?;
    Ok(Exit::from_code(verdict.exit_code()))
}

/// Runs `work` to its end, or until SIGINT/SIGTERM: then the work is dropped (each job directory removes
/// itself) and this process's build containers are removed before it says so and gives `None`.
fn interruptible<T>(
    runtime: &tokio::runtime::Runtime,
    executor: &reprod_sandbox::Sandbox,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let done = runtime.block_on(async {
        tokio::select! {
            v = work => Some(v),
            () = reprod::shutdown::signal() => None,
        }
    });
    if done.is_none() {
        match runtime.block_on(executor.remove_own_containers()) {
            Ok(n) => eprintln!(
                "reprod rebuild: interrupted; no verdict. Removed {n} build container(s) and the job directory."
            ),
            Err(e) => eprintln!(
                "reprod rebuild: interrupted; no verdict. Could not remove the build containers: {e}"
            ),
        }
    }
    done
}

/// The attestation document to rebuild for `HOST/REPO@sha256:…`, admitted: of those the registry has for it, the
/// first that yields a recipe (else the first), said on stderr when there are several.
fn from_registry(
    config: &Config,
    reference: &str,
    material: &reprod::trust::TrustMaterial,
) -> anyhow::Result<Result<reprod::examine::Admitted, reprod::provenance::ParseError>> {
    let usage = || {
        anyhow::anyhow!(
            "docker://{reference}: expected docker://HOST[:PORT]/REPO@sha256:<64 hex> (the registry named, \
             the image pinned by digest)"
        )
    };
    let (name, digest) = reference.split_once('@').ok_or_else(usage)?;
    let (registry, repo) = name.split_once('/').ok_or_else(usage)?;
    let hex = digest.strip_prefix("sha256:").ok_or_else(usage)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || repo.is_empty() {
        return Err(usage());
    }
    let insecure = config.images.insecure.iter().any(|r| r == registry);
    let docs = reprod::daemon::intake::registry::documents_of(
        registry,
        insecure,
        repo,
        digest,
        config.max_document_bytes,
    )
    .with_context(|| format!("fetching the attestations of {reference}"))?;
    if docs.is_empty() {
        anyhow::bail!(
            "{reference} has no attestation reprod can find: no cosign .att tag, no OCI referrer, and (for an \
             index) no BuildKit attestation manifest"
        );
    }
    // Each document is admitted (signatures checked) once: the first with a recipe is kept, else the
    // first.
    let admit = |doc: &Vec<u8>| {
        reprod::examine::admit(
            config,
            doc,
            &reprod::provenance::container::NoBlobs,
            material,
        )
    };
    let mut first = None;
    let mut chosen = None;
    for (i, doc) in docs.iter().enumerate() {
        let admitted = admit(doc);
        if admitted
            .as_ref()
            .is_ok_and(|a| a.finding().recipe.is_some())
        {
            chosen = Some((i, admitted));
            break;
        }
        if i == 0 {
            first = Some((0, admitted));
        }
    }
    let (chosen, admitted) = chosen
        .or(first)
        .ok_or_else(|| anyhow::anyhow!("{reference}: no attestation document to rebuild"))?;
    if docs.len() > 1 {
        eprintln!(
            "reprod: {reference} has {} attestation documents; rebuilding number {} (the first with a recipe)",
            docs.len(),
            chosen + 1
        );
    }
    Ok(admitted)
}
