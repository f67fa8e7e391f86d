//! `reprod completions SHELL` and `reprod manpages DIR`: generated from the same command definitions as
//! `--help`, so they cannot drift from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Exit;

/// Print a shell completion script.
///
/// For example `reprod completions bash > /etc/bash_completion.d/reprod`, or
/// `reprod completions zsh > "${fpath[1]}/_reprod"`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Write the man pages into a directory.
///
/// reprod.1, and reprod-COMMAND.1 for each command; for example `reprod manpages
/// /usr/local/share/man/man1`. Existing pages of the same names are replaced.
#[derive(clap::Args)]
pub struct ManpagesArgs {
    dir: PathBuf,
}

pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> anyhow::Result<Exit> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "reprod", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("writing the completion script")?;
    Ok(Exit::Success)
}

pub fn manpages(args: ManpagesArgs, command: clap::Command) -> anyhow::Result<Exit> {
    let dir = &args.dir;
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a directory; create it first (man pages go in a man1 directory, e.g. \
             /usr/local/share/man/man1)",
            dir.display()
        );
    }
    let mut written = vec![write_page(dir, "reprod", command.clone())?];
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("reprod-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("reprod {}", sub.get_name()));
        written.push(write_page(dir, &name, page)?);
    }
    for path in written {
        say!("{}", path.display());
    }
    Ok(Exit::Success)
}

/// Renders `command`'s page into `dir/NAME.1`, through a temporary file renamed over the old page.
fn write_page(dir: &Path, name: &str, command: clap::Command) -> anyhow::Result<PathBuf> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    tmp.write_all(&page)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
