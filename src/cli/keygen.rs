//! `reprod keygen`.

use std::path::PathBuf;

use super::Exit;

/// Create the key pair verdicts are signed with.
///
/// ECDSA P-256: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (the public key to give to `reprod
/// verify` and other verifiers). Never overwrites a file.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Path prefix of the two files.
    #[arg(default_value = "reprod")]
    prefix: PathBuf,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<Exit> {
    let prefix = &args.prefix;
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
    Ok(Exit::Success)
}
